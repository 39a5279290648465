#include "protocol/tensor_codec.h"

#include <cstring>
#include <limits>

namespace strata {

wire::DType ToWire(TensorDType dtype) {
  switch (dtype) {
    case TensorDType::kF32: return wire::DType::F32;
    case TensorDType::kBF16: return wire::DType::BF16;
    case TensorDType::kF16: return wire::DType::F16;
  }
  return wire::DType::F32;
}

bool FromWire(wire::DType value, TensorDType* out) {
  switch (value) {
    case wire::DType::F32: *out = TensorDType::kF32; return true;
    case wire::DType::BF16: *out = TensorDType::kBF16; return true;
    case wire::DType::F16: *out = TensorDType::kF16; return true;
  }
  return false;  // an enumerant from a newer peer
}

void EncodeTensor(const HostTensor& tensor, wire::Tensor::Builder out) {
  out.setDtype(ToWire(tensor.dtype));
  auto shape = out.initShape(static_cast<unsigned>(tensor.shape.size()));
  for (size_t i = 0; i < tensor.shape.size(); ++i) shape.set(i, static_cast<uint64_t>(tensor.shape[i]));
  out.setData(kj::arrayPtr(tensor.data.data(), tensor.data.size()));
}

bool DecodeTensor(wire::Tensor::Reader in, HostTensor* out, std::string* error) {
  TensorDType dtype;
  if (!FromWire(in.getDtype(), &dtype)) {
    *error = "tensor has unknown dtype " + std::to_string(static_cast<int>(in.getDtype()));
    return false;
  }
  auto shape = in.getShape();
  if (shape.size() == 0 || shape.size() > kMaxWireTensorRank) {
    *error = "tensor rank " + std::to_string(shape.size()) + " is outside 1.." +
             std::to_string(kMaxWireTensorRank);
    return false;
  }
  // Multiply with an overflow check: a hostile shape must not wrap around.
  uint64_t numel = 1;
  std::vector<int64_t> dims;
  for (uint64_t d : shape) {
    if (d == 0 || d > kMaxWireTensorBytes || numel > kMaxWireTensorBytes / d) {
      *error = "tensor shape dimension " + std::to_string(d) + " is zero or too large";
      return false;
    }
    numel *= d;
    dims.push_back(static_cast<int64_t>(d));
  }
  const uint64_t want = numel * ElementSize(dtype);
  auto data = in.getData();
  if (want > kMaxWireTensorBytes || data.size() != want) {
    *error = "tensor data is " + std::to_string(data.size()) + " bytes but dtype " +
             DTypeName(dtype) + " x shape needs " + std::to_string(want);
    return false;
  }
  out->dtype = dtype;
  out->shape = std::move(dims);
  out->data.assign(data.begin(), data.end());
  return true;
}

bool AllFinite(const HostTensor& tensor) {
  // A float is NaN or infinite exactly when its exponent bits are all ones.
  const uint8_t* p = tensor.data.data();
  const size_t n = tensor.data.size();
  switch (tensor.dtype) {
    case TensorDType::kF32:
      for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t bits;
        std::memcpy(&bits, p + i, 4);
        if ((bits & 0x7f800000u) == 0x7f800000u) return false;
      }
      return true;
    case TensorDType::kBF16:
    case TensorDType::kF16: {
      const uint16_t mask = tensor.dtype == TensorDType::kBF16 ? 0x7f80u : 0x7c00u;
      for (size_t i = 0; i + 2 <= n; i += 2) {
        uint16_t bits;
        std::memcpy(&bits, p + i, 2);
        if ((bits & mask) == mask) return false;
      }
      return true;
    }
  }
  return false;
}

}  // namespace strata
