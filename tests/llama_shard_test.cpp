// The engine: a model run whole equals the same layers run piecewise (bit for
// bit), decoding with the KV cache matches recomputing the whole sequence,
// and bad inputs are refused with a reason.
#include "node/engine/llama_shard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "storage/fault_env.h"
#include "storage/gguf_quantize.h"
#include "storage/safetensors.h"
#include "tests/test_util.h"

namespace strata {
namespace {

PosixEnv env_;  // the real filesystem, as main() would wire it

using testing::TempDir;

std::unique_ptr<LlamaShard> LoadShard(const std::string& dir, int64_t first, int64_t end, TensorDType dtype,
                                      ShardOptions o = {}) {
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
                                         const std::vector<int32_t>& prompt, int steps, uint64_t id = 1) {
  for (auto& s : chain) EXPECT_TRUE(s->OpenSession(id, 64).ok());
  std::vector<std::vector<float>> all;
  std::vector<int32_t> tokens = prompt;
  int64_t pos = 0;
  for (int step = 0; step <= steps; ++step) {
    StageInput in;
    in.tokens = tokens;
    for (auto& s : chain) {
      auto out = s->Forward(id, pos, in);
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

void ExpectWholeEqualsPiecewise(const TestModelSpec& spec, TensorDType dtype, const std::string& quant = "") {
  TempDir dir;
  const std::string model = ModelPath(dir, spec, quant);
  std::vector<std::unique_ptr<LlamaShard>> whole, pieces;
  whole.push_back(LoadShard(model, 0, spec.layers, dtype));
  pieces.push_back(LoadShard(model, 0, 1, dtype));
  pieces.push_back(LoadShard(model, 1, 3, dtype));
  pieces.push_back(LoadShard(model, 3, spec.layers, dtype));
  const std::vector<int32_t> prompt = {1, 17, 250, 3, 99, 401, 7};
  auto a = RunChain(whole, prompt, 6);
  auto b = RunChain(pieces, prompt, 6);
  ASSERT_EQ(a.size(), 7u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), static_cast<size_t>(spec.vocab));
    EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)), 0) << "step " << i;
  }
}

TestModelSpec Spec() {
  TestModelSpec s;
  s.layers = 5;
  s.tokenizer_vocab = 100;
  return s;
}

TEST(LlamaShardTest, WholeEqualsPiecewiseF32) { ExpectWholeEqualsPiecewise(Spec(), TensorDType::kF32); }

TEST(LlamaShardTest, WholeEqualsPiecewiseBf16) {
  TestModelSpec s = Spec();
  s.dtype = DType::kBF16;
  ExpectWholeEqualsPiecewise(s, TensorDType::kBF16);
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

TEST(LlamaShardTest, QuantizedWholeEqualsPiecewise) {
  for (const char* type : {"q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"}) {
    SCOPED_TRACE(type);
    ExpectWholeEqualsPiecewise(QuantSpec(), TensorDType::kF32, type);
  }
  ExpectWholeEqualsPiecewise(QuantSpec(), TensorDType::kBF16, "q4_k_m");
  TestModelSpec qwen = QuantSpec();
  qwen.qkv_bias = true;
  qwen.tie_embeddings = true;
  ExpectWholeEqualsPiecewise(qwen, TensorDType::kF32, "q4_k_m");
}

// The architectures of make-model --arch: Llama 3 (rope_scaling llama3),
// Qwen 3 (q/k norms, wide heads), Mistral: split equals whole, bit for bit;
// Qwen 3's norms in the batched path too.
TEST(LlamaShardTest, EveryArchitectureWholeEqualsPiecewise) {
  for (const char* arch : {"llama3", "qwen3", "mistral"}) {
    SCOPED_TRACE(arch);
    TestModelSpec s = Spec();
    s.arch = arch;
    ExpectWholeEqualsPiecewise(s, TensorDType::kF32);
    s.dtype = DType::kBF16;
    ExpectWholeEqualsPiecewise(s, TensorDType::kBF16);
  }
  TestModelSpec q = QuantSpec();
  q.arch = "qwen3";
  ExpectWholeEqualsPiecewise(q, TensorDType::kF32, "q4_k_m");
}

// What each architecture adds changes the logits (a step left out would
// pass the split tests): rope scaling and q/k norms against the same
// weights without them.
TEST(LlamaShardTest, RopeScalingAndQkNormsChangeTheLogits) {
  for (const char* arch : {"llama3", "qwen3"}) {
    SCOPED_TRACE(arch);
    TempDir dir;
    TestModelSpec s = Spec();
    s.arch = arch;
    testing::MakeModel(dir.path(), s);
    std::vector<std::unique_ptr<LlamaShard>> with;
    with.push_back(LoadShard(dir.path(), 0, s.layers, TensorDType::kF32));
    const std::vector<int32_t> prompt = {1, 17, 250, 3, 99, 401, 7};
    auto a = RunChain(with, prompt, 2);
    // The same weights, the step switched off in the config.
    auto config = nlohmann::json::parse(testing::ReadFile(dir / "config.json"));
    if (std::string(arch) == "llama3") {
      config.erase("rope_scaling");
    } else {
      config["model_type"] = "llama";  // the same wide heads, no q/k norms (their tensors left unread)
      config["architectures"] = {"LlamaForCausalLM"};
    }
    { std::ofstream(dir / "config.json") << config.dump(); }
    std::vector<std::unique_ptr<LlamaShard>> without;
    without.push_back(LoadShard(dir.path(), 0, s.layers, TensorDType::kF32));
    auto b = RunChain(without, prompt, 2);
    EXPECT_NE(std::memcmp(a[0].data(), b[0].data(), a[0].size() * sizeof(float)), 0);
  }
}

// An f32 GGUF holds the checkpoint's values exactly (q/k rows put back
// from GGUF's interleaved order; Llama 3's rope factors as rope_freqs, Qwen
// 3's norms as attn_q_norm/attn_k_norm): its logits are the checkpoint's, bit for bit.
TEST(LlamaShardTest, F32GgufEqualsItsCheckpoint) {
  for (const char* arch : {"llama", "llama3", "qwen3"}) {
  SCOPED_TRACE(arch);
  TempDir dir;
  TestModelSpec spec = QuantSpec();
  spec.arch = arch;
  const std::string gguf = ModelPath(dir, spec, "f32");
  std::vector<std::unique_ptr<LlamaShard>> a, b;
  a.push_back(LoadShard(dir.path(), 0, spec.layers, TensorDType::kF32));
  b.push_back(LoadShard(gguf, 0, spec.layers, TensorDType::kF32));
  const std::vector<int32_t> prompt = {1, 17, 250, 3, 99, 401, 7};
  auto x = RunChain(a, prompt, 6), y = RunChain(b, prompt, 6);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(std::memcmp(x[i].data(), y[i].data(), x[i].size() * sizeof(float)), 0) << "step " << i;
  }
  }
}

// Quantized weights stay close to their f32 originals: the logits of the
// same steps differ by a fraction of their spread. (A random-weight model
// amplifies quantization error far more than a trained one: the default
// model's figures are in quantize_test and its model card.)
TEST(LlamaShardTest, QuantizedLogitsStayCloseToF32) {
  const TestModelSpec spec = QuantSpec();
  TempDir dir;
  const std::string f32 = ModelPath(dir, spec, "");
  std::vector<std::unique_ptr<LlamaShard>> ref;
  ref.push_back(LoadShard(f32, 0, spec.layers, TensorDType::kF32));
  const std::vector<int32_t> prompt = {1, 17, 250, 3, 99, 401, 7};
  auto want = RunChain(ref, prompt, 0);
  for (const auto& [type, bound] : {std::pair<const char*, double>{"q8_0", 0.05}, {"q6_k", 0.15}, {"q4_k_m", 0.4}}) {
    std::vector<std::unique_ptr<LlamaShard>> chain;
    chain.push_back(LoadShard(Quantized(f32, type, dir / (std::string(type) + ".gguf")), 0, spec.layers, TensorDType::kF32));
    auto got = RunChain(chain, prompt, 0);
    double worst = 0, lo = 1e30, hi = -1e30;
    for (size_t i = 0; i < want[0].size(); ++i) {
      worst = std::max(worst, std::fabs(static_cast<double>(got[0][i]) - want[0][i]));
      lo = std::min<double>(lo, want[0][i]);
      hi = std::max<double>(hi, want[0][i]);
    }
    EXPECT_LT(worst, bound * (hi - lo)) << type;
    EXPECT_GT(worst, 0) << type << ": quantized logits equal f32's exactly: were the weights quantized at all?";
  }
}

TEST(LlamaShardTest, WholeEqualsPiecewiseQwen2TiedF16Weights) {
  TestModelSpec s = Spec();
  s.qkv_bias = true;
  s.tie_embeddings = true;
  s.dtype = DType::kF16;
  s.files = 2;
  ExpectWholeEqualsPiecewise(s, TensorDType::kF32);
}

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
      std::vector<BatchStep> steps_in;
      for (size_t k = 0; k < batch.size(); ++k) steps_in.push_back({100 + batch[k], pos[batch[k]], &inputs[k]});
      auto out = s->ForwardBatch(steps_in);
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

TEST(LlamaShardTest, BatchedDecodeIsBitIdenticalToAloneF32) { ExpectBatchedEqualsAlone(TensorDType::kF32, false); }
TEST(LlamaShardTest, BatchedDecodeIsBitIdenticalToAloneBf16) { ExpectBatchedEqualsAlone(TensorDType::kBF16, false); }
TEST(LlamaShardTest, BatchedDecodeIsBitIdenticalToAloneQwen3AndLlama3) {
  ExpectBatchedEqualsAlone(TensorDType::kBF16, false, "", "qwen3");
  ExpectBatchedEqualsAlone(TensorDType::kF32, false, "", "llama3");
}
TEST(LlamaShardTest, BatchedDecodeIsBitIdenticalToAloneQuantized) {
  ExpectBatchedEqualsAlone(TensorDType::kF32, false, "q4_k_m");
  ExpectBatchedEqualsAlone(TensorDType::kBF16, false, "q8_0");
}
TEST(LlamaShardTest, BatchedDecodeIsBitIdenticalToAloneWithStreamedLayers) {
  ExpectBatchedEqualsAlone(TensorDType::kBF16, true);
}

// A bad step in a batch fails alone, naming why; the others run.
TEST(LlamaShardTest, BatchedBadStepFailsAlone) {
  TempDir dir;
  testing::MakeModel(dir.path(), Spec());
  auto shard = LoadShard(dir.path(), 0, Spec().layers, TensorDType::kBF16);
  for (uint64_t id : {1, 2}) ASSERT_TRUE(shard->OpenSession(id, 8).ok());
  StageInput one, two, bad;
  one.tokens = {5};
  two.tokens.assign(65, 5);  // more positions than the kernels take at once
  bad.tokens = {1 << 20};
  auto out = shard->ForwardBatch({{1, 0, &one}, {2, 0, &two}, {1, 0, &one}, {2, 0, &bad}, {3, 0, &one}});
  ASSERT_EQ(out.size(), 5u);
  EXPECT_TRUE(out[0].ok());
  EXPECT_NE(out[1].status().message().find("1 to 64 positions"), std::string::npos);
  EXPECT_NE(out[2].status().message().find("twice"), std::string::npos);
  EXPECT_NE(out[3].status().message().find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(out[4].status().message().find("unknown session"), std::string::npos);
  auto alone = shard->Forward(2, 0, one);
  ASSERT_TRUE(alone.ok());
}

// Decoding token by token with the KV cache gives the logits of recomputing
// the whole sequence from scratch.
// Layers streamed from NVMe at every forward compute exactly what the same
// layers compute from RAM, on a three-way split, with any number resident
// (none, some, or one streamed layer that then stays in its slot).
void ExpectStreamedEqualsInRam(TensorDType dtype, bool thread_pool_io) {
  TempDir dir, swap;
  TestModelSpec spec = Spec();
  spec.layers = 7;
  testing::MakeModel(dir.path(), spec);
  const std::vector<std::pair<int64_t, int64_t>> stages = {{0, 2}, {2, 5}, {5, 7}};
  const std::vector<int64_t> resident = {0, 1, 1};  // stage 2 streams one layer, stage 1 two, stage 0 all
  std::vector<std::unique_ptr<LlamaShard>> in_ram, streamed;
  for (size_t i = 0; i < stages.size(); ++i) {
    in_ram.push_back(LoadShard(dir.path(), stages[i].first, stages[i].second, dtype));
    ShardOptions o;
    o.resident_layers = resident[i];
    o.swap_dir = swap.path();
    o.env = &env_;
    o.swap_thread_pool_io = thread_pool_io;
    streamed.push_back(LoadShard(dir.path(), stages[i].first, stages[i].second, dtype, o));
    ASSERT_NE(streamed.back(), nullptr);
  }
  const std::vector<int32_t> prompt = {1, 17, 250, 3, 99, 401, 7};
  auto a = RunChain(in_ram, prompt, 8);
  auto b = RunChain(streamed, prompt, 8);
  ASSERT_EQ(a.size(), 9u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)), 0) << "step " << i;
  }
}

TEST(LlamaShardTest, StreamedLayersAreBitIdenticalF32) { ExpectStreamedEqualsInRam(TensorDType::kF32, false); }
TEST(LlamaShardTest, StreamedLayersAreBitIdenticalBf16) { ExpectStreamedEqualsInRam(TensorDType::kBF16, false); }
TEST(LlamaShardTest, StreamedLayersAreBitIdenticalThroughThePreadPool) {
  ExpectStreamedEqualsInRam(TensorDType::kF32, true);
}

TEST(LlamaShardTest, StreamedLayerReadErrorFailsTheStepWithItsCause) {
  TempDir dir, swap;
  testing::MakeModel(dir.path(), Spec());
  FaultInjectionEnv faults(env_);
  ShardOptions o;
  o.resident_layers = 1;
  o.swap_dir = swap.path();
  o.env = &faults;
  o.swap_thread_pool_io = true;
  auto shard = LoadShard(dir.path(), 0, 4, TensorDType::kF32, o);
  ASSERT_TRUE(shard->OpenSession(1, 32).ok());
  faults.FailReads(EIO);
  StageInput in;
  in.tokens = {1, 2, 3};
  // The first forward may find its first streamed layers already read at
  // load; run until a read fails.
  Status failed = Status::Ok();
  for (int i = 0; i < 3 && failed.ok(); ++i) {
    auto out = shard->Forward(1, 0, in);
    if (!out.ok()) failed = out.status();
  }
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("reading streamed layer"), std::string::npos) << failed.message();
  EXPECT_NE(failed.message().find("Input/output error"), std::string::npos) << failed.message();
  faults.Heal();
  auto out = shard->Forward(1, 0, in);  // the disk is back: so is the shard
  EXPECT_TRUE(out.ok()) << out.status().message();
}

// INT8 KV: a split still changes nothing (scales are per token, head and
// channel group, so no value depends on which node holds its layer), and
// the logits stay close to full-precision KV.
TEST(LlamaShardTest, Int8KvIsBitIdenticalAcrossSplitsAndCloseToFullPrecision) {
  TempDir dir;
  TestModelSpec spec = Spec();
  spec.hidden = 128;  // head_dim 32: one scale group per head
  testing::MakeModel(dir.path(), spec);
  for (TensorDType dtype : {TensorDType::kF32, TensorDType::kBF16}) {
    ShardOptions int8;
    int8.kv_int8 = true;
    std::vector<std::unique_ptr<LlamaShard>> whole, pieces, full;
    whole.push_back(LoadShard(dir.path(), 0, spec.layers, dtype, int8));
    pieces.push_back(LoadShard(dir.path(), 0, 2, dtype, int8));
    pieces.push_back(LoadShard(dir.path(), 2, spec.layers, dtype, int8));
    full.push_back(LoadShard(dir.path(), 0, spec.layers, dtype));
    const std::vector<int32_t> prompt = {1, 17, 250, 3, 99, 401, 7};
    auto a = RunChain(whole, prompt, 12);
    auto b = RunChain(pieces, prompt, 12);
    auto f = RunChain(full, prompt, 12);
    ASSERT_EQ(a.size(), b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)), 0) << "step " << i;
      for (size_t v = 0; v < a[i].size(); ++v) worst = std::max(worst, static_cast<double>(std::fabs(a[i][v] - f[i][v])));
    }
    EXPECT_GT(worst, 0.0) << "int8 KV must actually quantise";
    EXPECT_LT(worst, 0.1) << "int8 KV strays too far from full precision";
  }
}

TEST(LlamaShardTest, DecodeWithCacheMatchesRecompute) {
  TempDir dir;
  TestModelSpec spec = Spec();
  testing::MakeModel(dir.path(), spec);
  auto shard = LoadShard(dir.path(), 0, spec.layers, TensorDType::kF32);
  std::vector<int32_t> seq = {1, 40, 41, 300, 12};
  ASSERT_TRUE(shard->OpenSession(7, 64).ok());
  StageInput in;
  in.tokens = seq;
  auto out = shard->Forward(7, 0, in);
  ASSERT_TRUE(out.ok());
  for (int step = 0; step < 10; ++step) {
    const int32_t next = Argmax(out->logits);
    seq.push_back(next);
    in.tokens = {next};
    out = shard->Forward(7, static_cast<int64_t>(seq.size()) - 1, in);
    ASSERT_TRUE(out.ok());
    // Fresh session, whole sequence in one forward.
    ASSERT_TRUE(shard->OpenSession(100 + step, 64).ok());
    StageInput full;
    full.tokens = seq;
    auto ref = shard->Forward(100 + step, 0, full);
    ASSERT_TRUE(ref.ok());
    float worst = 0;
    for (size_t i = 0; i < ref->logits.size(); ++i) worst = std::max(worst, std::fabs(ref->logits[i] - out->logits[i]));
    EXPECT_LE(worst, 1e-4f) << "step " << step;
    shard->CloseSession(100 + step);
  }
  EXPECT_EQ(shard->session_count(), 1u);
}

// Paged KV: every page size gives the logits of one page that holds the
// whole capacity — the layout of the contiguous cache that paging replaced —
// bit for bit, through a prompt, decode steps and a rewind.
TEST(LlamaShardTest, PagedKvIsBitIdenticalForEveryPageSize) {
  TempDir dir;
  TestModelSpec spec = Spec();
  testing::MakeModel(dir.path(), spec);
  for (TensorDType dtype : {TensorDType::kF32, TensorDType::kBF16}) {
    // Each session's logits, its steps run either alone or taking turns with
    // the other session, so that each step reads its keys back from its pages
    // (the scratch last held the other session's).
    auto run = [&](int64_t page_tokens, bool take_turns) {
      ShardOptions o;
      o.kv_page_tokens = page_tokens;
      auto shard = LoadShard(dir.path(), 0, spec.layers, dtype, o);
      std::vector<std::vector<float>> logits[2];
      StageInput in[2];
      in[0].tokens = {1, 17, 250, 3, 99, 401, 7};
      in[1].tokens = {1, 5, 6};
      int64_t pos[2] = {0, 0};
      for (int s = 0; s < 2; ++s) EXPECT_TRUE(shard->OpenSession(s, 64).ok());
      auto step = [&](int s, int i) {
        if (i == 10) pos[s] -= 3;  // rewind: overwrite the last three positions
        auto out = shard->Forward(s, pos[s], in[s]);
        EXPECT_TRUE(out.ok()) << out.status().message();
        if (!out.ok()) return;
        pos[s] += static_cast<int64_t>(in[s].tokens.size());
        logits[s].push_back(out->logits);
        in[s].tokens = {Argmax(out->logits)};
      };
      if (take_turns) {
        for (int i = 0; i < 14; ++i) for (int s = 0; s < 2; ++s) step(s, i);
      } else {
        for (int s = 0; s < 2; ++s) for (int i = 0; i < 14; ++i) step(s, i);
      }
      std::vector<std::vector<float>> all = logits[0];
      all.insert(all.end(), logits[1].begin(), logits[1].end());
      return all;
    };
    const auto contiguous = run(64, false);  // one page holds the capacity; nothing is read back
    ASSERT_EQ(contiguous.size(), 28u);
    for (int64_t page : {1, 3, 7, 16, 64}) {
      const auto paged = run(page, true);
      ASSERT_EQ(paged.size(), contiguous.size());
      for (size_t i = 0; i < paged.size(); ++i) {
        ASSERT_EQ(std::memcmp(paged[i].data(), contiguous[i].data(), paged[i].size() * sizeof(float)), 0)
            << "page of " << page << " tokens, step " << i << ", " << DTypeName(dtype);
      }
    }
  }
}

TEST(LlamaShardTest, KvPagesAreTakenAsTokensArrive) {
  TempDir dir;
  TestModelSpec spec = Spec();
  testing::MakeModel(dir.path(), spec);
  TierBudgets budgets;
  budgets.bytes[static_cast<int>(MemoryTier::kRam)] = 64u << 20;
  MemoryAccountant memory(budgets);
  ShardOptions o;
  o.memory = &memory;
  o.kv_page_tokens = 4;
  auto shard = LoadShard(dir.path(), 0, spec.layers, TensorDType::kF32, o);
  // A page costs its bytes rounded up to whole 4 KiB blocks: CPU pages are
  // aligned for direct I/O to the NVMe tier.
  const uint64_t page = (4 * shard->kv_bytes_per_token() + 4095) / 4096 * 4096;
  const uint64_t scratch = 64 * shard->kv_bytes_per_token();  // one capacity-shaped block for all layers
  ASSERT_TRUE(shard->OpenSession(1, 64).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 0u) << "nothing is taken at open";
  StageInput in;
  in.tokens = {1, 2, 3, 4, 5};
  ASSERT_TRUE(shard->Forward(1, 0, in).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 2 * page + scratch);
  in.tokens = {6, 7, 8};
  ASSERT_TRUE(shard->Forward(1, 5, in).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 2 * page + scratch) << "8 tokens still fit two pages";
  in.tokens = {9};
  ASSERT_TRUE(shard->Forward(1, 8, in).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 3 * page + scratch);
  shard->CloseSession(1);
  ASSERT_TRUE(shard->OpenSession(2, 64).ok());
  in.tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_TRUE(shard->Forward(2, 0, in).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 3 * page + scratch) << "a closed session's pages are reused";
  // A tier with room for the scratch and two pages refuses the third.
  TierBudgets small;
  small.bytes[static_cast<int>(MemoryTier::kRam)] = scratch + 2 * page;
  MemoryAccountant tight(small);
  o.memory = &tight;
  auto tight_shard = LoadShard(dir.path(), 0, spec.layers, TensorDType::kF32, o);
  ASSERT_TRUE(tight_shard->OpenSession(1, 64).ok());
  in.tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(tight_shard->Forward(1, 0, in).ok());
  in.tokens = {9};
  auto full = tight_shard->Forward(1, 8, in);
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.status().message().find("a KV page of 4 tokens needs"), std::string::npos) << full.status().message();
  EXPECT_NE(full.status().message().find("ram budget"), std::string::npos);
}

TEST(LlamaShardTest, RefusesBadInputs) {
  TempDir dir;
  TestModelSpec spec = Spec();
  testing::MakeModel(dir.path(), spec);
  auto first = LoadShard(dir.path(), 0, 2, TensorDType::kF32);
  auto second = LoadShard(dir.path(), 2, spec.layers, TensorDType::kF32);
  ASSERT_TRUE(first->OpenSession(1, 16).ok());
  ASSERT_TRUE(second->OpenSession(1, 16).ok());
  StageInput in;
  in.tokens = {1, 5000};
  auto r = first->Forward(1, 0, in);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("token id 5000 is outside the vocabulary of 512"), std::string::npos);
  in.tokens = {1, 2};
  r = first->Forward(1, 3, in);
  ASSERT_FALSE(r.ok()) << "a gap in positions";
  EXPECT_NE(r.status().message().find("do not follow"), std::string::npos);
  in.tokens = std::vector<int32_t>(17, 3);
  EXPECT_FALSE(first->Forward(1, 0, in).ok()) << "past the capacity";
  in.tokens = {1};
  EXPECT_FALSE(first->Forward(99, 0, in).ok()) << "unknown session";
  StageInput hidden;
  hidden.hidden.dtype = TensorDType::kF32;
  hidden.hidden.shape = {2, 63};
  hidden.hidden.data.resize(2 * 63 * 4);
  r = second->Forward(1, 0, hidden);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("hidden states must be [tokens, 64] f32"), std::string::npos);
  EXPECT_FALSE(second->Forward(1, 0, in).ok()) << "tokens to a later stage";
  EXPECT_FALSE(first->OpenSession(2, 100000).ok()) << "beyond the context";
}

TEST(LlamaShardTest, NamesMissingTensorAndShapeMismatch) {
  TempDir dir;
  TestModelSpec spec = Spec();
  testing::MakeModel(dir.path(), spec);
  {
    // Rewrite the weights without one tensor.
    auto file = SafetensorsFile::Open(dir / "model.safetensors");
    ASSERT_TRUE(file.ok());
    std::vector<TensorToWrite> keep;
    for (const auto& [name, view] : file.value()->tensors()) {
      if (name == "model.layers.3.mlp.up_proj.weight") continue;
      const TensorView* v = &view;
      keep.push_back({name, v->dtype, v->shape, [v](uint8_t* d) { std::memcpy(d, v->data, v->nbytes); }});
    }
    ASSERT_TRUE(WriteSafetensors(env_, dir / "model.safetensors.new", keep).ok());
  }
  std::rename((dir / "model.safetensors.new").c_str(), (dir / "model.safetensors").c_str());
  auto ckpt = Checkpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok());
  ShardOptions o;
  o.first_layer = 2;
  o.end_layer = 5;
  auto shard = LlamaShard::Load(std::move(ckpt.value()), o);
  ASSERT_FALSE(shard.ok());
  EXPECT_NE(shard.status().message().find("missing tensor 'model.layers.3.mlp.up_proj.weight'"), std::string::npos);
  // Layers without the missing tensor still load: a node touches only its own.
  ckpt = Checkpoint::Open(dir.path());
  o.first_layer = 0;
  o.end_layer = 2;
  EXPECT_TRUE(LlamaShard::Load(std::move(ckpt.value()), o).ok());
}

}  // namespace
}  // namespace strata
