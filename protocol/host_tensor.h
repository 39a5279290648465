#pragma once
// HostTensor: a dense row-major tensor in host memory, the form in which
// tensors cross between the engine and the wire. Free of torch and capnp.
#include <cstdint>
#include <string>
#include <vector>

namespace strata {

enum class TensorDType : uint8_t { kF32, kBF16, kF16 };

size_t ElementSize(TensorDType dtype);
const char* DTypeName(TensorDType dtype);
// Parses "f32" | "bf16" | "f16"; returns false on anything else.
bool ParseTensorDType(const std::string& text, TensorDType* out);

struct HostTensor {
  TensorDType dtype = TensorDType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // numel * ElementSize(dtype) bytes

  int64_t numel() const;
};

}  // namespace strata
