// libFuzzer: the chat request path, from the HTTP body to token ids: a
// /v1/chat/completions body is parsed as the API parses it, its messages
// rendered by a ChatML Jinja template with their content untrusted, and the
// prompt tokenized with special tokens read only in the template's text.
// Whatever the messages say, the prompt holds exactly one <|im_start|> per
// message plus the assistant's: a client cannot forge a turn.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "coordinator/api/openai_api.h"
#include "coordinator/text/hf_tokenizer.h"
#include "coordinator/text/jinja.h"
#include "coordinator/text/utf8.h"

namespace {

using nlohmann::json;
namespace jinja = strata::text::jinja;

constexpr const char* kChatMl =
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content | trim + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

std::unique_ptr<strata::text::HfTokenizer> Tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[strata::text::ByteLevelChar(static_cast<uint8_t>(b))] = b;
  json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"added_tokens", json::array({{{"id", 256}, {"content", "<|im_start|>"}, {"special", true}},
                                          {{"id", 257}, {"content", "<|im_end|>"}, {"special", true}}})}};
  auto t = strata::text::HfTokenizer::FromJson(j.dump(), "fuzz");
  return t.ok() ? std::move(t.value()) : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tok = Tokenizer();
  static const auto tmpl = jinja::Template::Parse(kChatMl);
  if (!tok || !tmpl.ok()) __builtin_trap();
  strata::CompletionParams params;
  strata::ApiError error;
  if (!strata::ParseCompletion(std::string(reinterpret_cast<const char*>(data), size), true, 4096, &params, &error)) return 0;
  jinja::Value list = jinja::Value::NewList();
  for (const auto& m : params.messages) {
    jinja::Value msg = jinja::Value::NewDict();
    msg.dict->Set("role", jinja::Value::Str(m.role));
    msg.dict->Set("content", jinja::Value::Str(strata::text::LossyUtf8(m.content), true));
    list.list->push_back(msg);
  }
  jinja::Value ctx = jinja::Value::NewDict();
  ctx.dict->Set("messages", list);
  ctx.dict->Set("add_generation_prompt", jinja::Value::Bool(true));
  auto r = tmpl.value()->Render(ctx);
  if (!r.ok()) __builtin_trap();  // the template and a valid request always render
  strata::text::TrustedRanges trusted;
  size_t at = 0;
  for (const auto& [b, e] : r.value().untrusted) {
    if (b > at) trusted.emplace_back(at, b);
    at = e;
  }
  trusted.emplace_back(at, r.value().text.size());
  size_t starts = 0;
  for (int32_t id : tok->Encode(r.value().text, &trusted)) starts += id == 256;
  if (starts != params.messages.size() + 1) __builtin_trap();
  return 0;
}
