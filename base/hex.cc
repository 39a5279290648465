#include "base/hex.h"

#include <cstdint>

namespace strata {

std::string HexEncode(const void* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  const auto* bytes = static_cast<const uint8_t*>(data);
  std::string hex;
  hex.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 15];
  }
  return hex;
}

bool IsLowerHex(std::string_view text, size_t n) {
  return text.size() == n && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace strata
