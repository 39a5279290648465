#pragma once
// UTF-8 helpers for the tokenizers: lossy validation (as Rust's
// from_utf8_lossy and the WHATWG TextDecoder: one U+FFFD per maximal invalid
// subpart), character boundaries, and GPT-2's byte-level alphabet.
// Stateless; thread-safe.
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::text {

// Byte length of the valid UTF-8 sequence at s[i], or 0 where none starts.
size_t ValidCharLen(std::string_view s, size_t i);

// `s` with every invalid sequence replaced by U+FFFD.
std::string LossyUtf8(std::string_view s);

// Length of the character starting at s[i] in valid UTF-8 (1 past an invalid byte).
inline size_t CharLen(std::string_view s, size_t i) {
  const size_t n = ValidCharLen(s, i);
  return n == 0 ? 1 : n;
}

void AppendCodepoint(uint32_t cp, std::string* out);
// The codepoint at s[i] of valid UTF-8 (U+FFFD past an invalid byte).
uint32_t CodepointAt(std::string_view s, size_t i);

// GPT-2's bytes_to_unicode: every byte as a printable character (UTF-8).
const std::string& ByteLevelChar(uint8_t byte);
// The byte behind a byte-level character (-1: not one of the 256).
int ByteOfByteLevelChar(uint32_t codepoint);

}  // namespace strata::text
