#include "storage/gguf_model.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "base/escape.h"
#include "storage/checkpoint.h"

namespace strata {
namespace {

using json = nlohmann::json;

// GGUF's per-layer tensor names and Hugging Face's, blk.{i}.X <-> model.layers.{i}.Y.
const std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
const std::pair<const char*, const char*> kModelNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

// "blk.12.attn_q.weight" -> layer 12, rest "attn_q.weight".
bool SplitLayer(const std::string& name, const char* prefix, int64_t* layer, std::string* rest) {
  const size_t n = std::strlen(prefix);
  if (name.compare(0, n, prefix) != 0) return false;
  size_t i = n, digits = 0;
  int64_t value = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && digits < 6) value = value * 10 + (name[i++] - '0'), ++digits;
  if (digits == 0 || i >= name.size() || name[i] != '.') return false;
  *layer = value;
  *rest = name.substr(i + 1);
  return true;
}

std::string HfName(const std::string& gguf) {
  for (const auto& [g, h] : kModelNames) {
    if (gguf == g) return h;
  }
  int64_t layer;
  std::string rest;
  if (!SplitLayer(gguf, "blk.", &layer, &rest)) return "";
  for (const auto& [g, h] : kLayerNames) {
    if (rest == g) return LayerTensorName(layer, h);
  }
  return "";
}

}  // namespace

bool IsGgufFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[4] = {};
  const bool ok = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(f);
  return ok;
}

std::string GgufTensorName(const std::string& hf_name) {
  for (const auto& [g, h] : kModelNames) {
    if (hf_name == h) return g;
  }
  int64_t layer;
  std::string rest;
  if (!SplitLayer(hf_name, "model.layers.", &layer, &rest)) return "";
  for (const auto& [g, h] : kLayerNames) {
    if (rest == h) return "blk." + std::to_string(layer) + "." + g;
  }
  return "";
}

Result<std::string> GgufConfigJson(const GgufFile& f) {
  auto arch = f.String("general.architecture");
  if (!arch.ok()) return arch.status();
  const std::string a = arch.value();
  const char* hf_arch = a == "llama"   ? "LlamaForCausalLM"
                        : a == "qwen2" ? "Qwen2ForCausalLM"
                        : a == "qwen3" ? "Qwen3ForCausalLM"
                                       : nullptr;
  if (hf_arch == nullptr) {
    return Status::Error(f.path() + ": GGUF architecture '" + EscapeText(a, 64) + "' is not supported (llama, qwen2, qwen3)");
  }
  // The metadata as the config.json it stands for, so that one parser
  // validates both containers.
  json c = {{"architectures", {hf_arch}}, {"model_type", a}, {"hidden_act", "silu"}};
  const std::pair<const char*, const char*> required[] = {{"embedding_length", "hidden_size"},
                                                          {"feed_forward_length", "intermediate_size"},
                                                          {"block_count", "num_hidden_layers"},
                                                          {"attention.head_count", "num_attention_heads"}};
  for (const auto& [key, field] : required) {
    auto v = f.Int(a + "." + key);
    if (!v.ok()) return v.status();
    c[field] = v.value();
  }
  const std::pair<const char*, const char*> optional[] = {{"attention.head_count_kv", "num_key_value_heads"},
                                                          {"context_length", "max_position_embeddings"},
                                                          {"attention.key_length", "head_dim"}};
  for (const auto& [key, field] : optional) {
    if (f.Find(a + "." + key) == nullptr) continue;
    auto v = f.Int(a + "." + key);
    if (!v.ok()) return v.status();
    c[field] = v.value();
  }
  if (f.Find(a + ".vocab_size") != nullptr) {
    auto v = f.Int(a + ".vocab_size");
    if (!v.ok()) return v.status();
    c["vocab_size"] = v.value();
  } else if (auto tokens = f.Array("tokenizer.ggml.tokens", GgufValue::Kind::kString); tokens.ok()) {
    c["vocab_size"] = tokens.value()->strings.size();
  } else if (const TensorView* e = f.FindTensor("token_embd.weight")) {
    c["vocab_size"] = e->shape[0];
  }
  for (const auto& [key, field] : {std::pair<std::string, const char*>{a + ".attention.layer_norm_rms_epsilon", "rms_norm_eps"},
                                   {a + ".rope.freq_base", "rope_theta"}}) {
    if (f.Find(key) == nullptr) continue;
    auto v = f.Float(key);
    if (!v.ok()) return v.status();
    c[field] = v.value();
  }
  if (auto scaling = f.String(a + ".rope.scaling.type"); scaling.ok() && scaling.value() != "none") {
    c["rope_scaling"] = {{"type", scaling.value()}};
  }
  // Llama 3's rope scaling, as llama.cpp keeps it: a factor per frequency.
  if (const TensorView* r = f.FindTensor("rope_freqs.weight")) {
    if (r->dtype != DType::kF32 || r->shape.size() != 1 || r->shape[0] > 1 << 16) {
      return Status::Error(f.path() + ": rope_freqs.weight must be a vector of F32");
    }
    Status st = f.Populate(*r);
    if (!st.ok()) return st;
    std::vector<float> factors(static_cast<size_t>(r->shape[0]));
    std::memcpy(factors.data(), r->data, factors.size() * sizeof(float));
    c["rope_freq_factors"] = factors;
  }
  c["tie_word_embeddings"] = f.FindTensor("output.weight") == nullptr;
  c["attention_bias"] = a == "llama" && f.FindTensor("blk.0.attn_q.bias") != nullptr;
  for (const auto& [key, field] : {std::pair<const char*, const char*>{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                   {"tokenizer.ggml.eos_token_id", "eos_token_id"}}) {
    if (auto v = f.Int(key); v.ok()) c[field] = v.value();
  }
  return c.dump();
}

Result<ModelConfig> GgufModelConfig(const GgufFile& f) {
  auto config_json = GgufConfigJson(f);
  if (!config_json.ok()) return config_json.status();
  json tokenizer_config = json::object();
  if (auto add_bos = f.Bool("tokenizer.ggml.add_bos_token"); add_bos.ok()) tokenizer_config["add_bos_token"] = add_bos.value();
  return ModelConfig::Parse(config_json.value(), tokenizer_config.dump(), f.path() + " (GGUF metadata read as config.json)");
}

Result<std::map<std::string, TensorView>> GgufModelTensors(const GgufFile& f, const ModelConfig& config) {
  std::map<std::string, TensorView> out;
  const bool interleaved = config.model_type == "llama";
  for (const auto& [name, view] : f.tensors()) {
    if (name == "rope_freqs.weight") continue;  // llama3 rope factors: in the config (rope_freq_factors)
    const std::string hf = HfName(name);
    if (hf.empty()) {
      return Status::Error(f.path() + ": GGUF tensor '" + EscapeText(name, 96) + "' is not one Strata knows");
    }
    TensorView v = view;
    v.name = hf;
    if (interleaved && name.size() > 13 && name.compare(name.size() - 13, 13, "attn_q.weight") == 0) {
      v.interleaved_rope_heads = config.num_heads;
    } else if (interleaved && name.size() > 13 && name.compare(name.size() - 13, 13, "attn_k.weight") == 0) {
      v.interleaved_rope_heads = config.num_kv_heads;
    }
    out.emplace(hf, std::move(v));
  }
  return out;
}

}  // namespace strata
