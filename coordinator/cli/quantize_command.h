#pragma once
// strata quantize: a Hugging Face checkpoint (safetensors + tokenizer.model)
// as one GGUF file (storage/gguf_quantize) with its SentencePiece
// vocabulary as tokenizer.ggml.* and its chat template.
#include <functional>
#include <string>

#include "base/status.h"
#include "storage/env.h"
#include "storage/gguf_quantize.h"

namespace strata {

struct QuantizeOptions {
  std::string model_dir;
  std::string type;  // QuantizeTypes()
  std::string out;
  std::function<void(uint64_t done, uint64_t total)> progress;
};

Status QuantizeModel(Env& env, const QuantizeOptions& options);

}  // namespace strata
