#pragma once
// The Llama decoder math, shared by the inference engine (LlamaShard) and the
// trainer (scripts/train): one definition, so training exercises the code
// that serves. Semantics follow Hugging Face's LlamaForCausalLM: RMSNorm in
// f32, rotate-half RoPE, grouped-query attention with scores and softmax in
// f32, SwiGLU MLP. Activations carry a batch dimension: x is [B, T, hidden].
// Every function is differentiable (autograd) except the BF16 decode kernel,
// which only runs under NoGradGuard-style inference on one CPU token.
// Thread-compatible: pure functions of their tensors.
#include <torch/torch.h>

#include "node/engine/matmul.h"
#include "node/kv/layer_cache.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace strata {

struct LlamaDims {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate = 0;
  double rms_norm_eps = 1e-5;
};

// Rows [row0, row0 + rows) of a weight matrix as the kernels read them:
// a GGUF block format, or F32 rows beside blocks in the same matrix.
struct WeightRows {
  WeightType type = WeightType::kF32;
  int64_t row0 = 0, rows = 0;
  torch::Tensor bytes;  // [rows, RowBytes(type, cols)] uint8
};

// A weight matrix [rows, cols]: a tensor in the compute dtype (F32/BF16
// checkpoints, training, CUDA), or, for a quantized model, its rows as
// stored, by row range: stacked q, k and v may each have their own format
// (llama.cpp's Q4_K_M keeps some v projections in Q6_K).
struct Weight {
  torch::Tensor t;
  std::vector<WeightRows> parts;
  int64_t rows = 0, cols = 0;  // of a quantized matrix
  Weight() = default;
  Weight(torch::Tensor tensor) : t(std::move(tensor)) {}  // NOLINT: a plain tensor is a weight
  bool quantized() const { return !parts.empty(); }
  bool defined() const { return t.defined() || quantized(); }
};

struct LayerWeights {
  torch::Tensor attn_norm, ffn_norm;   // [hidden]
  torch::Tensor q_norm, k_norm;        // [head_dim] (Qwen3) or undefined
  // q, k and v stacked: one pass over the activations, one kernel call.
  Weight wqkv;                         // [(heads + 2*kv_heads)*head_dim, hidden]
  torch::Tensor bqkv;                  // [same] or undefined
  Weight wo;                           // [hidden, heads*head_dim]
  torch::Tensor bo;                    // [hidden] or undefined
  Weight w_gate_up;                    // [2*intermediate, hidden]: gate rows, then up rows
  torch::Tensor b_gate_up;
  Weight w_down;                       // [hidden, intermediate]
  torch::Tensor b_down;
};

// y = x W^T + b over the last dimension; CPU rows of F32 or BF16 take
// Strata's kernels (node/engine/matmul) on any x86-64, kMaxKernelRows at a
// time, each row's bits independent of the others.
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);
// The same for any Weight: a quantized one runs in its blocks' kernels for
// any number of rows (activations quantized per block), each row's bits its
// own; the result is in x's dtype.
torch::Tensor Linear(const torch::Tensor& x, const Weight& w, const torch::Tensor& b);

// Linear for B rows of different sessions at once, x: [B, 1, in]: row i of
// the result is bit-identical to Linear on that row alone, or within its own
// prompt chunk, whatever B is (F32/BF16 on CPU up to kMaxKernelRows: the
// multi-row kernel reads each weight row once for the batch; otherwise row
// by row).
torch::Tensor LinearRows(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);
torch::Tensor LinearRows(const torch::Tensor& x, const Weight& w, const torch::Tensor& b);
// Whether Linear with weights like `w` takes up to kMaxKernelRows rows
// through the kernels, each row's result independent of the others: then a
// prompt chunk's rows may share a forward with other sessions' rows exactly.
bool KernelRowsExact(const torch::Tensor& w);
bool KernelRowsExact(const Weight& w);
// Rows `ids` (each inside the vocabulary: the caller checks) of an
// embedding table [vocab, hidden]: [ids, hidden] in the table's dtype, or
// f32 with a quantized table's rows dequantized.
torch::Tensor EmbeddingRows(const Weight& table, const std::vector<int32_t>& ids);

// Attention of new positions [start, start+T) given their projected q, k, v
// qkv: [B, T, (heads + 2*kv_heads)*head_dim]; returns [B, T, heads*head_dim]
// in qkv's dtype, before the output projection. Cache as in LayerForward.
torch::Tensor Attend(const LlamaDims& dims, const torch::Tensor& qkv, int64_t start, const torch::Tensor& cos,
                     const torch::Tensor& sin, LayerCache* cache);

// f32 normalisation, result in x's dtype, then scaled by weight.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// cos/sin tables [max_position, head_dim] f32, inv_freq as Hugging Face
// computes it, divided by `freq_factors` [head_dim/2] when given (rope scaling).
void RopeTables(int64_t head_dim, double theta, int64_t max_position, torch::Tensor* cos, torch::Tensor* sin,
                const std::vector<float>& freq_factors = {});

// x: [B, T, hidden] at positions [start, start+T); cos/sin: [T, head_dim].
// With a cache (B == 1), keys/values of the new positions are written into it
// and attention sees positions [0, start+T); without one, start must be 0.
torch::Tensor LayerForward(const LlamaDims& dims, const LayerWeights& w, torch::Tensor x, int64_t start,
                           const torch::Tensor& cos, const torch::Tensor& sin, LayerCache* cache);

// The CPU inference path of a layer, on raw rows: LayerForward's operations
// (RmsNormRows, the kernels, AttendHeads, SwiGluRows, with the residual adds
// done in the projections' epilogue) and no LibTorch op between them, so a
// decode step pays for arithmetic, not dispatch. Its bits are LayerForward's
// and LayerForwardRows' for the same rows.
//
// Up to this many rows at a time (the layer's scratch is the calling
// thread's, kept from step to step).
inline constexpr int64_t kMaxCpuLayerRows = 256;
// Whether the layer with weights `w` runs so for activations `x` [R, hidden]:
// CPU inference in F32 or BF16, every matrix on the kernels, R small enough.
bool LayerRunsOnCpu(const LayerWeights& w, const torch::Tensor& x);
// Attention of session k's T rows: qkv [T, (heads + 2*kv_heads)*head_dim]
// to out [T, heads*head_dim], both in x's dtype.
using RowsAttend = std::function<void(int64_t k, const void* qkv, int64_t T, void* out)>;
// x [R, hidden] contiguous, updated in place; session k's rows are
// [offsets[k], offsets[k+1]).
void LayerForwardCpu(const LlamaDims& dims, const LayerWeights& w, const torch::Tensor& x,
                     const std::vector<int64_t>& offsets, const RowsAttend& attend);
// Attend on raw rows of one session: qkv [T, ...] at positions [start,
// start+T) to out [T, heads*head_dim] in `dtype`, with cos/sin the whole
// tables [max_position, head_dim]; Attend's bits.
void AttendRows(const LlamaDims& dims, const void* qkv, int64_t T, int64_t start, const torch::Tensor& cos_table,
                const torch::Tensor& sin_table, LayerCache* cache, void* out, torch::ScalarType dtype);

// The rows of several sessions through a layer: x [R, 1, hidden], session
// k's rows at [offsets[k], offsets[k+1]) (one for a decode step, a prompt
// chunk's for a chunk). The projections and the MLP run for all rows at
// once (LinearRows); attention is each session's own: attend(k, qkv_k
// [1, T_k, ...]) returns [1, T_k, heads*head_dim], from Attend over that
// session's cache. Each session's rows equal LayerForward on it alone, bit
// for bit.
torch::Tensor LayerForwardRows(const LlamaDims& dims, const LayerWeights& w, torch::Tensor x,
                               const std::vector<int64_t>& offsets,
                               const std::function<torch::Tensor(int64_t, const torch::Tensor&)>& attend);

}  // namespace strata
