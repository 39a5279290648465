#pragma once
// A GGUF file read as a Llama-family checkpoint: the config from its
// `{arch}.*` metadata keys (validated exactly as config.json is), its
// tensors under their Hugging Face names. llama.cpp stores the rows of a
// "llama" model's q_proj and k_proj in the order of interleaved rotary
// pairs; each such view says so (TensorView::interleaved_rope_heads) and
// the loader puts the rows back in Hugging Face's rotate-half order.
//
// Thread-safe: pure functions of an opened file.
#include <map>
#include <string>

#include "base/status.h"
#include "storage/gguf.h"
#include "storage/model_config.h"

namespace strata {

// Whether `path` is a regular file that starts with GGUF's magic.
bool IsGgufFile(const std::string& path);

Result<ModelConfig> GgufModelConfig(const GgufFile& file);
// The metadata as the config.json it stands for (not yet validated: a
// model manifest carries it, and ModelConfig::Parse checks it where used).
Result<std::string> GgufConfigJson(const GgufFile& file);

// Every tensor the model uses, by Hugging Face name; an error names a GGUF
// tensor whose name Strata does not know.
Result<std::map<std::string, TensorView>> GgufModelTensors(const GgufFile& file, const ModelConfig& config);

// The GGUF name of a Hugging Face tensor name ("" for none), for writers.
std::string GgufTensorName(const std::string& hf_name);

}  // namespace strata
