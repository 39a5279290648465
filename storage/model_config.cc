#include "storage/model_config.h"

#include <algorithm>
#include <cmath>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <tuple>

#include "base/escape.h"

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

namespace {

// rope_scaling as Hugging Face applies it to inv_freq, as one factor per
// frequency; a GGUF file's rope_freqs come as rope_freq_factors.
Status RopeScaling(const json& j, const ModelConfig& c, const std::string& origin, std::vector<float>* factors) {
  const int64_t half = c.head_dim / 2;
  if (j.contains("rope_freq_factors")) {
    const json& f = j["rope_freq_factors"];
    if (!f.is_array() || static_cast<int64_t>(f.size()) != half) {
      return Status::Error(origin + ": rope_freq_factors must list head_dim / 2 = " + std::to_string(half) + " numbers");
    }
    for (const json& x : f) {
      if (!x.is_number() || !(x.get<double>() > 0) || !std::isfinite(x.get<double>())) {
        return Status::Error(origin + ": rope_freq_factors must be positive numbers");
      }
      factors->push_back(x.get<float>());
    }
    return Status::Ok();
  }
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return Status::Ok();
  const json& r = j["rope_scaling"];
  if (!r.is_object()) return Status::Error(origin + ": rope_scaling must be an object");
  const std::string type = r.contains("rope_type") && r["rope_type"].is_string() ? r["rope_type"].get<std::string>()
                           : r.contains("type") && r["type"].is_string()         ? r["type"].get<std::string>()
                                                                                  : "";
  auto number = [&](const char* key, double fallback) {
    return r.contains(key) && r[key].is_number() ? r[key].get<double>() : fallback;
  };
  if (type == "default") return Status::Ok();
  const double factor = number("factor", 0);
  if (type != "linear" && type != "llama3") {
    return Status::Error(origin + ": rope_scaling type '" + EscapeText(type, 64) +
                         "' is not supported (llama3 and linear are; dynamic NTK changes every cached position)");
  }
  if (!(factor >= 1) || !std::isfinite(factor)) return Status::Error(origin + ": rope_scaling needs a factor of at least 1");
  for (int64_t i = 0; i < half; ++i) {
    if (type == "linear") {
      factors->push_back(static_cast<float>(factor));
      continue;
    }
    const double low = number("low_freq_factor", 1), high = number("high_freq_factor", 4);
    const double old_context = number("original_max_position_embeddings", 8192);
    if (!(high > low) || !(low > 0) || !(old_context > 0)) {
      return Status::Error(origin + ": rope_scaling llama3 needs high_freq_factor > low_freq_factor > 0");
    }
    const double inv = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / static_cast<double>(c.head_dim));
    const double wavelen = 2 * M_PI / inv;
    double f = 1;
    if (wavelen > old_context / low) {
      f = factor;
    } else if (wavelen >= old_context / high) {
      const double smooth = (old_context / wavelen - low) / (high - low);
      f = 1.0 / ((1 - smooth) / factor + smooth);
    }
    factors->push_back(static_cast<float>(f));
  }
  return Status::Ok();
}

// The model type and architecture, one of those supported.
Status ReadArchitecture(const json& j, const std::string& origin, ModelConfig* c) {
  if (j.contains("model_type") && !j["model_type"].is_string()) {
    return Status::Error(origin + ": config.json 'model_type' must be a string");
  }
  c->model_type = j.value("model_type", "");
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    c->architecture = j["architectures"][0].get<std::string>();
  }
  static const char* kArchitectures[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  bool known = false;
  for (const char* a : kArchitectures) known = known || c->architecture == a;
  if (!known || (c->model_type != "llama" && c->model_type != "mistral" && c->model_type != "qwen2" && c->model_type != "qwen3")) {
    return Status::Error(origin + ": unknown architecture '" + EscapeText(c->architecture, 64) + "' (model_type '" +
                         EscapeText(c->model_type, 64) +
                         "'); supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM");
  }
  c->qk_norm = c->model_type == "qwen3";
  return Status::Ok();
}

// Sizes within Strata's bounds, heads that divide, an even head_dim, and the
// norm's and rotary embedding's parameters.
Status ReadShape(const json& j, const std::string& origin, ModelConfig* c) {
  for (auto [key, field] : {std::pair<const char*, int64_t*>{"vocab_size", &c->vocab_size},
                            {"hidden_size", &c->hidden_size},
                            {"intermediate_size", &c->intermediate_size},
                            {"num_hidden_layers", &c->num_layers},
                            {"num_attention_heads", &c->num_heads}}) {
    Status st = PositiveInt(j, key, true, field, origin);
    if (!st.ok()) return st;
  }
  c->num_kv_heads = c->num_heads;
  c->max_position = 2048;
  Status st = PositiveInt(j, "num_key_value_heads", false, &c->num_kv_heads, origin);
  if (st.ok()) st = PositiveInt(j, "max_position_embeddings", false, &c->max_position, origin);
  // Bounds far above any real model keep every size product in range and
  // refuse a config whose tables alone would exhaust memory.
  for (auto [key, value, limit] : {std::tuple<const char*, int64_t, int64_t>{"vocab_size", c->vocab_size, kMaxVocab},
                                   {"hidden_size", c->hidden_size, kMaxWidth},
                                   {"intermediate_size", c->intermediate_size, kMaxWidth * 8},
                                   {"num_hidden_layers", c->num_layers, kMaxLayers},
                                   {"num_attention_heads", c->num_heads, kMaxHeads},
                                   {"num_key_value_heads", c->num_kv_heads, kMaxHeads},
                                   {"max_position_embeddings", c->max_position, kMaxContext}}) {
    if (value > limit) {
      return Status::Error(origin + ": config.json '" + key + "' is " + std::to_string(value) +
                           ", over Strata's limit of " + std::to_string(limit));
    }
  }
  c->head_dim = c->hidden_size / c->num_heads;
  if (st.ok()) st = PositiveInt(j, "head_dim", false, &c->head_dim, origin);
  if (!st.ok()) return st;
  if (c->num_heads % c->num_kv_heads != 0) {
    return Status::Error(origin + ": num_attention_heads " + std::to_string(c->num_heads) +
                         " is not a multiple of num_key_value_heads " + std::to_string(c->num_kv_heads));
  }
  if (c->head_dim == 0) {
    return Status::Error(origin + ": hidden_size " + std::to_string(c->hidden_size) + " over num_attention_heads " +
                         std::to_string(c->num_heads) + " leaves a head_dim of 0 (config.json needs 'head_dim')");
  }
  if (c->head_dim > kMaxWidth) return Status::Error(origin + ": config.json 'head_dim' is over Strata's limit");
  if (c->head_dim % 2 != 0) return Status::Error(origin + ": head_dim must be even for rotary embeddings");
  if (j.contains("rms_norm_eps") && j["rms_norm_eps"].is_number()) c->rms_norm_eps = j["rms_norm_eps"].get<double>();
  if (j.contains("rope_theta") && j["rope_theta"].is_number()) c->rope_theta = j["rope_theta"].get<double>();
  if (!(c->rms_norm_eps > 0) || !(c->rope_theta > 0)) {
    return Status::Error(origin + ": rms_norm_eps and rope_theta must be positive");
  }
  Status scaling = RopeScaling(j, *c, origin, &c->rope_freq_factors);
  if (!scaling.ok()) return scaling;
  return Status::Ok();
}

// What differs between the families: the window, the activation, biases,
// tied embeddings and the special tokens.
Status ReadVariant(const json& j, const std::string& tokenizer_config_json, const std::string& origin,
                   ModelConfig* c) {
  // A sliding window (Mistral; Qwen with use_sliding_window): attention is
  // exact for sequences within it, so the context stops there.
  const bool windowed = c->model_type == "mistral" ||
                        (j.contains("use_sliding_window") && j["use_sliding_window"].is_boolean() && j["use_sliding_window"].get<bool>());
  if (windowed && j.contains("sliding_window") && j["sliding_window"].is_number_integer() &&
      j["sliding_window"].get<int64_t>() > 0) {
    c->max_position = std::min(c->max_position, j["sliding_window"].get<int64_t>());
  }
  const std::string act = j.value("hidden_act", "silu");
  if (act != "silu") {
    return Status::Error(origin + ": hidden_act '" + EscapeText(act, 64) + "' is not supported (only silu)");
  }
  c->tie_word_embeddings = j.value("tie_word_embeddings", false);
  const bool attention_bias = j.value("attention_bias", false);
  c->qkv_bias = c->model_type == "qwen2" || attention_bias;
  c->o_bias = c->model_type != "qwen2" && attention_bias;
  c->mlp_bias = j.value("mlp_bias", false);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c->bos_token_id = j["bos_token_id"].get<int64_t>();
  if (j.contains("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_number_integer()) c->eos_token_ids.push_back(e.get<int64_t>());
    if (e.is_array()) {
      for (const json& x : e) if (x.is_number_integer()) c->eos_token_ids.push_back(x.get<int64_t>());
    }
  }
  // Llama/Mistral tokenizers prepend BOS by default; Qwen2 does not.
  c->add_bos = c->model_type != "qwen2";
  if (!tokenizer_config_json.empty()) {
    json t = json::parse(tokenizer_config_json, nullptr, false);
    if (t.is_object() && t.contains("add_bos_token") && t["add_bos_token"].is_boolean()) {
      c->add_bos = t["add_bos_token"].get<bool>();
    }
  }
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ModelConfig::ParseJson(const std::string& config_json, const std::string& tokenizer_config_json,
                                           const std::string& origin) {
  json j = json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(origin + ": config.json is not a JSON object");
  ModelConfig c;
  Status st = ReadArchitecture(j, origin, &c);
  if (st.ok()) st = ReadShape(j, origin, &c);
  if (st.ok()) st = ReadVariant(j, tokenizer_config_json, origin, &c);
  if (!st.ok()) return st;
  return c;
}

}  // namespace strata
