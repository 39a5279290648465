#pragma once
// What the engine's tests share: loading a shard of a test model, running a
// prompt and greedy decode through a chain of shards, the test model (or it
// quantized by strata quantize), and the two model shapes they use.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/cli/test_model.h"
#include "node/engine/llama_shard.h"
#include "storage/env.h"
#include "tests/test_util.h"

namespace strata::testing {

extern PosixEnv env_;  // the real filesystem, as main() would wire it

std::unique_ptr<LlamaShard> LoadShard(const std::string& dir, int64_t first, int64_t end, TensorDType dtype,
                                      ShardOptions o = {});
int32_t Argmax(const std::vector<float>& v);
// Runs a prompt and greedy decode steps through a chain of shards; returns
// the logits of every step.
std::vector<std::vector<float>> RunChain(std::vector<std::unique_ptr<LlamaShard>>& chain,
                                         const std::vector<int32_t>& prompt, int steps, uint64_t id = 1);
// `model` written as GGUF in `type` at `out` (weights only: the engine needs no vocabulary).
std::string Quantized(const std::string& model, const std::string& type, const std::string& out);
// The test model at `dir`, or (quant set) that model written by strata
// quantize as DIR/model.gguf in that type.
std::string ModelPath(const TempDir& dir, const TestModelSpec& spec, const std::string& quant);
// Five layers, a 100-piece tokenizer.
TestModelSpec Spec();
// A shape whose matrices take the K formats (rows of 256) and, in
// ffn_down (rows of 704), llama.cpp's fallbacks.
TestModelSpec QuantSpec();

}  // namespace strata::testing
