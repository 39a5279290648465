#pragma once
// A Llama-family model's shape, read from a Hugging Face checkpoint's
// config.json (and tokenizer_config.json for BOS handling). Load() validates
// every field it uses; an unsupported architecture is refused by name.
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace strata {

// Sanity bounds on a config's sizes, far above any real model.
inline constexpr int64_t kMaxVocab = int64_t{1} << 22;
inline constexpr int64_t kMaxWidth = int64_t{1} << 16;
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxHeads = 1024;
inline constexpr int64_t kMaxContext = int64_t{1} << 22;

struct ModelConfig {
  std::string architecture;   // e.g. "LlamaForCausalLM"
  std::string model_type;     // "llama" | "mistral" | "qwen2" | "qwen3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position = 0;   // the context length
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  // What each rotary frequency's inv_freq is divided by: Llama 3's
  // rope_scaling ("llama3"), "linear", or a GGUF file's rope_freqs. Empty: none.
  std::vector<float> rope_freq_factors;  // [head_dim / 2]
  bool qk_norm = false;       // Qwen3: an RMSNorm over each head's q and k, before RoPE
  bool tie_word_embeddings = false;
  bool qkv_bias = false;      // Qwen2, or Llama with attention_bias
  bool o_bias = false;        // Llama with attention_bias
  bool mlp_bias = false;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  bool add_bos = true;        // from tokenizer_config.json's add_bos_token

  static Result<ModelConfig> Load(const std::string& dir);
  static Result<ModelConfig> Parse(const std::string& config_json, const std::string& tokenizer_config_json,
                                   const std::string& origin);

 private:
  static Result<ModelConfig> ParseJson(const std::string& config_json, const std::string& tokenizer_config_json,
                                       const std::string& origin);
};

}  // namespace strata
