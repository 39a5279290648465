#pragma once
// A Jinja renderer for chat templates (tokenizer_config.json's
// chat_template, a GGUF file's tokenizer.chat_template): the subset real
// templates use, rendered as Hugging Face's apply_chat_template and
// @huggingface/jinja render it. Strings that come from a user keep their
// byte ranges in the output, so the tokenizer can refuse to read special
// tokens there. Bounded: steps, output size and macro depth.
// A Template is immutable once parsed; Render is thread-safe.
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "coordinator/text/jinja_ast.h"
#include "coordinator/text/jinja_value.h"

namespace strata::text::jinja {

struct Limits {
  int64_t max_steps = 2'000'000;     // expressions evaluated and loop turns
  size_t max_output = 8u << 20;      // bytes of any string built, the output included
  int max_call_depth = 32;           // macros calling macros
};

struct Rendered {
  std::string text;
  Spans untrusted;  // byte ranges of text that came from untrusted strings
};

class Template {
 public:
  static Result<std::unique_ptr<Template>> Parse(const std::string& source);
  // `context`: a dict of the template's variables (messages, add_generation_prompt, bos_token ...).
  Result<Rendered> Render(const Value& context, const Limits& limits = Limits()) const;

 private:
  Template() = default;
  std::shared_ptr<const Body> body_;
};

}  // namespace strata::text::jinja
