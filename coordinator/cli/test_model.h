#pragma once
// Writes a deterministic random-weight Llama-family checkpoint in the Hugging
// Face layout (config.json, safetensors, tokenizer.model), so tests and
// benchmarks need no download. The tokenizer is a SentencePiece BPE model
// trained on text found on this machine.
#include <cstdint>
#include <string>

#include "base/status.h"
#include "storage/dtype.h"
#include "storage/env.h"

namespace strata {

struct TestModelSpec {
  int64_t hidden = 64;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t intermediate = 172;
  int64_t vocab = 512;
  int64_t context = 256;
  DType dtype = DType::kF32;     // F32, F16 or BF16 on disk
  uint64_t seed = 1;
  double std = 0.08;             // 0.02 makes greedy output repeat one token
  bool tie_embeddings = false;
  bool qkv_bias = false;         // writes a Qwen2 model when set (as arch "qwen2")
  // The architecture's config fields and tensors: "llama" (Llama 2 style),
  // "llama3" (rope_theta 500000, rope_scaling llama3), "qwen2" (q/k/v
  // biases), "qwen3" (q/k norms, head_dim twice hidden/heads), "mistral"
  // (MistralForCausalLM, a sliding window larger than the context).
  std::string arch = "llama";
  int files = 1;                 // >1: model-XXXXX-of-YYYYY.safetensors + index
  std::string corpus;            // tokenizer training text (file); "" = the machine's licence texts
  int64_t tokenizer_vocab = 0;   // 0 = min(vocab, 1000)
};

Status WriteTestModel(Env& env, const std::string& dir, const TestModelSpec& spec);

}  // namespace strata
