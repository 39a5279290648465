// The scalar reference of every kernel: plain loops, one float accumulator
// per dot, integer block dots exact. Every vector path is checked against
// these on the machine it runs on (tests/matmul_test.cpp), and a CPU
// without AVX2 runs them.
#include <cstring>

#include "node/engine/matmul.h"
#include "storage/dtype.h"

namespace strata::kernels {
namespace {

float DotF32(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* a = reinterpret_cast<const float*>(w);
  const auto* b = reinterpret_cast<const float*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols; ++i) acc += a[i] * b[i];
  return acc;
}

float DotBf16(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* a = reinterpret_cast<const uint16_t*>(w);
  const auto* b = reinterpret_cast<const uint16_t*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols; ++i) acc += Bf16ToFloat(a[i]) * Bf16ToFloat(b[i]);
  return acc;
}

// BF16 weights with f32 activation rows (attention's f32 queries).
float DotBf16F32(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* a = reinterpret_cast<const uint16_t*>(w);
  const auto* b = reinterpret_cast<const float*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols; ++i) acc += Bf16ToFloat(a[i]) * b[i];
  return acc;
}

float DotQ8_0(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const BlockQ8_0*>(w);
  const auto* xb = reinterpret_cast<const ActQ8_0*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols / kQK8_0; ++i) {
    int sum = 0;
    for (int k = 0; k < kQK8_0; ++k) sum += wb[i].qs[k] * xb[i].qs[k];
    acc += F16ToFloat(wb[i].d) * xb[i].d * static_cast<float>(sum);
  }
  return acc;
}

float DotQ4_0(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const BlockQ4_0*>(w);
  const auto* xb = reinterpret_cast<const ActQ8_0*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols / kQK8_0; ++i) {
    int sum = 0;
    for (int k = 0; k < 16; ++k) {
      sum += ((wb[i].qs[k] & 0xF) - 8) * xb[i].qs[k] + ((wb[i].qs[k] >> 4) - 8) * xb[i].qs[k + 16];
    }
    acc += F16ToFloat(wb[i].d) * xb[i].d * static_cast<float>(sum);
  }
  return acc;
}

// Q4_1, Q5_0, Q5_1: levels q in [0, 16) or [0, 32); x = d * (q - offset) or d * q + m.
template <typename Block, bool kFifth, bool kMin>
float DotLevels32(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const Block*>(w);
  const auto* xb = reinterpret_cast<const ActQ8_0*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols / kQK8_0; ++i) {
    uint32_t qh = 0;
    if constexpr (kFifth) std::memcpy(&qh, wb[i].qh, 4);
    int sum = 0;
    for (int k = 0; k < kQK8_0; ++k) {
      const int q = (k < 16 ? wb[i].qs[k] & 0xF : wb[i].qs[k - 16] >> 4) | static_cast<int>(((qh >> k) & 1) << 4);
      sum += q * xb[i].qs[k];
    }
    if constexpr (kMin) {
      acc += F16ToFloat(wb[i].d) * xb[i].d * static_cast<float>(sum) +
             F16ToFloat(reinterpret_cast<const BlockQ4_1&>(wb[i]).m) * xb[i].d * static_cast<float>(xb[i].sum);
    } else {
      acc += F16ToFloat(wb[i].d) * xb[i].d * static_cast<float>(sum - 16 * xb[i].sum);
    }
  }
  return acc;
}

// Q4_K and Q5_K: sum_j sc_j * (q . x)_j exact, then the mins through bsums.
template <bool kFifthBit, typename Block>
float DotQ45_K(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const Block*>(w);
  const auto* xb = reinterpret_cast<const ActQ8_K*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    const Block& b = wb[i];
    int sum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      Q4KScaleMin(b.scales, j, &sc, &m);
      const int c = j / 2, shift = 4 * (j % 2);
      int dot = 0;
      for (int l = 0; l < 32; ++l) {
        int q = (b.qs[32 * c + l] >> shift) & 0xF;
        if constexpr (kFifthBit) q |= ((reinterpret_cast<const BlockQ5_K&>(b).qh[l] >> j) & 1) << 4;
        dot += q * xb[i].qs[32 * j + l];
      }
      sum += sc * dot;
      msum += m * (xb[i].bsums[2 * j] + xb[i].bsums[2 * j + 1]);
    }
    acc += F16ToFloat(b.d) * xb[i].d * static_cast<float>(sum) - F16ToFloat(b.dmin) * xb[i].d * static_cast<float>(msum);
  }
  return acc;
}

float DotQ6_K(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const BlockQ6_K*>(w);
  const auto* xb = reinterpret_cast<const ActQ8_K*>(x);
  float acc = 0;
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    const BlockQ6_K& b = wb[i];
    int sum = 0;
    for (int j = 0; j < 16; ++j) {
      int dot = 0;
      for (int e = 16 * j; e < 16 * j + 16; ++e) {
        const int n = e / 128, part = (e % 128) / 32, l = e % 32;
        const uint8_t low = b.ql[64 * n + 32 * (part % 2) + l];
        const int q = ((part < 2 ? low : low >> 4) & 0xF) | (((b.qh[32 * n + l] >> (2 * part)) & 3) << 4);
        dot += (q - 32) * xb[i].qs[e];
      }
      sum += b.scales[j] * dot;
    }
    acc += F16ToFloat(b.d) * xb[i].d * static_cast<float>(sum);
  }
  return acc;
}

template <float (*Dot)(const uint8_t*, const uint8_t*, int64_t)>
void Mat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t out_stride) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t b = 0; b < x.n; ++b) out[b * out_stride + r] = Dot(w.row(r), x.row(b), w.cols);
  }
}

}  // namespace

void AddScalarPaths(WeightType type, std::vector<KernelPath>* out) {
  KernelPath p;
  p.name = "scalar";
  p.type = type;
  p.level = 0;
  switch (type) {
    case WeightType::kF32: p.form = ActForm::kF32; p.fn = Mat<DotF32>; break;
    case WeightType::kBF16: {
      KernelPath f32_rows = p;  // first: of two at one level, the later is the default
      f32_rows.form = ActForm::kF32;
      f32_rows.fn = Mat<DotBf16F32>;
      out->push_back(f32_rows);
      p.form = ActForm::kBF16;
      p.fn = Mat<DotBf16>;
      break;
    }
    case WeightType::kQ8_0: p.form = ActForm::kQ8_0; p.fn = Mat<DotQ8_0>; break;
    case WeightType::kQ4_0: p.form = ActForm::kQ8_0; p.fn = Mat<DotQ4_0>; break;
    case WeightType::kQ4_K: p.form = ActForm::kQ8_K; p.fn = Mat<DotQ45_K<false, BlockQ4_K>>; break;
    case WeightType::kQ5_K: p.form = ActForm::kQ8_K; p.fn = Mat<DotQ45_K<true, BlockQ5_K>>; break;
    case WeightType::kQ6_K: p.form = ActForm::kQ8_K; p.fn = Mat<DotQ6_K>; break;
    case WeightType::kQ4_1: p.form = ActForm::kQ8_0; p.fn = Mat<DotLevels32<BlockQ4_1, false, true>>; break;
    case WeightType::kQ5_0: p.form = ActForm::kQ8_0; p.fn = Mat<DotLevels32<BlockQ5_0, true, false>>; break;
    case WeightType::kQ5_1: p.form = ActForm::kQ8_0; p.fn = Mat<DotLevels32<BlockQ5_1, true, true>>; break;
  }
  out->push_back(p);
}

}  // namespace strata::kernels
