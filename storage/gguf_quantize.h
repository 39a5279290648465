#pragma once
// Writes a checkpoint as one GGUF file that Strata and llama.cpp both read:
// the config as llama.* / qwen2.* metadata and every matrix in the chosen
// block format, with llama.cpp's Q4_K_M / Q5_K_M mix (Q6_K for the output
// and for attn_v and ffn_down in the layers llama.cpp gives more bits) and
// its fallbacks for rows that are not whole 256-element super-blocks (Q5_0,
// Q5_1, Q8_0; F16 below 32). A llama model's q_proj/k_proj rows are written
// in GGUF's interleaved rotary order. Norms and biases stay F32. Format
// conversion only: torch-free, one tensor in memory at a time.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "storage/checkpoint.h"
#include "storage/env.h"
#include "storage/gguf.h"

namespace strata {

struct GgufQuantizeOptions {
  std::string type;  // QuantizeTypes()
  std::string out;
  std::vector<std::pair<std::string, GgufValue>> metadata;  // appended (the tokenizer's)
  // Called after each tensor with bytes of source read so far and in all.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

const char* QuantizeTypes();
bool KnownQuantizeType(const std::string& type);

Status WriteQuantizedGguf(Env& env, const Checkpoint& checkpoint, const GgufQuantizeOptions& options);

}  // namespace strata
