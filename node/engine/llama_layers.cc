#include "node/engine/llama_layers.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "node/engine/cpu_ops.h"
#include "node/engine/kernel_matmul.h"
#include "node/engine/matmul.h"
#include "storage/dtype.h"
#include "storage/quants.h"

namespace strata {
namespace {

// The kernels' name for a torch weight's dtype; false for any other dtype.
bool KernelType(const torch::Tensor& w, WeightType* type) {
  if (w.scalar_type() == torch::kBFloat16) {
    *type = WeightType::kBF16;
  } else if (w.scalar_type() == torch::kFloat32) {
    *type = WeightType::kF32;
  } else {
    return false;
  }
  return true;
}

// Rows on CPU with activations in the weights' dtype: Strata's kernels
// (node/engine/matmul), weight rows split across the intra-op threads.
// Every row's result is the same whether it comes alone, with its prompt
// chunk, or in a batch of other sessions' rows — what lets ForwardBatch mix
// decode steps and short prompt chunks exactly. Longer chunks run in the
// kernels too (KernelMatmul takes them in passes): measured faster here than
// LibTorch's GEMM for F32 (its BF16 GEMM on CPU is an order of magnitude
// slower), and a prompt's rows then have the bits they would have in a batch.
bool UseKernels(const torch::Tensor& x2, const torch::Tensor& w, const torch::Tensor& b) {
  WeightType type;
  return KernelType(w, &type) && x2.scalar_type() == w.scalar_type() && x2.is_cpu() && w.is_cpu() &&
         x2.size(0) >= 1 && x2.is_contiguous() && w.dim() == 2 &&
         w.is_contiguous() && !w.requires_grad() && !x2.requires_grad() &&
         (!b.defined() || (b.scalar_type() == w.scalar_type() && b.is_contiguous() && !b.requires_grad()));
}

// A matrix's rows as the kernels read them: a quantized one's parts, or a
// dense one (in the activations' dtype) as one part.
std::vector<KernelRows> KernelParts(const Weight& w, bool bf16) {
  std::vector<KernelRows> parts;
  if (!w.quantized()) {
    parts.push_back({bf16 ? WeightType::kBF16 : WeightType::kF32, 0, w.t.size(0), static_cast<const uint8_t*>(w.t.data_ptr())});
  }
  for (const WeightRows& p : w.parts) parts.push_back({p.type, p.row0, p.rows, p.bytes.data_ptr<uint8_t>()});
  return parts;
}

// y[n, rows] = x2[n, cols] W^T + b on the kernels (node/engine/kernel_matmul);
// x2 contiguous f32 or bf16, y in its dtype.
torch::Tensor KernelMatmul(const torch::Tensor& x2, const std::vector<KernelRows>& parts, int64_t rows, int64_t cols,
                           const torch::Tensor& b) {
  auto y = torch::empty({x2.size(0), rows}, x2.options());  // [n, rows]
  torch::Tensor bias = b.defined() ? b.to(torch::kFloat32).contiguous() : b;
  KernelMatmul(x2.data_ptr(), x2.scalar_type() == torch::kBFloat16, x2.size(0), cols, parts, rows,
               b.defined() ? bias.data_ptr<float>() : nullptr, nullptr, y.data_ptr());
  return y;
}

// x: [B, heads, T, hd] f32; cos/sin: [T, hd] f32.
torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;
}

// Inference on the CPU in F32 or BF16: the plain loops of node/engine/cpu_ops
// instead of a chain of LibTorch ops (training keeps autograd's ops).
bool CpuInference(const torch::Tensor& x) {
  return !torch::GradMode::is_enabled() && x.is_cpu() && !x.requires_grad() &&
         (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16);
}

// A cache Attend reads on the CPU in plain loops: keys and values
// [kv_heads, capacity, head_dim] in the compute dtype with rows head_dim apart.
bool CacheOnCpu(const LlamaDims& d, torch::ScalarType dtype, const LayerCache* cache) {
  return cache != nullptr && cache->k.is_cpu() && cache->k.scalar_type() == dtype &&
         cache->v.scalar_type() == dtype && cache->k.stride(2) == 1 && cache->k.stride(1) == d.head_dim &&
         cache->v.strides() == cache->k.strides();
}

// Attend for one session on the CPU: qkv [1, T, ...].
bool AttendOnCpu(const LlamaDims& d, const torch::Tensor& qkv, const LayerCache* cache) {
  return CpuInference(qkv) && qkv.size(0) == 1 && CacheOnCpu(d, qkv.scalar_type(), cache);
}

// Attend for one session's rows on the CPU (AttendOnCpu's case): qkv [T, ...]
// contiguous, cos/sin [T, hd] f32, out [T, nh*hd], all raw.
void AttendCpuRows(const LlamaDims& d, const void* qkv, int64_t T, int64_t start, const float* cos, const float* sin,
                   LayerCache* cache, void* out, bool bf16) {
  AttendArgs a;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  a.head_dim = d.head_dim;
  a.start = start;
  a.T = T;
  a.bf16 = bf16;
  a.qkv = qkv;
  a.cos = cos;
  a.sin = sin;
  a.k = cache->k.data_ptr();
  a.v = cache->v.data_ptr();
  a.head_stride = cache->k.stride(0);
  a.pos_stride = cache->k.stride(1);
  a.out = out;
  WriteNewKv(a);
  // One thread for small work (a short context): waking the others costs
  // more than the dots (a guess of about 64K multiply-adds of work each).
  const double macs = 2.0 * d.heads * T * static_cast<double>(start + T) * d.head_dim;
  at::parallel_for(0, d.heads, macs < 131072.0 ? d.heads : 1, [&](int64_t h0, int64_t h1) { AttendHeads(a, h0, h1); });
}

torch::Tensor AttendCpu(const LlamaDims& d, const torch::Tensor& qkv, int64_t start, const torch::Tensor& cos,
                        const torch::Tensor& sin, LayerCache* cache) {
  const int64_t T = qkv.size(1);
  auto q = qkv.contiguous();
  auto c = cos.contiguous(), s = sin.contiguous();
  auto out = torch::empty({1, T, d.heads * d.head_dim}, qkv.options());  // [1, T, nh*hd]
  AttendCpuRows(d, q.data_ptr(), T, start, c.data_ptr<float>(), s.data_ptr<float>(), cache, out.data_ptr(),
                qkv.scalar_type() == torch::kBFloat16);
  return out;
}

// silu(gate) * up of gate_up [..., 2 * inter].
torch::Tensor SwiGlu(const torch::Tensor& gate_up, int64_t inter) {
  if (CpuInference(gate_up)) {
    auto g = gate_up.contiguous();
    auto shape = g.sizes().vec();
    shape.back() = inter;
    auto out = torch::empty(shape, g.options());
    SwiGluRows(g.data_ptr(), out.data_ptr(), g.numel() / (2 * inter), inter, g.scalar_type() == torch::kBFloat16);
    return out;
  }
  return torch::silu(gate_up.narrow(-1, 0, inter)) * gate_up.narrow(-1, inter, inter);
}

}  // namespace

torch::Tensor Attend(const LlamaDims& d, const torch::Tensor& qkv, int64_t start, const torch::Tensor& cos,
                     const torch::Tensor& sin, LayerCache* cache) {
  if (AttendOnCpu(d, qkv, cache)) return AttendCpu(d, qkv, start, cos, sin, cache);
  const int64_t B = qkv.size(0), T = qkv.size(1), nh = d.heads, nkv = d.kv_heads, hd = d.head_dim;
  const int64_t group = nh / nkv, S = start + T;
  auto q = qkv.narrow(-1, 0, nh * hd).reshape({B, T, nh, hd}).transpose(1, 2).to(torch::kFloat32);         // [B, nh, T, hd]
  auto k = qkv.narrow(-1, nh * hd, nkv * hd).reshape({B, T, nkv, hd}).transpose(1, 2).to(torch::kFloat32);  // [B, nkv, T, hd]
  auto v = qkv.narrow(-1, (nh + nkv) * hd, nkv * hd).reshape({B, T, nkv, hd}).transpose(1, 2);             // [B, nkv, T, hd]
  q = ApplyRope(q, cos, sin);
  k = ApplyRope(k, cos, sin);
  torch::Tensor keys, values;  // [B, nkv, S, hd] f32
  if (cache != nullptr) {
    cache->k.narrow(1, start, T).copy_(k[0]);
    cache->v.narrow(1, start, T).copy_(v[0]);
    keys = cache->k.narrow(1, 0, S).to(torch::kFloat32).unsqueeze(0);
    values = cache->v.narrow(1, 0, S).to(torch::kFloat32).unsqueeze(0);
  } else {
    keys = k;
    values = v.to(torch::kFloat32);
  }
  // Group query heads by their KV head: [B, nkv, group*T, hd].
  auto qg = q.reshape({B, nkv, group * T, hd});
  auto scores = torch::matmul(qg, keys.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(hd)));  // [B, nkv, group*T, S]
  if (T > 1) {
    // Query t sits at position start+t and sees keys [0, start+t].
    auto options = torch::TensorOptions().device(qkv.device());
    auto qpos = torch::arange(start, S, options).view({T, 1});
    auto kpos = torch::arange(0, S, options).view({1, S});
    auto masked = (kpos > qpos).repeat({group, 1});  // [group*T, S]
    scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
  }
  auto probs = torch::softmax(scores, -1);
  auto out = torch::matmul(probs, values).view({B, nh, T, hd}).transpose(1, 2).reshape({B, T, nh * hd});  // [B, T, nh*hd]
  return out.to(qkv.scalar_type());
}

torch::Tensor LinearRows(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const int64_t B = x.size(0);
  // The kernels take every row at once, each row's bits its own.
  if (B == 1 || (x.numel() == B * x.size(-1) && UseKernels(x.narrow(0, 0, 1).reshape({1, x.size(-1)}), w, b))) {
    return Linear(x, w, b);
  }
  std::vector<torch::Tensor> parts;
  // Any other dtype or device: each row as it would run alone (a GEMM over
  // the batch would sum in another order, and a request's logits would
  // depend on who shares its batch).
  parts.reserve(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) parts.push_back(Linear(x.narrow(0, i, 1), w, b));
  return torch::cat(parts, 0);
}

bool KernelRowsExact(const torch::Tensor& w) {
  WeightType type;
  return KernelType(w, &type) && w.is_cpu() && w.dim() == 2 && w.is_contiguous();
}

torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto x2 = x.reshape({-1, x.size(-1)});  // [rows of x, in]
  if (UseKernels(x2, w, b)) {
    WeightType type = WeightType::kF32;
    KernelType(w, &type);
    auto y = KernelMatmul(x2, {{type, 0, w.size(0), static_cast<const uint8_t*>(w.data_ptr())}}, w.size(0), w.size(1), b);
    auto shape = x.sizes().vec();
    shape.back() = w.size(0);
    return y.view(shape);
  }
  return b.defined() ? torch::nn::functional::linear(x, w, b) : torch::nn::functional::linear(x, w);
}

torch::Tensor Linear(const torch::Tensor& x, const Weight& w, const torch::Tensor& b) {
  if (!w.quantized()) return Linear(x, w.t, b);
  auto x2 = x.reshape({-1, x.size(-1)});  // [n, cols]
  if (x2.scalar_type() != torch::kBFloat16 && x2.scalar_type() != torch::kFloat32) x2 = x2.to(torch::kFloat32);
  x2 = x2.contiguous();
  const int64_t rows = w.rows;
  auto y = KernelMatmul(x2, KernelParts(w, x2.scalar_type() == torch::kBFloat16), rows, w.cols, b);  // [n, rows]
  auto shape = x.sizes().vec();
  shape.back() = rows;
  return y.to(x.scalar_type()).view(shape);
}

torch::Tensor LinearRows(const torch::Tensor& x, const Weight& w, const torch::Tensor& b) {
  if (!w.quantized()) return LinearRows(x, w.t, b);
  return Linear(x, w, b);  // every row in its own dots, in any batch
}

bool KernelRowsExact(const Weight& w) { return w.quantized() || KernelRowsExact(w.t); }

torch::Tensor EmbeddingRows(const Weight& table, const std::vector<int32_t>& ids) {
  const auto T = static_cast<int64_t>(ids.size());
  const torch::Tensor& dense = table.t;  // [vocab, hidden] unless quantized
  if (!table.quantized() && (!dense.is_cpu() || !dense.is_contiguous() || dense.dim() != 2)) {
    return dense.index_select(0, torch::tensor(ids, torch::kInt64).to(dense.device()));
  }
  if (!table.quantized()) {
    // The rows copied as they are: LibTorch's gather costs more than a decode step's one row.
    auto out = torch::empty({T, dense.size(1)}, dense.options());  // [T, hidden]
    const size_t row = static_cast<size_t>(dense.size(1)) * dense.element_size();
    for (int64_t i = 0; i < T; ++i) {
      std::memcpy(static_cast<uint8_t*>(out.data_ptr()) + static_cast<size_t>(i) * row,
                  static_cast<const uint8_t*>(dense.data_ptr()) + static_cast<size_t>(ids[static_cast<size_t>(i)]) * row,
                  row);
    }
    return out;
  }
  auto out = torch::empty({T, table.cols}, torch::kFloat32);  // [T, hidden]
  for (int64_t i = 0; i < T; ++i) {
    const int64_t id = ids[static_cast<size_t>(i)];
    for (const WeightRows& p : table.parts) {
      if (id < p.row0 || id >= p.row0 + p.rows) continue;
      const size_t row_bytes = RowBytes(p.type, table.cols);
      DequantizeRow(p.type, p.bytes.data_ptr<uint8_t>() + static_cast<size_t>(id - p.row0) * row_bytes, table.cols,
                    out.data_ptr<float>() + i * table.cols);
    }
  }
  return out;
}

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (CpuInference(x) && weight.scalar_type() == x.scalar_type() && weight.is_contiguous() && !weight.requires_grad()) {
    auto xc = x.contiguous();
    auto out = torch::empty_like(xc);
    RmsNormRows(xc.data_ptr(), weight.data_ptr(), out.data_ptr(), xc.numel() / x.size(-1), x.size(-1), eps,
                x.scalar_type() == torch::kBFloat16);
    return out;
  }
  auto xf = x.to(torch::kFloat32);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * torch::rsqrt(var + eps)).to(x.scalar_type());
}

void RopeTables(int64_t head_dim, double theta, int64_t max_position, torch::Tensor* cos, torch::Tensor* sin,
                const std::vector<float>& freq_factors) {
  auto inv_freq = 1.0 / torch::pow(static_cast<float>(theta),
                                   torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) /
                                       static_cast<float>(head_dim));                       // [hd/2]
  if (!freq_factors.empty()) {
    inv_freq = inv_freq / torch::tensor(freq_factors, torch::kFloat32);  // [hd/2]
  }
  auto freqs = torch::outer(torch::arange(max_position, torch::kFloat32), inv_freq);       // [max_position, hd/2]
  auto emb = torch::cat({freqs, freqs}, -1);                                                // [max_position, hd]
  *cos = emb.cos();
  *sin = emb.sin();
}

// Qwen3's per-head RMSNorm of q and k, row by row (each row's bits its own).
torch::Tensor QkNorm(const LlamaDims& d, const LayerWeights& w, const torch::Tensor& qkv) {
  if (!w.q_norm.defined()) return qkv;
  const int64_t nh = d.heads, nkv = d.kv_heads, hd = d.head_dim;
  auto flat = qkv.reshape({-1, qkv.size(-1)});  // [rows, (nh+2nkv)*hd]
  auto q = RmsNorm(flat.narrow(1, 0, nh * hd).reshape({-1, hd}), w.q_norm, d.rms_norm_eps).reshape({-1, nh * hd});
  auto k = RmsNorm(flat.narrow(1, nh * hd, nkv * hd).reshape({-1, hd}), w.k_norm, d.rms_norm_eps).reshape({-1, nkv * hd});
  return torch::cat({q, k, flat.narrow(1, (nh + nkv) * hd, nkv * hd)}, 1).view(qkv.sizes());
}

torch::Tensor LayerForward(const LlamaDims& dims, const LayerWeights& w, torch::Tensor x, int64_t start,
                           const torch::Tensor& cos, const torch::Tensor& sin, LayerCache* cache) {
  auto qkv = QkNorm(dims, w, Linear(RmsNorm(x, w.attn_norm, dims.rms_norm_eps), w.wqkv, w.bqkv));  // [B, T, (nh+2nkv)*hd]
  x = x + Linear(Attend(dims, qkv, start, cos, sin, cache), w.wo, w.bo);
  auto h = RmsNorm(x, w.ffn_norm, dims.rms_norm_eps);
  const int64_t I = dims.intermediate;
  auto gate_up = Linear(h, w.w_gate_up, w.b_gate_up);  // [B, T, 2*intermediate]
  auto act = SwiGlu(gate_up, I);
  return x + Linear(act, w.w_down, w.b_down);
}

namespace {

// A matrix the kernels take as it is, for activations in `dtype`.
bool OnKernels(const Weight& w, torch::ScalarType dtype) {
  if (w.quantized()) return true;
  const torch::Tensor& t = w.t;
  return t.defined() && t.is_cpu() && t.dim() == 2 && t.is_contiguous() && t.scalar_type() == dtype &&
         !t.requires_grad();
}

bool UsableBias(const torch::Tensor& b) { return !b.defined() || (b.is_cpu() && !b.requires_grad()); }

bool UsableNorm(const torch::Tensor& n, torch::ScalarType dtype) {
  return n.is_cpu() && n.is_contiguous() && n.scalar_type() == dtype && !n.requires_grad();
}

// The layer's working rows, the calling thread's from step to step.
struct LayerScratch {
  std::vector<uint8_t> h, qkv, attn, gate_up, act;
};

uint8_t* Room(std::vector<uint8_t>& v, size_t bytes) {
  if (v.size() < bytes) v.resize(bytes);
  return v.data();
}

// RmsNormRows over a prompt chunk's rows on the pool, sixteen or more a
// thread (each row's bits as alone): on one thread, the other waited.
void NormRowsOnPool(const void* x, const void* w, void* out, int64_t n, int64_t cols, double eps, bool bf16) {
  const size_t row = static_cast<size_t>(cols) * (bf16 ? 2 : 4);
  at::parallel_for(0, n, 16, [&](int64_t r0, int64_t r1) {
    RmsNormRows(static_cast<const uint8_t*>(x) + r0 * row, w, static_cast<uint8_t*>(out) + r0 * row, r1 - r0, cols, eps,
                bf16);
  });
}

// y[n, w.rows] = residual + x W^T + b on the kernels (Linear's arithmetic).
void Project(const void* x, bool bf16, int64_t n, const Weight& w, const torch::Tensor& b, const void* residual,
             void* y) {
  const int64_t rows = w.quantized() ? w.rows : w.t.size(0), cols = w.quantized() ? w.cols : w.t.size(1);
  torch::Tensor bias = b.defined() ? b.to(torch::kFloat32).contiguous() : b;
  KernelMatmul(x, bf16, n, cols, KernelParts(w, bf16), rows, b.defined() ? bias.data_ptr<float>() : nullptr, residual,
               y);
}

}  // namespace

bool LayerRunsOnCpu(const LayerWeights& w, const torch::Tensor& x) {
  const torch::ScalarType dt = x.scalar_type();
  if (!CpuInference(x) || x.dim() != 2 || !x.is_contiguous() || x.size(0) < 1 || x.size(0) > kMaxCpuLayerRows) {
    return false;
  }
  if (!UsableNorm(w.attn_norm, dt) || !UsableNorm(w.ffn_norm, dt)) return false;
  if (w.q_norm.defined() && (!UsableNorm(w.q_norm, dt) || !UsableNorm(w.k_norm, dt))) return false;
  return OnKernels(w.wqkv, dt) && OnKernels(w.wo, dt) && OnKernels(w.w_gate_up, dt) && OnKernels(w.w_down, dt) &&
         UsableBias(w.bqkv) && UsableBias(w.bo) && UsableBias(w.b_gate_up) && UsableBias(w.b_down);
}

void LayerForwardCpu(const LlamaDims& d, const LayerWeights& w, const torch::Tensor& x,
                     const std::vector<int64_t>& offsets, const RowsAttend& attend) {
  thread_local LayerScratch s;
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  const size_t es = bf16 ? 2 : 4;
  const int64_t R = x.size(0), H = d.hidden, nh = d.heads, nkv = d.kv_heads, hd = d.head_dim, I = d.intermediate;
  const int64_t qkv_cols = (nh + 2 * nkv) * hd;
  const auto bytes = [es](int64_t rows, int64_t cols) { return static_cast<size_t>(rows * cols) * es; };
  void* xp = x.data_ptr();                                     // [R, H]
  uint8_t* h = Room(s.h, bytes(R, H));                         // [R, H]
  uint8_t* qkv = Room(s.qkv, bytes(R, qkv_cols));              // [R, (nh+2nkv)*hd]
  uint8_t* attn = Room(s.attn, bytes(R, nh * hd));             // [R, nh*hd]
  uint8_t* gate_up = Room(s.gate_up, bytes(R, 2 * I));         // [R, 2I]
  uint8_t* act = Room(s.act, bytes(R, I));                     // [R, I]
  NormRowsOnPool(xp, w.attn_norm.data_ptr(), h, R, H, d.rms_norm_eps, bf16);
  Project(h, bf16, R, w.wqkv, w.bqkv, nullptr, qkv);
  if (w.q_norm.defined()) {  // Qwen3: each head's q and k normalised, in place
    for (int64_t r = 0; r < R; ++r) {
      uint8_t* row = qkv + bytes(r, qkv_cols);
      RmsNormRows(row, w.q_norm.data_ptr(), row, nh, hd, d.rms_norm_eps, bf16);
      RmsNormRows(row + bytes(nh, hd), w.k_norm.data_ptr(), row + bytes(nh, hd), nkv, hd, d.rms_norm_eps, bf16);
    }
  }
  for (size_t k = 0; k + 1 < offsets.size(); ++k) {
    const int64_t begin = offsets[k], T = offsets[k + 1] - begin;
    attend(static_cast<int64_t>(k), qkv + bytes(begin, qkv_cols), T, attn + bytes(begin, nh * hd));
  }
  Project(attn, bf16, R, w.wo, w.bo, xp, xp);  // x += attention W_o^T
  NormRowsOnPool(xp, w.ffn_norm.data_ptr(), h, R, H, d.rms_norm_eps, bf16);
  Project(h, bf16, R, w.w_gate_up, w.b_gate_up, nullptr, gate_up);
  // A prompt chunk's rows on the pool (each row's bits as alone: an exp
  // per element; 128 rows x 5632 took ~2 ms a layer on one thread).
  at::parallel_for(0, R, 16, [&](int64_t r0, int64_t r1) {
    SwiGluRows(gate_up + bytes(r0, 2 * I), act + bytes(r0, I), r1 - r0, I, bf16);
  });
  Project(act, bf16, R, w.w_down, w.b_down, xp, xp);  // x += mlp
}

void AttendRows(const LlamaDims& d, const void* qkv, int64_t T, int64_t start, const torch::Tensor& cos_table,
                const torch::Tensor& sin_table, LayerCache* cache, void* out, torch::ScalarType dtype) {
  if (!torch::GradMode::is_enabled() && CacheOnCpu(d, dtype, cache) && cos_table.is_contiguous() &&
      sin_table.is_contiguous()) {
    AttendCpuRows(d, qkv, T, start, cos_table.data_ptr<float>() + start * d.head_dim,
                  sin_table.data_ptr<float>() + start * d.head_dim, cache, out, dtype == torch::kBFloat16);
    return;
  }
  const int64_t cols = (d.heads + 2 * d.kv_heads) * d.head_dim;
  auto rows = torch::from_blob(const_cast<void*>(qkv), {1, T, cols}, torch::TensorOptions().dtype(dtype));
  auto got = Attend(d, rows, start, cos_table.narrow(0, start, T), sin_table.narrow(0, start, T), cache);
  torch::from_blob(out, {1, T, d.heads * d.head_dim}, torch::TensorOptions().dtype(dtype)).copy_(got);
}

torch::Tensor LayerForwardRows(const LlamaDims& dims, const LayerWeights& w, torch::Tensor x,
                               const std::vector<int64_t>& offsets,
                               const std::function<torch::Tensor(int64_t, const torch::Tensor&)>& attend) {
  const int64_t sessions = static_cast<int64_t>(offsets.size()) - 1;
  auto qkv = QkNorm(dims, w, LinearRows(RmsNorm(x, w.attn_norm, dims.rms_norm_eps), w.wqkv, w.bqkv));  // [R, 1, (nh+2nkv)*hd]
  std::vector<torch::Tensor> heads;  // per session [T_k, 1, nh*hd]
  heads.reserve(static_cast<size_t>(sessions));
  for (int64_t k = 0; k < sessions; ++k) {
    const int64_t begin = offsets[static_cast<size_t>(k)], T = offsets[static_cast<size_t>(k) + 1] - begin;
    auto mine = qkv.narrow(0, begin, T).view({1, T, qkv.size(-1)});  // [1, T, ...]: as the session alone has it
    heads.push_back(attend(k, mine).view({T, 1, -1}));
  }
  x = x + LinearRows(torch::cat(heads, 0), w.wo, w.bo);
  auto h = RmsNorm(x, w.ffn_norm, dims.rms_norm_eps);
  const int64_t I = dims.intermediate;
  auto gate_up = LinearRows(h, w.w_gate_up, w.b_gate_up);  // [R, 1, 2*intermediate]
  auto act = SwiGlu(gate_up, I);
  return x + LinearRows(act.contiguous(), w.w_down, w.b_down);
}

}  // namespace strata
