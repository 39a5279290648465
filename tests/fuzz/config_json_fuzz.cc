// libFuzzer: config.json parsing (ModelConfig::Parse). It must never throw,
// and an accepted config must satisfy the invariants the engine relies on.
#include <cstdint>
#include <string>

#include "storage/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = strata::ModelConfig::Parse(text, "", "fuzz");
  if (config.ok()) {
    const strata::ModelConfig& c = config.value();
    if (c.num_heads <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0 || c.head_dim % 2 != 0 ||
        c.max_position > strata::kMaxContext || c.hidden_size > strata::kMaxWidth || c.vocab_size > strata::kMaxVocab) {
      __builtin_trap();
    }
  }
  return 0;
}
