#include "coordinator/api/openai_api.h"


namespace strata {
namespace {

using json = nlohmann::json;

bool Fail(ApiError* e, const std::string& param, const std::string& message) {
  e->status = 400;
  e->param = param;
  e->message = message;
  return false;
}

// A number field within [lo, hi]; absent or null leaves `out` alone.
bool Number(const json& j, const char* key, double lo, double hi, double* out, ApiError* e) {
  if (!j.contains(key) || j[key].is_null()) return true;
  if (!j[key].is_number()) return Fail(e, key, std::string("'") + key + "' must be a number");
  const double v = j[key].get<double>();
  if (!(v >= lo && v <= hi)) {
    return Fail(e, key, std::string("'") + key + "' must be between " + json(lo).dump() + " and " + json(hi).dump());
  }
  *out = v;
  return true;
}

bool Integer(const json& j, const char* key, int64_t lo, int64_t hi, int64_t* out, ApiError* e) {
  if (!j.contains(key) || j[key].is_null()) return true;
  if (!j[key].is_number_integer()) return Fail(e, key, std::string("'") + key + "' must be an integer");
  const int64_t v = j[key].get<int64_t>();
  if (v < lo || v > hi) {
    return Fail(e, key, std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = v;
  return true;
}

bool String(const json& j, const char* key, size_t max, std::string* out, ApiError* e) {
  if (!j.contains(key) || j[key].is_null()) return true;
  if (!j[key].is_string()) return Fail(e, key, std::string("'") + key + "' must be a string");
  if (j[key].get_ref<const std::string&>().size() > max) return Fail(e, key, std::string("'") + key + "' is too long");
  *out = j[key].get<std::string>();
  return true;
}

bool Stops(const json& j, std::vector<std::string>* out, ApiError* e) {
  if (!j.contains("stop") || j["stop"].is_null()) return true;
  const json& s = j["stop"];
  if (s.is_string()) {
    if (s.get_ref<const std::string&>().empty() || s.get_ref<const std::string&>().size() > 256) {
      return Fail(e, "stop", "a stop sequence must have 1 to 256 bytes");
    }
    out->push_back(s.get<std::string>());
    return true;
  }
  if (!s.is_array() || s.size() > 4) return Fail(e, "stop", "'stop' must be a string or an array of at most 4 strings");
  for (const auto& x : s) {
    if (!x.is_string() || x.get_ref<const std::string&>().empty() || x.get_ref<const std::string&>().size() > 256) {
      return Fail(e, "stop", "a stop sequence must be a string of 1 to 256 bytes");
    }
    out->push_back(x.get<std::string>());
  }
  return true;
}

bool Messages(const json& j, std::vector<ChatMessage>* out, ApiError* e) {
  if (!j.contains("messages")) return Fail(e, "messages", "'messages' is required");
  const json& m = j["messages"];
  if (!m.is_array() || m.empty() || m.size() > 1024) return Fail(e, "messages", "'messages' must be a non-empty array");
  for (const auto& x : m) {
    if (!x.is_object() || !x.contains("role") || !x["role"].is_string()) {
      return Fail(e, "messages", "every message needs a string 'role'");
    }
    const std::string role = x["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer") {
      return Fail(e, "messages", "a message's role must be system, developer, user or assistant");
    }
    ChatMessage msg{role == "developer" ? "system" : role, ""};
    if (!x.contains("content") || x["content"].is_null()) {
      msg.content = "";
    } else if (x["content"].is_string()) {
      msg.content = x["content"].get<std::string>();
    } else if (x["content"].is_array()) {  // content parts: text only
      for (const auto& part : x["content"]) {
        const bool text_part = part.is_object() && part.contains("type") && part["type"].is_string() &&
                               part["type"].get<std::string>() == "text" && part.contains("text") &&
                               part["text"].is_string();
        if (!text_part) {
          return Fail(e, "messages", "only text content parts are supported");
        }
        msg.content += part["text"].get<std::string>();
      }
    } else {
      return Fail(e, "messages", "a message's 'content' must be a string or an array of text parts");
    }
    out->push_back(std::move(msg));
  }
  return true;
}

}  // namespace

std::string ApiError::Body() const {
  return json{{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
                         {"code", nullptr}}}}
      .dump();
}

bool ParseCompletion(const std::string& body, bool chat, int64_t max_context, CompletionParams* out, ApiError* e) {
  if (body.size() > kMaxRequestBodyBytes) {
    e->status = 413;
    e->message = "the request body is over " + std::to_string(kMaxRequestBodyBytes) + " bytes";
    return false;
  }
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Fail(e, "", "the request body is not valid JSON");
  if (!j.is_object()) return Fail(e, "", "the request body must be a JSON object");
  CompletionParams p;
  p.chat = chat;
  if (chat) {
    if (!Messages(j, &p.messages, e)) return false;
  } else {
    if (!j.contains("prompt")) return Fail(e, "prompt", "'prompt' is required");
    if (j["prompt"].is_array() && j["prompt"].size() == 1 && j["prompt"][0].is_string()) {
      p.prompt = j["prompt"][0].get<std::string>();
    } else if (!j["prompt"].is_string()) {
      return Fail(e, "prompt", "'prompt' must be a string");
    } else {
      p.prompt = j["prompt"].get<std::string>();
    }
    if (p.prompt.size() > kMaxRequestBodyBytes) return Fail(e, "prompt", "'prompt' is too long");
  }
  if (chat) p.max_tokens = max_context;
  int64_t max_tokens = p.max_tokens;
  if (!Integer(j, "max_tokens", 1, max_context, &max_tokens, e)) return false;
  if (chat && !Integer(j, "max_completion_tokens", 1, max_context, &max_tokens, e)) return false;
  p.max_tokens = max_tokens;
  if (!Number(j, "temperature", 0.0, 2.0, &p.temperature, e)) return false;
  if (!Number(j, "top_p", 0.0, 1.0, &p.top_p, e)) return false;
  if (j.contains("top_p") && j["top_p"].is_number() && p.top_p <= 0.0) return Fail(e, "top_p", "'top_p' must be above 0");
  if (!Integer(j, "top_k", -1, 1 << 20, &p.top_k, e)) return false;
  if (p.top_k < 0) p.top_k = 0;
  int64_t seed = 0;
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) return Fail(e, "seed", "'seed' must be an integer");
    seed = j["seed"].is_number_unsigned() ? static_cast<int64_t>(j["seed"].get<uint64_t>()) : j["seed"].get<int64_t>();
    p.seeded = true;
  }
  p.seed = static_cast<uint64_t>(seed);
  if (!Stops(j, &p.stop, e)) return false;
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) return Fail(e, "stream", "'stream' must be a boolean");
    p.stream = j["stream"].get<bool>();
  }
  if (j.contains("stream_options") && j["stream_options"].is_object()) {
    const auto& so = j["stream_options"];
    if (so.contains("include_usage")) {
      if (!so["include_usage"].is_boolean()) return Fail(e, "stream_options", "'include_usage' must be a boolean");
      p.include_usage = so["include_usage"].get<bool>();
    }
  }
  if (j.contains("logprobs") && !j["logprobs"].is_null()) {
    if (chat) {
      if (!j["logprobs"].is_boolean()) return Fail(e, "logprobs", "'logprobs' must be a boolean");
      p.logprobs = j["logprobs"].get<bool>() ? 0 : -1;
      int64_t top = 0;
      if (!Integer(j, "top_logprobs", 0, 5, &top, e)) return false;
      if (p.logprobs >= 0) p.logprobs = top;
    } else if (!Integer(j, "logprobs", 0, 5, &p.logprobs, e)) {
      return false;
    }
  }
  if (j.contains("n") && !(j["n"].is_number_integer() && j["n"].get<int64_t>() == 1)) {
    return Fail(e, "n", "only n = 1 is supported");
  }
  if (!String(j, "user", 256, &p.user, e)) return false;
  if (!String(j, "model", 256, &p.model, e)) return false;
  *out = std::move(p);
  return true;
}

ChatTemplate DetectChatTemplate(const std::string& tokenizer_config_json, bool knows_im_start) {
  const json j = json::parse(tokenizer_config_json, nullptr, false);
  std::string t;
  if (!j.is_discarded() && j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) {
    t = j["chat_template"].get<std::string>();
  }
  // The template families llama.cpp also recognises by their markers.
  if (t.find("strata-plain") != std::string::npos) return ChatTemplate::kPlain;
  if (t.find("<|im_start|>") != std::string::npos) return ChatTemplate::kChatMl;
  if (t.find("<|start_header_id|>") != std::string::npos) return ChatTemplate::kLlama3;
  if (t.find("<|user|>") != std::string::npos) return ChatTemplate::kZephyr;
  if (t.find("[INST]") != std::string::npos) return ChatTemplate::kLlama2;
  return knows_im_start ? ChatTemplate::kChatMl : ChatTemplate::kLlama2;
}

const char* ChatTemplateName(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kChatMl: return "chatml";
    case ChatTemplate::kLlama2: return "llama2";
    case ChatTemplate::kZephyr: return "zephyr";
    case ChatTemplate::kLlama3: return "llama3";
    case ChatTemplate::kPlain: return "plain";
  }
  return "?";
}

std::vector<TextPart> RenderChatParts(ChatTemplate t, const std::vector<ChatMessage>& messages) {
  std::vector<TextPart> out;
  auto marker = [&](const std::string& s) { out.push_back({s, true}); };
  auto content = [&](const std::string& s) { out.push_back({s, false}); };
  switch (t) {
    case ChatTemplate::kChatMl:
      for (const auto& m : messages) marker("<|im_start|>" + m.role + "\n"), content(m.content), marker("<|im_end|>\n");
      marker("<|im_start|>assistant\n");
      return out;
    case ChatTemplate::kZephyr:
      for (const auto& m : messages) marker("<|" + m.role + "|>\n"), content(m.content), marker("</s>\n");
      marker("<|assistant|>\n");
      return out;
    case ChatTemplate::kLlama3:
      for (const auto& m : messages) {
        marker("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n"), content(m.content), marker("<|eot_id|>");
      }
      marker("<|start_header_id|>assistant<|end_header_id|>\n\n");
      return out;
    case ChatTemplate::kPlain:
      // The default model is a text model: the conversation is its prompt.
      for (const auto& m : messages) content(m.content), marker("\n");
      return out;
    case ChatTemplate::kLlama2: {
      // [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ...
      std::string system;
      for (const auto& m : messages) {
        if (m.role == "system") {
          system += m.content;
        } else if (m.role == "user") {
          marker("[INST] ");
          if (!system.empty()) marker("<<SYS>>\n"), content(system), marker("\n<</SYS>>\n\n"), system.clear();
          content(m.content);
          marker(" [/INST]");
        } else {
          marker(" "), content(m.content), marker(" </s><s>");
        }
      }
      return out;
    }
  }
  return out;
}

std::string RenderChat(ChatTemplate t, const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const auto& p : RenderChatParts(t, messages)) out += p.text;
  return out;
}


}  // namespace strata
