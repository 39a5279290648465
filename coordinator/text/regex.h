#pragma once
// A compiled PCRE2 pattern (UTF-8, Unicode classes: \p{L}, \s and \w as
// Unicode has them), the engine behind the tokenizers' Split patterns.
// Immutable after Compile; thread-safe (each search has its own match data).
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace strata::text {

class Regex {
 public:
  static Result<std::unique_ptr<Regex>> Compile(const std::string& pattern);
  // A literal string, matched as it is.
  static Result<std::unique_ptr<Regex>> Literal(const std::string& text);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match in `text` (valid UTF-8), leftmost first, as
  // [begin, end) byte ranges. An empty match advances by one character.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

  struct Code;  // PCRE2's compiled pattern

 private:
  Regex() = default;
  std::unique_ptr<Code> code_;
};

}  // namespace strata::text
