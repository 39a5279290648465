// Continuous batching in the engine (node/engine/llama_shard_batch): steps
// of several sessions in one forward per stage give, bit for bit, what each
// gives alone, for every dtype, architecture, quantized format and streamed
// layers; a bad step in a batch fails alone.
#include <gtest/gtest.h>

#include <cstring>

#include "node/engine/llama_shard.h"
#include "tests/llama_shard_util.h"

namespace strata {
namespace {

using testing::Argmax;
using testing::LoadShard;
using testing::ModelPath;
using testing::QuantSpec;
using testing::RunChain;
using testing::Spec;
using testing::TempDir;
using testing::env_;

// Continuous batching: one ForwardBatch per stage per tick, sessions
// joining with their prompt (a chunk in the batch) and leaving when their
// tokens are done. Returns each session's logits: the prompt's, then one per
// decode step.
std::vector<std::vector<std::vector<float>>> RunBatched(std::vector<std::unique_ptr<LlamaShard>>& chain,
                                                        const std::vector<std::vector<int32_t>>& prompts,
                                                        const std::vector<int>& join, int steps) {
  const size_t n = prompts.size();
  std::vector<std::vector<std::vector<float>>> logits(n);
  std::vector<int64_t> pos(n, 0);
  for (size_t i = 0; i < n; ++i) {
    for (auto& s : chain) EXPECT_TRUE(s->OpenSession(100 + i, 64).ok());
  }
  for (int tick = 0; tick <= join.back() + steps; ++tick) {
    std::vector<size_t> batch;
    std::vector<StageInput> inputs;
    for (size_t i = 0; i < n; ++i) {
      StageInput in;
      if (tick == join[i]) {
        in.tokens = prompts[i];
      } else if (tick > join[i] && static_cast<int>(logits[i].size()) <= steps) {
        in.tokens = {Argmax(logits[i].back())};
      } else {
        continue;
      }
      batch.push_back(i);
      inputs.push_back(std::move(in));
    }
    if (batch.empty()) continue;
    std::vector<int64_t> rows;
    for (const auto& in : inputs) rows.push_back(static_cast<int64_t>(in.tokens.size()));
    for (auto& s : chain) {
      std::vector<StageStep> steps_in;
      for (size_t k = 0; k < batch.size(); ++k) {
        steps_in.push_back(StepAt(100 + batch[k], static_cast<uint32_t>(pos[batch[k]]), inputs[k]));
      }
      std::vector<const StageStep*> view;
      for (const auto& step : steps_in) view.push_back(&step);
      auto out = s->ForwardBatch(view);
      EXPECT_EQ(out.size(), batch.size());
      for (size_t k = 0; k < batch.size(); ++k) {
        EXPECT_TRUE(out[k].ok()) << out[k].status().message();
        if (!out[k].ok()) return logits;
        inputs[k] = StageInput();
        inputs[k].hidden = std::move(out[k]->hidden);
        if (s->is_last()) logits[batch[k]].push_back(out[k]->logits);
      }
    }
    for (size_t k = 0; k < batch.size(); ++k) pos[batch[k]] += rows[k];
  }
  return logits;
}

void ExpectBatchedEqualsAlone(TensorDType dtype, bool streamed, const std::string& quant = "", const std::string& arch = "llama") {
  TempDir dir, swap;
  TestModelSpec spec = quant.empty() ? Spec() : QuantSpec();
  spec.arch = arch;
  spec.layers = 6;
  const std::string model = ModelPath(dir, spec, quant);
  const std::vector<std::pair<int64_t, int64_t>> stages = {{0, 2}, {2, 5}, {5, 6}};
  std::vector<std::unique_ptr<LlamaShard>> alone, batched;
  for (const auto& [first, end] : stages) {
    alone.push_back(LoadShard(model, first, end, dtype));
    ShardOptions o;
    if (streamed) {
      o.resident_layers = 1;
      o.swap_dir = swap.path();
      o.env = &env_;
    }
    batched.push_back(LoadShard(model, first, end, dtype, o));
  }
  // Six sessions of different lengths, so that they sit at different
  // positions; each joins with its whole prompt in the batch (in BF16 a
  // chunk shares the forward; in f32 it runs alone inside ForwardBatch); the
  // batch grows from one to six (the kernel's group of four and a
  // remainder) and shrinks again.
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 17, 250, 3}, {9, 8}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {300}, {42, 43, 44}, {5, 6, 7}};
  const std::vector<int> join = {0, 0, 1, 2, 3, 5};
  const int kSteps = 6;
  auto together = RunBatched(batched, prompts, join, kSteps);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto reference = RunChain(alone, prompts[i], kSteps, 1 + i);
    ASSERT_EQ(together[i].size(), reference.size()) << "session " << i;
    for (size_t t = 0; t < reference.size(); ++t) {
      EXPECT_EQ(std::memcmp(reference[t].data(), together[i][t].data(), reference[t].size() * sizeof(float)), 0)
          << "session " << i << " step " << t;
    }
  }
}

TEST(LlamaShardBatchTest, BatchedDecodeIsBitIdenticalToAloneF32) { ExpectBatchedEqualsAlone(TensorDType::kF32, false); }
TEST(LlamaShardBatchTest, BatchedDecodeIsBitIdenticalToAloneBf16) { ExpectBatchedEqualsAlone(TensorDType::kBF16, false); }
TEST(LlamaShardBatchTest, BatchedDecodeIsBitIdenticalToAloneQwen3AndLlama3) {
  ExpectBatchedEqualsAlone(TensorDType::kBF16, false, "", "qwen3");
  ExpectBatchedEqualsAlone(TensorDType::kF32, false, "", "llama3");
}
TEST(LlamaShardBatchTest, BatchedDecodeIsBitIdenticalToAloneQuantized) {
  ExpectBatchedEqualsAlone(TensorDType::kF32, false, "q4_k_m");
  ExpectBatchedEqualsAlone(TensorDType::kBF16, false, "q8_0");
}
TEST(LlamaShardBatchTest, BatchedDecodeIsBitIdenticalToAloneWithStreamedLayers) {
  ExpectBatchedEqualsAlone(TensorDType::kBF16, true);
}

// A bad step in a batch fails alone, naming why; the others run.
TEST(LlamaShardBatchTest, BatchedBadStepFailsAlone) {
  TempDir dir;
  testing::MakeModel(dir.path(), Spec());
  auto shard = LoadShard(dir.path(), 0, Spec().layers, TensorDType::kBF16);
  for (uint64_t id : {1, 2}) ASSERT_TRUE(shard->OpenSession(id, 8).ok());
  StageInput one, two, bad;
  one.tokens = {5};
  two.tokens.assign(65, 5);  // more positions than the kernels take at once
  bad.tokens = {1 << 20};
  const std::vector<StageStep> steps = {StepAt(1, 0, one), StepAt(2, 0, two), StepAt(1, 0, one), StepAt(2, 0, bad),
                                        StepAt(3, 0, one)};
  auto out = shard->ForwardBatch({&steps[0], &steps[1], &steps[2], &steps[3], &steps[4]});
  ASSERT_EQ(out.size(), 5u);
  EXPECT_TRUE(out[0].ok());
  EXPECT_NE(out[1].status().message().find("1 to 64 positions"), std::string::npos);
  EXPECT_NE(out[2].status().message().find("twice"), std::string::npos);
  EXPECT_NE(out[3].status().message().find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(out[4].status().message().find("unknown session"), std::string::npos);
  auto alone = shard->Forward(StepAt(2, 0, one));
  ASSERT_TRUE(alone.ok());
}

}  // namespace
}  // namespace strata
