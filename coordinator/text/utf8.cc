#include "coordinator/text/utf8.h"

#include <algorithm>
#include <array>

namespace strata::text {

namespace {

// The length a lead byte announces (0: not a lead byte) and the range its
// second byte must fall in (Unicode's Table 3-7: no overlongs, no surrogates).
size_t LeadLen(uint8_t c, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) {
    if (c == 0xE0) *lo = 0xA0;
    if (c == 0xED) *hi = 0x9F;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (c == 0xF0) *lo = 0x90;
    if (c == 0xF4) *hi = 0x8F;
    return 4;
  }
  return 0;
}

// Bytes from s[i] that are a valid prefix of the character s[i] announces.
size_t ValidPrefix(std::string_view s, size_t i, size_t* want) {
  uint8_t lo, hi;
  *want = LeadLen(static_cast<uint8_t>(s[i]), &lo, &hi);
  if (*want <= 1) return *want;
  size_t j = i + 1;
  if (j >= s.size() || static_cast<uint8_t>(s[j]) < lo || static_cast<uint8_t>(s[j]) > hi) return 1;
  ++j;
  while (j < s.size() && j - i < *want && (static_cast<uint8_t>(s[j]) & 0xC0) == 0x80) ++j;
  return j - i;
}

}  // namespace

size_t ValidCharLen(std::string_view s, size_t i) {
  size_t want;
  const size_t got = ValidPrefix(s, i, &want);
  return want != 0 && got == want ? want : 0;
}

std::string LossyUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t want;
    const size_t got = ValidPrefix(s, i, &want);
    if (want != 0 && got == want) {
      out.append(s.substr(i, got));
    } else {
      out += "\xEF\xBF\xBD";  // one replacement for the maximal invalid subpart
    }
    i += std::max<size_t>(got, 1);
  }
  return out;
}

void AppendCodepoint(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t CodepointAt(std::string_view s, size_t i) {
  const size_t n = ValidCharLen(s, i);
  const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i + k])); };
  switch (n) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    case 4: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    default: return 0xFFFD;
  }
}

namespace {

// Printable bytes stand for themselves; the other 68 take 256, 257, ... in order.
struct ByteLevelTable {
  std::array<std::string, 256> chars;
  std::array<uint32_t, 256> codepoints{};
  ByteLevelTable() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      codepoints[b] = printable ? static_cast<uint32_t>(b) : next++;
      AppendCodepoint(codepoints[b], &chars[b]);
    }
  }
};

const ByteLevelTable& Table() {
  static const ByteLevelTable table;  // immutable after first use
  return table;
}

}  // namespace

const std::string& ByteLevelChar(uint8_t byte) { return Table().chars[byte]; }

int ByteOfByteLevelChar(uint32_t cp) {
  if (cp < 256) {
    const bool printable = (cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174);
    return printable ? static_cast<int>(cp) : -1;
  }
  if (cp >= 256 + 68) return -1;
  const auto& t = Table().codepoints;
  for (int b = 0; b < 256; ++b) {
    if (t[b] == cp) return b;
  }
  return -1;
}

}  // namespace strata::text
