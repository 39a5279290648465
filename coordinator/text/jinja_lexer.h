#pragma once
// Jinja's lexer: a template's text and tags as tokens, after the whitespace
// rules apply_chat_template uses (lstrip_blocks, trim_blocks, no final
// newline) and the tags' own {%- -%} trimming. Stateless; thread-safe.
#include <string>
#include <vector>

#include "base/status.h"

namespace strata::text::jinja {

struct Token {
  enum class Kind { kText, kExprOpen, kExprClose, kStmtOpen, kStmtClose, kName, kString, kInt, kFloat, kOp, kEnd };
  Kind kind;
  std::string text;
  int line;
};

// The tokens of `source`, ending with a kEnd token. Errors name the line.
Status Lex(const std::string& source, std::vector<Token>* out);

}  // namespace strata::text::jinja
