#pragma once
// The small operations of a layer in plain loops on the CPU, for inference:
// RMSNorm, SwiGLU and attention over a session's cached keys and values.
// LibTorch's op dispatch cost more than the arithmetic at decode (about
// 300 us a layer on a 5M model, against 0.7 ms a token for all of llama.cpp).
// Semantics are Hugging Face's Llama, as node/engine/llama_layers has them
// under autograd: f32 arithmetic, rounded to the compute dtype where its
// tensors are. Every row is computed alone in one fixed order, so a row's
// bits do not depend on its batch or on the split. Dot products go through
// the kernels (node/engine/matmul).
//
// Thread-safe: pure functions of their arguments; the intra-op threads of
// the caller split work across rows or heads.
#include <cstdint>

namespace strata {

// out[n, cols] = (x / rms(x)) * w, x, w and out in f32 or (bf16) uint16 BF16.
void RmsNormRows(const void* x, const void* w, void* out, int64_t n, int64_t cols, double eps, bool bf16);

// out[n, inter] = silu(gate) * up, gate_up[n, 2 * inter] holding gate then up.
void SwiGluRows(const void* gate_up, void* out, int64_t n, int64_t inter, bool bf16);

// Attention of T new positions [start, start + T) of one session.
struct AttendArgs {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t start = 0, T = 0;
  bool bf16 = false;
  const void* qkv = nullptr;   // [T, (heads + 2 * kv_heads) * head_dim], compute dtype
  const float* cos = nullptr;  // [T, head_dim] f32: the new positions' rows
  const float* sin = nullptr;
  void* k = nullptr;           // cache keys   [kv_heads, *, head_dim]: rows pos_stride apart, heads head_stride apart
  void* v = nullptr;           // cache values, laid out as k
  int64_t head_stride = 0, pos_stride = 0;  // in elements
  void* out = nullptr;         // [T, heads * head_dim], compute dtype
};
// Writes the new positions' keys (rotated) and values into the cache.
void WriteNewKv(const AttendArgs& a);
// Then the new queries of heads [h0, h1), each over positions [0, its own]
// (causal, grouped-query), into out. Heads may run on different threads.
void AttendHeads(const AttendArgs& a, int64_t h0, int64_t h1);

}  // namespace strata
