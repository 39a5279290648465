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

#include <cstdint>

namespace strata {

struct LlamaDims {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate = 0;
  double rms_norm_eps = 1e-5;
};

struct LayerWeights {
  torch::Tensor attn_norm, ffn_norm;   // [hidden]
  // q, k and v stacked: one pass over the activations, one kernel call.
  torch::Tensor wqkv, bqkv;            // [(heads + 2*kv_heads)*head_dim, hidden], [same] or undefined
  torch::Tensor wo, bo;                // [hidden, heads*head_dim], [hidden] or undefined
  torch::Tensor w_gate_up, b_gate_up;  // [2*intermediate, hidden]: gate rows, then up rows
  torch::Tensor w_down, b_down;        // [hidden, intermediate]
};

// One layer's KV cache for one sequence (inference, batch 1).
struct LayerCache {
  torch::Tensor k, v;  // [kv_heads, capacity, head_dim], compute dtype
};

// y = x W^T + b over the last dimension; a single BF16 CPU row takes the
// hand-written decode kernel.
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);

// f32 normalisation, result in x's dtype, then scaled by weight.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// cos/sin tables [max_position, head_dim] f32, inv_freq as Hugging Face computes it.
void RopeTables(int64_t head_dim, double theta, int64_t max_position, torch::Tensor* cos, torch::Tensor* sin);

// x: [B, T, hidden] at positions [start, start+T); cos/sin: [T, head_dim].
// With a cache (B == 1), keys/values of the new positions are written into it
// and attention sees positions [0, start+T); without one, start must be 0.
torch::Tensor LayerForward(const LlamaDims& dims, const LayerWeights& w, torch::Tensor x, int64_t start,
                           const torch::Tensor& cos, const torch::Tensor& sin, LayerCache* cache);

}  // namespace strata
