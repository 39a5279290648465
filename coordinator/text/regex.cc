#define PCRE2_CODE_UNIT_WIDTH 8
#include "coordinator/text/regex.h"

#include <pcre2.h>

#include "base/escape.h"
#include "coordinator/text/utf8.h"

namespace strata::text {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

Regex::~Regex() = default;

namespace {

Result<std::unique_ptr<Regex::Code>> CompileCode(const std::string& pattern, uint32_t extra) {
  int err = 0;
  PCRE2_SIZE at = 0;
  auto code = std::make_unique<Regex::Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP | extra, &err, &at, nullptr);
  if (code->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return Status::Error("pattern '" + EscapeText(pattern, 120) + "' does not compile at offset " +
                         std::to_string(at) + ": " + reinterpret_cast<const char*>(msg));
  }
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  return code;
}

}  // namespace

Result<std::unique_ptr<Regex>> Regex::Compile(const std::string& pattern) {
  auto code = CompileCode(pattern, 0);
  if (!code.ok()) return code.status();
  std::unique_ptr<Regex> r(new Regex());
  r->code_ = std::move(code.value());
  return r;
}

Result<std::unique_ptr<Regex>> Regex::Literal(const std::string& text) {
  if (text.empty()) return Status::Error("an empty string pattern matches nothing");
  auto code = CompileCode(text, PCRE2_LITERAL);
  if (!code.ok()) return code.status();
  std::unique_ptr<Regex> r(new Regex());
  r->code_ = std::move(code.value());
  return r;
}

std::vector<std::pair<size_t, size_t>> Regex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at <= text.size()) {
    // The caller's text is valid UTF-8 (the tokenizer made it so): no re-check.
    const int rc = code_->jit ? pcre2_jit_match(code_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, md, nullptr)
                              : pcre2_match(code_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // no match (or the match limit: the rest stays one piece)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      at = e;
    } else {
      if (b >= text.size()) break;
      at = b + CharLen(text, b);
    }
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace strata::text
