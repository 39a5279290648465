// Jinja's lexer, for the subset real chat templates use: text, {{ }},
// {% %}, {# #}, whitespace control, names, numbers, strings and operators.
#include "coordinator/text/jinja_lexer.h"

#include <algorithm>
#include <cctype>

namespace strata::text::jinja {
namespace {

// Where trim_blocks took a newline: the lexer counts it as a line (errors
// name the source's lines) and never emits it.
constexpr char kTrimmedNewline = '\x1e';
constexpr const char* kBlank = " \t\r\n\x1e";

// apply_chat_template's environment: lstrip_blocks, trim_blocks, and no final newline.
std::string Preprocess(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    // At a line start: blanks before a block or comment tag go.
    size_t j = i;
    while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
    if (j + 1 < s.size() && s[j] == '{' && (s[j + 1] == '%' || s[j + 1] == '#' || s[j + 1] == '-')) i = j;
    const size_t nl = s.find('\n', i);
    const size_t end = nl == std::string::npos ? s.size() : nl + 1;
    out.append(s, i, end - i);
    i = end;
  }
  const bool mark = out.find(kTrimmedNewline) == std::string::npos;  // else: newlines simply go
  std::string trimmed;
  trimmed.reserve(out.size());
  for (size_t k = 0; k < out.size(); ++k) {
    trimmed.push_back(out[k]);
    if (out[k] == '}' && k > 0 && (out[k - 1] == '%' || out[k - 1] == '#' || out[k - 1] == '-') && k + 1 < out.size() &&
        out[k + 1] == '\n') {
      ++k;  // trim_blocks: the newline after a tag
      if (mark) trimmed.push_back(kTrimmedNewline);
    }
  }
  return trimmed;
}

class Lexer {
 public:
  explicit Lexer(const std::string& s) : s_(s) {}

  Status Run(std::vector<Token>* out) {
    while (at_ < s_.size()) {
      const size_t open = FindOpen(at_);
      std::string text = s_.substr(at_, open - at_);
      if (strip_next_) text.erase(0, std::min(text.size(), text.find_first_not_of(kBlank)));
      strip_next_ = false;
      Advance(open);
      if (open == s_.size()) {
        Push(out, Token::Kind::kText, text);
        break;
      }
      const char type = s_[open + 1];
      const bool lstrip = open + 2 < s_.size() && s_[open + 2] == '-';
      if (lstrip) text.erase(text.find_last_not_of(kBlank) + 1);
      Push(out, Token::Kind::kText, text);
      Advance(open + 2 + (lstrip ? 1 : 0));
      if (type == '#') {
        const size_t close = s_.find("#}", at_);
        if (close == std::string::npos) return Error("a comment is not closed");
        strip_next_ = close > 0 && s_[close - 1] == '-';
        Advance(close + 2);
        continue;
      }
      Push(out, type == '{' ? Token::Kind::kExprOpen : Token::Kind::kStmtOpen, "");
      Status st = Tag(type == '{' ? "}}" : "%}", out);
      if (!st.ok()) return st;
      Push(out, type == '{' ? Token::Kind::kExprClose : Token::Kind::kStmtClose, "");
    }
    Push(out, Token::Kind::kEnd, "");
    return Status::Ok();
  }

 private:
  size_t FindOpen(size_t from) const {
    for (size_t k = from; k + 1 < s_.size(); ++k) {
      if (s_[k] == '{' && (s_[k + 1] == '{' || s_[k + 1] == '%' || s_[k + 1] == '#')) return k;
    }
    return s_.size();
  }
  void Advance(size_t to) {
    for (size_t k = at_; k < to && k < s_.size(); ++k) line_ += s_[k] == '\n' || s_[k] == kTrimmedNewline;
    at_ = to;
  }
  void Push(std::vector<Token>* out, Token::Kind k, std::string text) {
    if (k == Token::Kind::kText) text.erase(std::remove(text.begin(), text.end(), kTrimmedNewline), text.end());
    if (k == Token::Kind::kText && text.empty()) return;
    out->push_back({k, std::move(text), line_});
  }
  Status Error(const std::string& why) const { return Status::Error("line " + std::to_string(line_) + ": " + why); }

  // The tokens inside a tag, up to its close ("-" before it strips what follows).
  Status Tag(const char* close, std::vector<Token>* out) {
    while (true) {
      while (at_ < s_.size() && (std::isspace(static_cast<unsigned char>(s_[at_])) || s_[at_] == kTrimmedNewline)) Advance(at_ + 1);
      if (at_ >= s_.size()) return Error(std::string("a tag is not closed with ") + close);
      if (s_.compare(at_, 2, close) == 0 || (s_[at_] == '-' && s_.compare(at_ + 1, 2, close) == 0)) {
        strip_next_ = s_[at_] == '-';
        Advance(at_ + (strip_next_ ? 3 : 2));
        return Status::Ok();
      }
      const char c = s_[at_];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = at_;
        while (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) ++e;
        Push(out, Token::Kind::kName, s_.substr(at_, e - at_));
        Advance(e);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = at_;
        while (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) ++e;
        const bool real = e + 1 < s_.size() && s_[e] == '.' && std::isdigit(static_cast<unsigned char>(s_[e + 1]));
        if (real) {
          ++e;
          while (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) ++e;
        }
        Push(out, real ? Token::Kind::kFloat : Token::Kind::kInt, s_.substr(at_, e - at_));
        Advance(e);
      } else if (c == '\'' || c == '"') {
        std::string v;
        size_t e = at_ + 1;
        while (e < s_.size() && s_[e] != c) {
          if (s_[e] == kTrimmedNewline) {  // trim_blocks took it
            ++e;
            continue;
          }
          if (s_[e] == '\\' && e + 1 < s_.size()) {
            const char n = s_[++e];
            v.push_back(n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n == 'b' ? '\b' : n == 'f' ? '\f' : n);
          } else {
            v.push_back(s_[e]);
          }
          ++e;
        }
        if (e >= s_.size()) return Error("a string is not closed");
        Push(out, Token::Kind::kString, v);
        Advance(e + 1);
      } else {
        static const char* kTwo[] = {"==", "!=", "<=", ">=", "//", "**"};
        std::string op(1, c);
        for (const char* t : kTwo) {
          if (s_.compare(at_, 2, t) == 0) op = t;
        }
        if (op.size() == 1 && std::string("+-*/%~<>=()[]{}.,:|!").find(c) == std::string::npos) {
          return Error(std::string("unexpected character '") + c + "'");
        }
        Push(out, Token::Kind::kOp, op);
        Advance(at_ + op.size());
      }
    }
  }

  const std::string& s_;
  size_t at_ = 0;
  int line_ = 1;
  bool strip_next_ = false;
};

}  // namespace

Status Lex(const std::string& source, std::vector<Token>* out) {
  const std::string text = Preprocess(source);
  Lexer lexer(text);
  return lexer.Run(out);
}

}  // namespace strata::text::jinja
