#pragma once
// The codec between HostTensor and the wire (strata.capnp Tensor). Decoding
// validates everything a peer could get wrong; it never trusts the sender.
#include <string>

#include "protocol/host_tensor.h"
#include "strata.capnp.h"

namespace strata {

// Wire limits: a tensor on the wire has 1..4 dimensions and fits well inside
// the 64 MiB Cap'n Proto traversal limit.
inline constexpr size_t kMaxWireTensorBytes = 48u << 20;
inline constexpr size_t kMaxWireTensorRank = 4;

void EncodeTensor(const HostTensor& tensor, wire::Tensor::Builder out);

// Validates and copies a received tensor. On failure returns false and sets
// *error to one line naming the cause (bad dtype, rank, shape/size mismatch).
bool DecodeTensor(wire::Tensor::Reader in, HostTensor* out, std::string* error);

// True when every element is finite (no NaN, no infinity): hidden states
// from a peer are checked before a stage computes on them.
bool AllFinite(const HostTensor& tensor);

wire::DType ToWire(TensorDType dtype);
bool FromWire(wire::DType wire, TensorDType* out);

}  // namespace strata
