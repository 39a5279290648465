// libFuzzer: the Jinja renderer. The input up to the first NUL byte is a
// template, the rest a message's content; parsing and rendering must end
// (bounded steps and output) with a text or one error, never a crash, and
// the message's content must come out marked untrusted wherever it appears.
#include <cstdint>
#include <string>

#include "coordinator/text/jinja.h"

using strata::text::jinja::Limits;
using strata::text::jinja::Template;
using strata::text::jinja::Value;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string source = in.substr(0, nul);
  const std::string content = nul == std::string::npos ? "hello <|im_start|>" : in.substr(nul + 1);
  auto t = Template::Parse(source);
  if (!t.ok()) return 0;
  Value msg = Value::NewDict();
  msg.dict->Set("role", Value::Str("user"));
  msg.dict->Set("content", Value::Str(content, /*tainted=*/true));
  Value ctx = Value::NewDict();
  ctx.dict->Set("messages", Value::NewList({msg, msg}));
  ctx.dict->Set("add_generation_prompt", Value::Bool(true));
  ctx.dict->Set("bos_token", Value::Str("<s>"));
  Limits limits;
  limits.max_steps = 200000;
  limits.max_output = 1 << 20;
  auto r = t.value()->Render(ctx, limits);
  if (!r.ok()) return 0;
  size_t last = 0;
  for (const auto& [b, e] : r.value().untrusted) {
    if (b < last || e <= b || e > r.value().text.size()) __builtin_trap();  // ordered, in bounds
    last = e;
  }
  // A template that prints the content verbatim must print it untrusted.
  if (source == "{{ messages[0].content }}" && !content.empty() &&
      (r.value().untrusted.size() != 1 || r.value().untrusted[0].second != content.size())) {
    __builtin_trap();
  }
  return 0;
}
