// AVX-512 paths: F32, and BF16 two ways: widened to f32 in registers (any
// AVX-512F/BW CPU, f32 activations) or with vdpbf16ps where the CPU has
// AVX512-BF16 (bf16 activations, as the compute dtype holds them).
// Column tails are masked loads, so any width runs in the vector loop.
#include <immintrin.h>

#include <algorithm>

#include "node/engine/matmul.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")

namespace strata::kernels {
namespace {

inline __m512 LoadBf16x16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// One weight row against N activation rows (f32): four accumulators of 16
// lanes each, 64 columns a step, then 16-column steps (the last masked)
// into the first.
template <bool kBf16, int N>
void FloatTile(const uint8_t* wrow, const ActRows& x, int64_t b0, int64_t cols, float* out, int64_t stride) {
  const auto* wf = reinterpret_cast<const float*>(wrow);
  const auto* wh = reinterpret_cast<const uint16_t*>(wrow);
  const float* xs[N];
  for (int k = 0; k < N; ++k) xs[k] = reinterpret_cast<const float*>(x.row(b0 + k));
  __m512 acc[N][4];
  for (int k = 0; k < N; ++k)
    for (int j = 0; j < 4; ++j) acc[k][j] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= cols; i += 64) {
    for (int j = 0; j < 4; ++j) {
      const __m512 wv = kBf16 ? LoadBf16x16(wh + i + 16 * j, 0xFFFF) : _mm512_loadu_ps(wf + i + 16 * j);
      for (int k = 0; k < N; ++k) acc[k][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[k] + i + 16 * j), acc[k][j]);
    }
  }
  for (; i < cols; i += 16) {
    const __mmask16 m = cols - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (cols - i)) - 1);
    const __m512 wv = kBf16 ? LoadBf16x16(wh + i, m) : _mm512_maskz_loadu_ps(m, wf + i);
    for (int k = 0; k < N; ++k) acc[k][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xs[k] + i), acc[k][0]);
  }
  for (int k = 0; k < N; ++k) {
    out[(b0 + k) * stride] =
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[k][0], acc[k][1]), _mm512_add_ps(acc[k][2], acc[k][3])));
  }
}

template <bool kBf16>
void FloatMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t b0 = 0; b0 < x.n; b0 += 4) {
      switch (std::min<int64_t>(4, x.n - b0)) {
        case 4: FloatTile<kBf16, 4>(w.row(r), x, b0, w.cols, out + r, stride); break;
        case 3: FloatTile<kBf16, 3>(w.row(r), x, b0, w.cols, out + r, stride); break;
        case 2: FloatTile<kBf16, 2>(w.row(r), x, b0, w.cols, out + r, stride); break;
        default: FloatTile<kBf16, 1>(w.row(r), x, b0, w.cols, out + r, stride); break;
      }
    }
  }
}

}  // namespace
}  // namespace strata::kernels
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
namespace strata::kernels {
namespace {

// vdpbf16ps over a tile of R weight rows x N activation rows (both bf16).
// A dot keeps four accumulators: a_j sums the 32-wide chunks at 128i + 32j
// in order of i, and a_0 then takes the tail (masked). The tile runs one j
// at a time with R*N accumulators in registers, then reduces the four as
// ((a0 + a1) + (a2 + a3)): each dot's sequence of operations, and so its
// bits, are the same for any R and N, while each weight and activation load
// serves N or R dot steps (R = N = 4: 8 loads per 16 dot steps).
template <int R, int N>
void DpTile(const uint16_t* w, const ActRows& x, int64_t b0, int64_t cols, float* out, int64_t stride) {
  const auto* xp = reinterpret_cast<const uint16_t*>(x.row(b0));
  const int64_t xs = static_cast<int64_t>(x.row_bytes / 2);
  __m512 part[4][R][N];  // [j][weight row][activation row]
  const int64_t main_end = cols / 128 * 128;
  for (int j = 0; j < 4; ++j) {
    __m512 acc[R][N];
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < N; ++b) acc[r][b] = _mm512_setzero_ps();
    auto step = [&](int64_t i, __mmask32 m) __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) {
      __m512bh wv[R];
      for (int r = 0; r < R; ++r) wv[r] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + r * cols + i);
      for (int b = 0; b < N; ++b) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, xp + b * xs + i);
        for (int r = 0; r < R; ++r) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], xv, wv[r]);
      }
    };
    for (int64_t i = 32 * j; i < main_end; i += 128) step(i, 0xFFFFFFFFu);
    if (j == 0) {
      for (int64_t i = main_end; i < cols; i += 32) {
        step(i, cols - i >= 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1u << (cols - i)) - 1));
      }
    }
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < N; ++b) part[j][r][b] = acc[r][b];
  }
  for (int r = 0; r < R; ++r) {
    for (int b = 0; b < N; ++b) {
      out[b * stride + r] = _mm512_reduce_add_ps(
          _mm512_add_ps(_mm512_add_ps(part[0][r][b], part[1][r][b]), _mm512_add_ps(part[2][r][b], part[3][r][b])));
    }
  }
}

template <int R>
void DpRows(int n, const uint16_t* w, const ActRows& x, int64_t b0, int64_t cols, float* out, int64_t stride) {
  switch (n) {
    case 4: DpTile<R, 4>(w, x, b0, cols, out, stride); break;
    case 3: DpTile<R, 3>(w, x, b0, cols, out, stride); break;
    case 2: DpTile<R, 2>(w, x, b0, cols, out, stride); break;
    default: DpTile<R, 1>(w, x, b0, cols, out, stride); break;
  }
}

void DpBf16Mat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  const auto* wp = reinterpret_cast<const uint16_t*>(w.data);
  for (int64_t r = r0; r < r1; r += 4) {
    const int m = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t b0 = 0; b0 < x.n; b0 += 4) {
      const int n = static_cast<int>(std::min<int64_t>(4, x.n - b0));
      const uint16_t* wt = wp + r * w.cols;
      float* o = out + b0 * stride + r;
      switch (m) {
        case 4: DpRows<4>(n, wt, x, b0, w.cols, o, stride); break;
        case 3: DpRows<3>(n, wt, x, b0, w.cols, o, stride); break;
        case 2: DpRows<2>(n, wt, x, b0, w.cols, o, stride); break;
        default: DpRows<1>(n, wt, x, b0, w.cols, o, stride); break;
      }
    }
  }
}

}  // namespace
}  // namespace strata::kernels
#pragma GCC pop_options

namespace strata::kernels {

void AddAvx512Paths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out) {
  if (!(cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.fma)) return;
  KernelPath p;
  p.type = type;
  p.level = 2;
  p.name = "avx512";
  p.form = ActForm::kF32;
  if (type == WeightType::kF32) {
    p.fn = FloatMat<false>;
    out->push_back(p);
  } else if (type == WeightType::kBF16) {
    p.fn = FloatMat<true>;
    out->push_back(p);
    if (cpu.avx512bf16) {
      p.name = "avx512-bf16";
      p.form = ActForm::kBF16;
      p.fn = DpBf16Mat;
      out->push_back(p);
    }
  }
}

}  // namespace strata::kernels
