// libFuzzer: tokenizer_config.json, as ModelConfig reads it beside a valid
// config.json. It must never throw.
#include <cstdint>
#include <string>

#include "storage/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kConfig =
      R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":32,"hidden_size":16,)"
      R"("intermediate_size":32,"num_hidden_layers":2,"num_attention_heads":2})";
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = strata::ModelConfig::Parse(kConfig, text, "fuzz");
  if (!config.ok()) __builtin_trap();  // a bad tokenizer_config.json never fails a good config
  return 0;
}
