#pragma once
#include <cstdint>

namespace strata {
// Bump on any incompatible change to protocol/strata.capnp.
inline constexpr uint32_t kProtocolVersion = 5;
}  // namespace strata
