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
#include "tests/llama_shard_util.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::Argmax;
using testing::LoadShard;
using testing::ModelPath;
using testing::QuantSpec;
using testing::Quantized;
using testing::RunChain;
using testing::Spec;
using testing::TempDir;
using testing::env_;

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

TEST(LlamaShardTest, WholeEqualsPiecewiseF32) { ExpectWholeEqualsPiecewise(Spec(), TensorDType::kF32); }

TEST(LlamaShardTest, WholeEqualsPiecewiseBf16) {
  TestModelSpec s = Spec();
  s.dtype = DType::kBF16;
  ExpectWholeEqualsPiecewise(s, TensorDType::kBF16);
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
    auto out = shard->Forward(StepAt(1, 0, in));
    if (!out.ok()) failed = out.status();
  }
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("reading streamed layer"), std::string::npos) << failed.message();
  EXPECT_NE(failed.message().find("Input/output error"), std::string::npos) << failed.message();
  faults.Heal();
  auto out = shard->Forward(StepAt(1, 0, in));  // the disk is back: so is the shard
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
  auto out = shard->Forward(StepAt(7, 0, in));
  ASSERT_TRUE(out.ok());
  for (int step = 0; step < 10; ++step) {
    const int32_t next = Argmax(out->logits);
    seq.push_back(next);
    in.tokens = {next};
    out = shard->Forward(StepAt(7, static_cast<int64_t>(seq.size()) - 1, in));
    ASSERT_TRUE(out.ok());
    // Fresh session, whole sequence in one forward.
    ASSERT_TRUE(shard->OpenSession(100 + step, 64).ok());
    StageInput full;
    full.tokens = seq;
    auto ref = shard->Forward(StepAt(100 + step, 0, full));
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
        auto out = shard->Forward(StepAt(s, pos[s], in[s]));
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
  ASSERT_TRUE(shard->Forward(StepAt(1, 0, in)).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 2 * page + scratch);
  in.tokens = {6, 7, 8};
  ASSERT_TRUE(shard->Forward(StepAt(1, 5, in)).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 2 * page + scratch) << "8 tokens still fit two pages";
  in.tokens = {9};
  ASSERT_TRUE(shard->Forward(StepAt(1, 8, in)).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 3 * page + scratch);
  shard->CloseSession(1);
  ASSERT_TRUE(shard->OpenSession(2, 64).ok());
  in.tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_TRUE(shard->Forward(StepAt(2, 0, in)).ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 3 * page + scratch) << "a closed session's pages are reused";
  // A tier with room for the scratch and two pages refuses the third.
  TierBudgets small;
  small.bytes[static_cast<int>(MemoryTier::kRam)] = scratch + 2 * page;
  MemoryAccountant tight(small);
  o.memory = &tight;
  auto tight_shard = LoadShard(dir.path(), 0, spec.layers, TensorDType::kF32, o);
  ASSERT_TRUE(tight_shard->OpenSession(1, 64).ok());
  in.tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(tight_shard->Forward(StepAt(1, 0, in)).ok());
  in.tokens = {9};
  auto full = tight_shard->Forward(StepAt(1, 8, in));
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
  auto r = first->Forward(StepAt(1, 0, in));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("token id 5000 is outside the vocabulary of 512"), std::string::npos);
  in.tokens = {1, 2};
  r = first->Forward(StepAt(1, 3, in));
  ASSERT_FALSE(r.ok()) << "a gap in positions";
  EXPECT_NE(r.status().message().find("do not follow"), std::string::npos);
  in.tokens = std::vector<int32_t>(17, 3);
  EXPECT_FALSE(first->Forward(StepAt(1, 0, in)).ok()) << "past the capacity";
  in.tokens = {1};
  EXPECT_FALSE(first->Forward(StepAt(99, 0, in)).ok()) << "unknown session";
  StageInput hidden;
  hidden.hidden.dtype = TensorDType::kF32;
  hidden.hidden.shape = {2, 63};
  hidden.hidden.data.resize(2 * 63 * 4);
  r = second->Forward(StepAt(1, 0, hidden));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("hidden states must be [tokens, 64] f32"), std::string::npos);
  EXPECT_FALSE(second->Forward(StepAt(1, 0, in)).ok()) << "tokens to a later stage";
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
