#include "coordinator/api/chat_format.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "coordinator/text/jinja.h"
#include "storage/gguf.h"

namespace strata {
namespace {

using nlohmann::json;

// tokenizer_config.json's bos_token/eos_token: a string or an AddedToken object.
std::string TokenText(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

ChatFormat::~ChatFormat() = default;

Result<std::unique_ptr<ChatFormat>> ChatFormat::ForModel(const std::string& model_dir, const GgufFile* gguf,
                                                          const Tokenizer& tokenizer) {
  std::unique_ptr<ChatFormat> f(new ChatFormat());
  std::string source, origin;
  json config;
  if (gguf != nullptr) {
    auto t = gguf->String("tokenizer.chat_template");
    if (t.ok()) source = t.value();
    origin = model_dir + " (tokenizer.chat_template)";
  } else {
    origin = model_dir + "/tokenizer_config.json";
    std::ifstream in(origin);
    std::stringstream s;
    s << in.rdbuf();
    config = json::parse(s.str(), nullptr, false);
    if (config.is_object() && config.contains("chat_template") && config["chat_template"].is_string()) {
      source = config["chat_template"].get<std::string>();
    }
  }
  f->bos_token_ = TokenText(config, "bos_token");
  f->eos_token_ = TokenText(config, "eos_token");
  if (f->bos_token_.empty() && tokenizer.bos() >= 0) f->bos_token_ = tokenizer.Piece(tokenizer.bos());
  const bool knows_im_start = tokenizer.Encode("<|im_start|>", false).size() == 1;
  f->family_ = DetectChatTemplate(json{{"chat_template", source}}.dump(), knows_im_start);
  // Strata's own marker for a text model's plain prompt is not Jinja to run.
  if (!source.empty() && f->family_ != ChatTemplate::kPlain) {
    auto t = text::jinja::Template::Parse(source);
    if (!t.ok()) return Status::Error(origin + ": " + t.status().message());
    f->jinja_ = std::move(t.value());
  }
  return f;
}

Result<ChatPrompt> ChatFormat::Render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  ChatPrompt p;
  if (!jinja_) {
    p.parts = RenderChatParts(family_, messages);
    p.add_bos = true;
    return p;
  }
  using text::jinja::Value;
  Value list = Value::NewList();
  for (const auto& m : messages) {
    Value msg = Value::NewDict();
    msg.dict->Set("role", Value::Str(m.role));
    msg.dict->Set("content", Value::Str(m.content, /*tainted=*/true));
    list.list->push_back(msg);
  }
  Value ctx = Value::NewDict();
  ctx.dict->Set("messages", list);
  ctx.dict->Set("add_generation_prompt", Value::Bool(add_generation_prompt));
  ctx.dict->Set("bos_token", Value::Str(bos_token_));
  ctx.dict->Set("eos_token", Value::Str(eos_token_));
  auto r = jinja_->Render(ctx);
  if (!r.ok()) return r.status();
  size_t at = 0;
  for (const auto& [b, e] : r.value().untrusted) {
    if (b > at) p.parts.push_back({r.value().text.substr(at, b - at), true});
    p.parts.push_back({r.value().text.substr(b, e - b), false});
    at = e;
  }
  if (at < r.value().text.size()) p.parts.push_back({r.value().text.substr(at), true});
  return p;
}

std::string ChatFormat::name() const { return jinja_ ? "jinja" : ChatTemplateName(family_); }

}  // namespace strata
