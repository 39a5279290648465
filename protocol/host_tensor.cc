#include "protocol/host_tensor.h"

namespace strata {

size_t ElementSize(TensorDType dtype) {
  switch (dtype) {
    case TensorDType::kF32: return 4;
    case TensorDType::kBF16: return 2;
    case TensorDType::kF16: return 2;
  }
  return 0;
}

const char* DTypeName(TensorDType dtype) {
  switch (dtype) {
    case TensorDType::kF32: return "f32";
    case TensorDType::kBF16: return "bf16";
    case TensorDType::kF16: return "f16";
  }
  return "?";
}

bool ParseTensorDType(const std::string& text, TensorDType* out) {
  if (text == "f32" || text == "float32") { *out = TensorDType::kF32; return true; }
  if (text == "bf16" || text == "bfloat16") { *out = TensorDType::kBF16; return true; }
  if (text == "f16" || text == "float16") { *out = TensorDType::kF16; return true; }
  return false;
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace strata
