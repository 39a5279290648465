#pragma once
// Lower-case hex, the one spelling of digests, ids and keys in Strata.
// Thread-safe: pure functions.
#include <cstddef>
#include <string>
#include <string_view>

namespace strata {

std::string HexEncode(const void* data, size_t n);
// Exactly `n` characters, each of 0-9a-f.
bool IsLowerHex(std::string_view text, size_t n);

}  // namespace strata
