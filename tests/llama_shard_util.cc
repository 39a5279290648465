#include "tests/llama_shard_util.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "storage/gguf_quantize.h"

namespace strata::testing {

PosixEnv env_;

std::unique_ptr<LlamaShard> LoadShard(const std::string& dir, int64_t first, int64_t end, TensorDType dtype,
                                      ShardOptions o) {
  auto ckpt = Checkpoint::Open(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().message();
  o.first_layer = first;
  o.end_layer = end;
  o.dtype = dtype;
  auto shard = LlamaShard::Load(std::move(ckpt.value()), o);
  EXPECT_TRUE(shard.ok()) << shard.status().message();
  return std::move(shard.value());
}

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Runs a prompt and greedy decode steps through a chain of shards; returns
// the logits of every step.
std::vector<std::vector<float>> RunChain(std::vector<std::unique_ptr<LlamaShard>>& chain,
                                         const std::vector<int32_t>& prompt, int steps, uint64_t id) {
  for (auto& s : chain) EXPECT_TRUE(s->OpenSession(id, 64).ok());
  std::vector<std::vector<float>> all;
  std::vector<int32_t> tokens = prompt;
  int64_t pos = 0;
  for (int step = 0; step <= steps; ++step) {
    StageInput in;
    in.tokens = tokens;
    for (auto& s : chain) {
      auto out = s->Forward(StepAt(id, pos, in));
      EXPECT_TRUE(out.ok()) << out.status().message();
      if (!out.ok()) return all;
      in = StageInput();
      in.hidden = std::move(out->hidden);
      if (s->is_last()) all.push_back(out->logits);
    }
    pos += static_cast<int64_t>(tokens.size());
    tokens = {Argmax(all.back())};
  }
  return all;
}

// `model` written as GGUF in `type` at `out` (weights only: the engine needs no vocabulary).
std::string Quantized(const std::string& model, const std::string& type, const std::string& out) {
  auto ckpt = Checkpoint::Open(model);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().message();
  GgufQuantizeOptions q;
  q.type = type;
  q.out = out;
  Status st = WriteQuantizedGguf(env_, *ckpt.value(), q);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

// The test model at `dir`, or (quant set) that model written by strata
// quantize as DIR/model.gguf in that type.
std::string ModelPath(const TempDir& dir, const TestModelSpec& spec, const std::string& quant) {
  testing::MakeModel(dir.path(), spec);
  if (quant.empty()) return dir.path();
  return Quantized(dir.path(), quant, dir / "model.gguf");
}

TestModelSpec Spec() {
  TestModelSpec s;
  s.layers = 5;
  s.tokenizer_vocab = 100;
  return s;
}

// A shape whose matrices take the K formats (rows of 256) and, in
// ffn_down (rows of 704), llama.cpp's fallbacks.
TestModelSpec QuantSpec() {
  TestModelSpec s = Spec();
  s.hidden = 256;
  s.heads = 4;
  s.kv_heads = 2;
  s.intermediate = 704;
  return s;
}

}  // namespace strata::testing
