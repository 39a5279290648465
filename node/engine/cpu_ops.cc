#include "node/engine/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "node/engine/matmul.h"
#include "storage/dtype.h"

namespace strata {
namespace {

float Load(const void* p, int64_t i, bool bf16) {
  return bf16 ? Bf16ToFloat(static_cast<const uint16_t*>(p)[i]) : static_cast<const float*>(p)[i];
}

void Store(void* p, int64_t i, float v, bool bf16) {
  if (bf16) {
    static_cast<uint16_t*>(p)[i] = FloatToBf16(v);
  } else {
    static_cast<float*>(p)[i] = v;
  }
}

// v as the compute dtype holds it.
float Round(float v, bool bf16) { return bf16 ? Bf16ToFloat(FloatToBf16(v)) : v; }

// Rotate-half RoPE of one head's hd values at one position, into f32.
void Rope(const void* src, int64_t offset, const float* cos, const float* sin, int64_t hd, bool bf16, float* out) {
  const int64_t half = hd / 2;
  for (int64_t j = 0; j < half; ++j) {
    const float a = Load(src, offset + j, bf16), b = Load(src, offset + j + half, bf16);
    out[j] = a * cos[j] - b * sin[j];
    out[j + half] = b * cos[j + half] + a * sin[j + half];
  }
}

}  // namespace

void RmsNormRows(const void* x, const void* w, void* out, int64_t n, int64_t cols, double eps, bool bf16) {
  for (int64_t r = 0; r < n; ++r) {
    float sum = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const float v = Load(x, r * cols + j, bf16);
      sum += v * v;
    }
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(cols) + static_cast<float>(eps));
    for (int64_t j = 0; j < cols; ++j) {
      const float v = Round(Load(x, r * cols + j, bf16) * inv, bf16);
      Store(out, r * cols + j, v * Load(w, j, bf16), bf16);
    }
  }
}

void SwiGluRows(const void* gate_up, void* out, int64_t n, int64_t inter, bool bf16) {
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < inter; ++j) {
      const float g = Load(gate_up, r * 2 * inter + j, bf16), u = Load(gate_up, r * 2 * inter + inter + j, bf16);
      const float silu = Round(g / (1.0f + std::exp(-g)), bf16);
      Store(out, r * inter + j, silu * u, bf16);
    }
  }
}

void WriteNewKv(const AttendArgs& a) {
  const int64_t hd = a.head_dim, width = (a.heads + 2 * a.kv_heads) * hd;
  std::vector<float> rotated(static_cast<size_t>(hd));
  const size_t elem = a.bf16 ? 2 : 4;
  for (int64_t t = 0; t < a.T; ++t) {
    const int64_t pos = a.start + t;
    for (int64_t g = 0; g < a.kv_heads; ++g) {
      const int64_t at = g * a.head_stride + pos * a.pos_stride;
      Rope(a.qkv, t * width + (a.heads + g) * hd, a.cos + t * hd, a.sin + t * hd, hd, a.bf16, rotated.data());
      for (int64_t j = 0; j < hd; ++j) Store(a.k, at + j, rotated[static_cast<size_t>(j)], a.bf16);
      std::memcpy(static_cast<uint8_t*>(a.v) + at * elem,
                  static_cast<const uint8_t*>(a.qkv) + (t * width + (a.heads + a.kv_heads + g) * hd) * elem,
                  static_cast<size_t>(hd) * elem);
    }
  }
}

namespace {

// acc[j] = the sum over s, in order of s, of w[s] x v_s[j] (v_s the value
// row of position s, `stride` elements apart). A multiply then an add per
// term, elementwise: the bits are the same at any vector width, and a head
// size known at compile time keeps acc in registers.
// kHd = 0: a head size known only at run time, summed in out itself.
template <typename T, int64_t kHd>
void WeightedSum(const float* w, const T* v, int64_t S, int64_t stride, int64_t hd, float* out) {
  float fixed[kHd > 0 ? kHd : 1] = {};
  float* acc = kHd > 0 ? fixed : out;
  const int64_t n = kHd > 0 ? kHd : hd;
  if (kHd == 0) std::fill(out, out + n, 0.0f);
  for (int64_t s = 0; s < S; ++s) {
    const T* row = v + s * stride;
    const float ws = w[s];
    for (int64_t j = 0; j < n; ++j) {
      float x;
      if constexpr (std::is_same_v<T, uint16_t>) {
        x = Bf16ToFloat(row[j]);
      } else {
        x = row[j];
      }
      const float term = ws * x;
      acc[j] = acc[j] + term;
    }
  }
  if (kHd > 0) std::copy(acc, acc + n, out);
}

template <typename T>
void WeightedSumAnyHead(const float* w, const T* v, int64_t S, int64_t stride, int64_t hd, float* out) {
  switch (hd) {
    case 16: WeightedSum<T, 16>(w, v, S, stride, hd, out); break;
    case 32: WeightedSum<T, 32>(w, v, S, stride, hd, out); break;
    case 64: WeightedSum<T, 64>(w, v, S, stride, hd, out); break;
    case 128: WeightedSum<T, 128>(w, v, S, stride, hd, out); break;
    default: WeightedSum<T, 0>(w, v, S, stride, hd, out); break;
  }
}

}  // namespace

void AttendHeads(const AttendArgs& a, int64_t h0, int64_t h1) {
  const int64_t hd = a.head_dim, width = (a.heads + 2 * a.kv_heads) * hd, group = a.heads / a.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const WeightType type = a.bf16 ? WeightType::kBF16 : WeightType::kF32;
  const KernelPath& dots = ActiveKernels().ForF32Rows(type);
  const size_t elem = a.bf16 ? 2 : 4;
  std::vector<float> q(static_cast<size_t>(hd)), p(static_cast<size_t>(a.start + a.T)), acc(static_cast<size_t>(hd));
  for (int64_t t = 0; t < a.T; ++t) {
    const int64_t S = a.start + t + 1;  // keys [0, pos]
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t g = h / group;
      Rope(a.qkv, t * width + h * hd, a.cos + t * hd, a.sin + t * hd, hd, a.bf16, q.data());
      // scores[s] = q . key[s]: the keys as a weight matrix [S, hd].
      const WeightMatrix keys{type, static_cast<const uint8_t*>(a.k) + g * a.head_stride * elem, S, hd};
      ActRows query{ActForm::kF32, reinterpret_cast<const uint8_t*>(q.data()), static_cast<size_t>(hd) * 4, 1, hd};
      (dots.many_rows != nullptr ? dots.many_rows : dots.fn)(keys, query, 0, S, p.data(), S);
      float most = -INFINITY;
      for (int64_t s = 0; s < S; ++s) most = std::max(most, p[static_cast<size_t>(s)] *= scale);
      float sum = 0;
      for (int64_t s = 0; s < S; ++s) sum += p[static_cast<size_t>(s)] = std::exp(p[static_cast<size_t>(s)] - most);
      for (int64_t s = 0; s < S; ++s) p[static_cast<size_t>(s)] /= sum;
      if (a.bf16) {
        WeightedSumAnyHead(p.data(), static_cast<const uint16_t*>(a.v) + g * a.head_stride, S, a.pos_stride, hd, acc.data());
      } else {
        WeightedSumAnyHead(p.data(), static_cast<const float*>(a.v) + g * a.head_stride, S, a.pos_stride, hd, acc.data());
      }
      for (int64_t j = 0; j < hd; ++j) Store(a.out, t * a.heads * hd + h * hd + j, acc[static_cast<size_t>(j)], a.bf16);
    }
  }
}

}  // namespace strata
