#include "storage/model_config.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <tuple>

#include "storage/escape.h"

namespace strata {
namespace {

using json = nlohmann::json;

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Reads a positive integer field; a missing optional one keeps *out.
Status PositiveInt(const json& j, const char* key, bool required, int64_t* out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return Status::Error(origin + ": config.json has no '" + key + "'");
    return Status::Ok();
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
    return Status::Error(origin + ": config.json '" + key + "' must be a positive integer");
  }
  *out = it->get<int64_t>();
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ModelConfig::Load(const std::string& dir) {
  std::string config, tokenizer_config;
  if (!ReadFile(dir + "/config.json", &config)) return Status::Error("cannot read " + dir + "/config.json");
  ReadFile(dir + "/tokenizer_config.json", &tokenizer_config);  // optional
  return Parse(config, tokenizer_config, dir);
}

Result<ModelConfig> ModelConfig::Parse(const std::string& config_json, const std::string& tokenizer_config_json,
                                       const std::string& origin) {
  // nlohmann reports a field of the wrong type by throwing; no exception may
  // leave the storage layer (and a node must stay able to load again).
  try {
    return ParseJson(config_json, tokenizer_config_json, origin);
  } catch (const json::exception& e) {
    return Status::Error(origin + ": config.json has a field of the wrong type (" + EscapeText(e.what(), 120) + ")");
  }
}

Result<ModelConfig> ModelConfig::ParseJson(const std::string& config_json, const std::string& tokenizer_config_json,
                                           const std::string& origin) {
  json j = json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(origin + ": config.json is not a JSON object");
  ModelConfig c;
  if (j.contains("model_type") && !j["model_type"].is_string()) {
    return Status::Error(origin + ": config.json 'model_type' must be a string");
  }
  c.model_type = j.value("model_type", "");
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    c.architecture = j["architectures"][0].get<std::string>();
  }
  static const char* kArchitectures[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"};
  bool known = false;
  for (const char* a : kArchitectures) known = known || c.architecture == a;
  if (!known || (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2")) {
    return Status::Error(origin + ": unknown architecture '" + EscapeText(c.architecture, 64) + "' (model_type '" +
                         EscapeText(c.model_type, 64) +
                         "'); supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM");
  }
  for (auto [key, field] : {std::pair<const char*, int64_t*>{"vocab_size", &c.vocab_size},
                            {"hidden_size", &c.hidden_size},
                            {"intermediate_size", &c.intermediate_size},
                            {"num_hidden_layers", &c.num_layers},
                            {"num_attention_heads", &c.num_heads}}) {
    Status st = PositiveInt(j, key, true, field, origin);
    if (!st.ok()) return st;
  }
  c.num_kv_heads = c.num_heads;
  c.max_position = 2048;
  Status st = PositiveInt(j, "num_key_value_heads", false, &c.num_kv_heads, origin);
  if (st.ok()) st = PositiveInt(j, "max_position_embeddings", false, &c.max_position, origin);
  // Bounds far above any real model keep every size product in range and
  // refuse a config whose tables alone would exhaust memory.
  for (auto [key, value, limit] : {std::tuple<const char*, int64_t, int64_t>{"vocab_size", c.vocab_size, kMaxVocab},
                                   {"hidden_size", c.hidden_size, kMaxWidth},
                                   {"intermediate_size", c.intermediate_size, kMaxWidth * 8},
                                   {"num_hidden_layers", c.num_layers, kMaxLayers},
                                   {"num_attention_heads", c.num_heads, kMaxHeads},
                                   {"num_key_value_heads", c.num_kv_heads, kMaxHeads},
                                   {"max_position_embeddings", c.max_position, kMaxContext}}) {
    if (value > limit) {
      return Status::Error(origin + ": config.json '" + key + "' is " + std::to_string(value) +
                           ", over Strata's limit of " + std::to_string(limit));
    }
  }
  c.head_dim = c.hidden_size / c.num_heads;
  if (st.ok()) st = PositiveInt(j, "head_dim", false, &c.head_dim, origin);
  if (!st.ok()) return st;
  if (c.num_heads % c.num_kv_heads != 0) {
    return Status::Error(origin + ": num_attention_heads " + std::to_string(c.num_heads) +
                         " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  }
  if (c.head_dim > kMaxWidth) return Status::Error(origin + ": config.json 'head_dim' is over Strata's limit");
  if (c.head_dim % 2 != 0) return Status::Error(origin + ": head_dim must be even for rotary embeddings");
  if (j.contains("rms_norm_eps") && j["rms_norm_eps"].is_number()) c.rms_norm_eps = j["rms_norm_eps"].get<double>();
  if (j.contains("rope_theta") && j["rope_theta"].is_number()) c.rope_theta = j["rope_theta"].get<double>();
  if (!(c.rms_norm_eps > 0) || !(c.rope_theta > 0)) {
    return Status::Error(origin + ": rms_norm_eps and rope_theta must be positive");
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return Status::Error(origin + ": rope_scaling is not supported yet");
  }
  const std::string act = j.value("hidden_act", "silu");
  if (act != "silu") {
    return Status::Error(origin + ": hidden_act '" + EscapeText(act, 64) + "' is not supported (only silu)");
  }
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  const bool attention_bias = j.value("attention_bias", false);
  c.qkv_bias = c.model_type == "qwen2" || attention_bias;
  c.o_bias = c.model_type != "qwen2" && attention_bias;
  c.mlp_bias = j.value("mlp_bias", false);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"].get<int64_t>();
  if (j.contains("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
    if (e.is_array()) {
      for (const json& x : e) if (x.is_number_integer()) c.eos_token_ids.push_back(x.get<int64_t>());
    }
  }
  // Llama/Mistral tokenizers prepend BOS by default; Qwen2 does not.
  c.add_bos = c.model_type != "qwen2";
  if (!tokenizer_config_json.empty()) {
    json t = json::parse(tokenizer_config_json, nullptr, false);
    if (t.is_object() && t.contains("add_bos_token") && t["add_bos_token"].is_boolean()) {
      c.add_bos = t["add_bos_token"].get<bool>();
    }
  }
  return c;
}

}  // namespace strata
