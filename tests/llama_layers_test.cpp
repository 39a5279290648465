// The decoder layer on raw rows (LayerForwardCpu, what a node runs on the
// CPU) against the layer as LibTorch tensors (LayerForward): the same bits,
// for F32, BF16, quantized weights, Qwen3's q/k norms with biases, and the
// rows of several sessions (decode steps and a prompt chunk) in one call.
#include "node/engine/llama_layers.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "node/engine/weight_format.h"

namespace strata {
namespace {

struct Config {
  const char* name;
  torch::ScalarType dtype;
  WeightType weights;  // kF32/kBF16: dense in the compute dtype
  bool qwen3;          // q/k norms and biases
};

torch::Tensor Random(std::vector<int64_t> shape, torch::ScalarType dtype, std::mt19937& rng, float scale = 0.1f) {
  auto t = torch::empty(shape, torch::kFloat32);
  std::normal_distribution<float> d(0.0f, scale);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t.to(dtype);
}

Weight Matrix(int64_t rows, int64_t cols, const Config& c, std::mt19937& rng) {
  auto dense = Random({rows, cols}, torch::kFloat32, rng);
  if (!IsQuantized(c.weights)) return Weight(dense.to(c.dtype));
  Weight w;
  w.rows = rows;
  w.cols = cols;
  WeightRows part;
  part.type = c.weights;
  part.rows = rows;
  const size_t row_bytes = RowBytes(c.weights, cols);
  part.bytes = torch::empty({rows, static_cast<int64_t>(row_bytes)}, torch::kUInt8);
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRow(StorageDType(c.weights), dense.data_ptr<float>() + r * cols, cols,
                part.bytes.data_ptr<uint8_t>() + r * row_bytes);
  }
  w.parts.push_back(part);
  return w;
}

bool SameBits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

void ExpectRawRowsEqualTensors(const Config& c) {
  SCOPED_TRACE(c.name);
  c10::InferenceMode inference;
  std::mt19937 rng(7);
  LlamaDims d{256, 4, 2, 64, 512, 1e-5};  // K formats need 256-wide rows
  const int64_t qkv_rows = (d.heads + 2 * d.kv_heads) * d.head_dim, cap = 16;
  LayerWeights w;
  w.attn_norm = (1 + Random({d.hidden}, torch::kFloat32, rng)).to(c.dtype);
  w.ffn_norm = (1 + Random({d.hidden}, torch::kFloat32, rng)).to(c.dtype);
  w.wqkv = Matrix(qkv_rows, d.hidden, c, rng);
  w.wo = Matrix(d.hidden, d.heads * d.head_dim, c, rng);
  w.w_gate_up = Matrix(2 * d.intermediate, d.hidden, c, rng);
  w.w_down = Matrix(d.hidden, d.intermediate, c, rng);
  if (c.qwen3) {
    w.q_norm = (1 + Random({d.head_dim}, torch::kFloat32, rng)).to(c.dtype);
    w.k_norm = (1 + Random({d.head_dim}, torch::kFloat32, rng)).to(c.dtype);
    w.bqkv = Random({qkv_rows}, c.dtype, rng);
    w.bo = Random({d.hidden}, c.dtype, rng);
  }
  torch::Tensor cos, sin;
  RopeTables(d.head_dim, 10000.0, cap, &cos, &sin);
  // Three sessions: decode steps at positions 5 and 0, a prompt chunk of 3 at 2.
  const std::vector<int64_t> starts = {5, 0, 2}, offsets = {0, 1, 2, 5};
  auto x = Random({offsets.back(), d.hidden}, c.dtype, rng, 1.0f);  // [R, hidden]
  std::vector<LayerCache> tensor_caches, raw_caches;
  for (size_t k = 0; k < starts.size(); ++k) {
    LayerCache cache{Random({d.kv_heads, cap, d.head_dim}, c.dtype, rng, 1.0f),
                     Random({d.kv_heads, cap, d.head_dim}, c.dtype, rng, 1.0f)};
    tensor_caches.push_back({cache.k.clone(), cache.v.clone()});
    raw_caches.push_back(cache);
  }
  std::vector<torch::Tensor> want;
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t T = offsets[k + 1] - offsets[k];
    auto mine = x.narrow(0, offsets[k], T).unsqueeze(0);  // [1, T, hidden]
    want.push_back(LayerForward(d, w, mine, starts[k], cos.narrow(0, starts[k], T), sin.narrow(0, starts[k], T),
                                &tensor_caches[k])
                       .squeeze(0));
  }
  auto got = x.clone();
  ASSERT_TRUE(LayerRunsOnCpu(w, got));
  LayerForwardCpu(d, w, got, offsets, [&](int64_t k, const void* qkv, int64_t T, void* out) {
    AttendRows(d, qkv, T, starts[static_cast<size_t>(k)], cos, sin, &raw_caches[static_cast<size_t>(k)], out,
               c.dtype);
  });
  EXPECT_TRUE(SameBits(got, torch::cat(want, 0)));
  EXPECT_FALSE(SameBits(got, x)) << "the layer changed its rows";
  for (size_t k = 0; k < starts.size(); ++k) {
    EXPECT_TRUE(SameBits(raw_caches[k].k, tensor_caches[k].k)) << "session " << k;
    EXPECT_TRUE(SameBits(raw_caches[k].v, tensor_caches[k].v)) << "session " << k;
  }
}

TEST(LlamaLayersTest, RawRowsGiveTheTensorLayersBits) {
  for (const Config& c : {Config{"f32", torch::kFloat32, WeightType::kF32, false},
                          Config{"bf16", torch::kBFloat16, WeightType::kBF16, false},
                          Config{"f32 qwen3", torch::kFloat32, WeightType::kF32, true},
                          Config{"bf16 qwen3", torch::kBFloat16, WeightType::kBF16, true},
                          Config{"q8_0", torch::kFloat32, WeightType::kQ8_0, false},
                          Config{"q4_k", torch::kFloat32, WeightType::kQ4_K, false},
                          Config{"q6_k bf16", torch::kBFloat16, WeightType::kQ6_K, true}}) {
    ExpectRawRowsEqualTensors(c);
  }
}

TEST(LlamaLayersTest, TrainingAndLongRowsKeepTheTensorPath) {
  std::mt19937 rng(3);
  LayerWeights w;
  w.attn_norm = w.ffn_norm = torch::ones({8});
  w.wqkv = Weight(Random({16, 8}, torch::kFloat32, rng));
  w.wo = w.w_down = Weight(Random({8, 8}, torch::kFloat32, rng));
  w.w_gate_up = Weight(Random({16, 8}, torch::kFloat32, rng));
  {
    c10::InferenceMode inference;
    EXPECT_TRUE(LayerRunsOnCpu(w, torch::zeros({4, 8})));
    EXPECT_FALSE(LayerRunsOnCpu(w, torch::zeros({kMaxCpuLayerRows + 1, 8})));
    EXPECT_FALSE(LayerRunsOnCpu(w, torch::zeros({4, 8}, torch::kFloat64)));
    EXPECT_FALSE(LayerRunsOnCpu(w, torch::zeros({4, 8}, torch::kBFloat16))) << "weights in another dtype";
  }
  EXPECT_FALSE(LayerRunsOnCpu(w, torch::zeros({4, 8}))) << "autograd on";
}

}  // namespace
}  // namespace strata
