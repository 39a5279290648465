// AVX2 paths (with FMA and F16C): F32 and BF16 (widened in registers) with
// f32 activation rows, and the quantized formats with integer dot products
// (vpmaddubsw/vpmaddwd; the "-vnni" variants use vpdpbusd instead, which
// gives the same int32 sums). A tile is one weight row against up to four
// activation rows: each weight block is loaded and unpacked once for the
// four, and each activation row's accumulators see the same operations in
// the same order whatever the tile's size, so a dot's bits are its own.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"
#include "storage/dtype.h"

STRATA_TARGET_BEGIN("avx2,fma,f16c")

namespace strata::kernels {
namespace {

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float F16(uint16_t h) { return _cvtsh_ss(h); }

// Eight BF16 values widened exactly to f32.
inline __m256 LoadBf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

// One row's lanes before the horizontal sum and the scalar tail (which
// starts at the returned end), as FloatTile describes them. FloatTile<kBf16, 1>
// (decode) and EightDots both make their lanes here.
template <bool kBf16>
inline __m256 DotLanes(const uint8_t* wrow, const float* x, int64_t cols, int64_t* end) {
  const auto* wf = reinterpret_cast<const float*>(wrow);
  const auto* wh = reinterpret_cast<const uint16_t*>(wrow);
  auto load_w = [&](int64_t i) __attribute__((target("avx2,fma,f16c"))) {
    return kBf16 ? LoadBf16(wh + i) : _mm256_loadu_ps(wf + i);
  };
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= cols; i += 32) {
    a0 = _mm256_fmadd_ps(load_w(i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load_w(i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load_w(i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load_w(i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= cols; i += 8) a0 = _mm256_fmadd_ps(load_w(i), _mm256_loadu_ps(x + i), a0);
  *end = i;
  return _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
}

// F32 or BF16 weights with f32 activations: four accumulators of eight
// lanes per activation row (32 columns a step), then 8-column steps into
// the first, then a scalar tail.
template <bool kBf16, int N>
void FloatTile(const uint8_t* wrow, const ActRows& x, int64_t b0, int64_t cols, float* out, int64_t stride) {
  const auto* wf = reinterpret_cast<const float*>(wrow);
  const auto* wh = reinterpret_cast<const uint16_t*>(wrow);
  auto load_w = [&](int64_t i) __attribute__((target("avx2,fma,f16c"))) {
    return kBf16 ? LoadBf16(wh + i) : _mm256_loadu_ps(wf + i);
  };
  const float* xs[N];
  for (int k = 0; k < N; ++k) xs[k] = reinterpret_cast<const float*>(x.row(b0 + k));
  if constexpr (N == 1) {
    int64_t end = 0;
    float v = Hsum(DotLanes<kBf16>(wrow, xs[0], cols, &end));
    for (int64_t t = end; t < cols; ++t) v += (kBf16 ? Bf16ToFloat(wh[t]) : wf[t]) * xs[0][t];
    out[b0 * stride] = v;
    return;
  }
  __m256 acc[N][4];
  for (int k = 0; k < N; ++k)
    for (int j = 0; j < 4; ++j) acc[k][j] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= cols; i += 32) {
    for (int j = 0; j < 4; ++j) {
      const __m256 wv = load_w(i + 8 * j);
      for (int k = 0; k < N; ++k) acc[k][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[k] + i + 8 * j), acc[k][j]);
    }
  }
  for (; i + 8 <= cols; i += 8) {
    const __m256 wv = load_w(i);
    for (int k = 0; k < N; ++k) acc[k][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[k] + i), acc[k][0]);
  }
  for (int k = 0; k < N; ++k) {
    float v = Hsum(_mm256_add_ps(_mm256_add_ps(acc[k][0], acc[k][1]), _mm256_add_ps(acc[k][2], acc[k][3])));
    for (int64_t t = i; t < cols; ++t) v += (kBf16 ? Bf16ToFloat(wh[t]) : wf[t]) * xs[k][t];
    out[(b0 + k) * stride] = v;
  }
}

// Eight short dots at once (attention's keys against one query): each
// row's lanes as DotLanes makes them, Hsum's tree run across the eight as a
// transpose, then each row's scalar tail: FloatTile's bits for every row.
template <bool kBf16>
inline void EightDots(const WeightMatrix& w, int64_t r, const float* x, float* out) {
  __m256 u[4], z[2];
  int64_t end = 0;
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {  // halves of 128: [row 2k | row 2k+1]
    const __m256 a = DotLanes<kBf16>(w.row(r + 2 * k), x, w.cols, &end);
    const __m256 b = DotLanes<kBf16>(w.row(r + 2 * k + 1), x, w.cols, &end);
    u[k] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  }
#pragma GCC unroll 2
  for (int n = 0; n < 2; ++n) {  // of 64: 128-bit lane j holds [rows 4n + j, 4n + 2 + j] x 2
    z[n] = _mm256_add_ps(_mm256_shuffle_ps(u[2 * n], u[2 * n + 1], 0x44), _mm256_shuffle_ps(u[2 * n], u[2 * n + 1], 0xEE));
  }
  // of 32: lane 0 holds rows 0, 2, 4, 6 and lane 1 rows 1, 3, 5, 7; put back in order.
  const __m256 sums = _mm256_add_ps(_mm256_shuffle_ps(z[0], z[1], 0x88), _mm256_shuffle_ps(z[0], z[1], 0xDD));
  _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(sums, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  for (int k = 0; k < 8; ++k) {
    const auto* wf = reinterpret_cast<const float*>(w.row(r + k));
    const auto* wh = reinterpret_cast<const uint16_t*>(w.row(r + k));
    for (int64_t t = end; t < w.cols; ++t) out[k] += (kBf16 ? Bf16ToFloat(wh[t]) : wf[t]) * x[t];
  }
}

// Many short rows against one activation row, eight rows at a time:
// TiledMat's bits for x.n == 1, without a horizontal sum per row.
template <bool kBf16>
void FloatManyRows(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  const auto* xf = reinterpret_cast<const float*>(x.row(0));
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) EightDots<kBf16>(w, r, xf, out + r);
  for (; r < r1; ++r) FloatTile<kBf16, 1>(w.row(r), x, 0, w.cols, out + r, stride);
}

// Runs Tile<1..kMax> over every weight row of [r0, r1) and every activation row.
template <int kMax, template <int> class Tile>
void TiledMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wrow = w.row(r);
    for (int64_t b0 = 0; b0 < x.n; b0 += kMax) {
      switch (std::min<int64_t>(kMax, x.n - b0)) {
        case 4: if constexpr (kMax >= 4) Tile<4>::Run(wrow, x, b0, w.cols, out + r, stride); break;
        case 3: if constexpr (kMax >= 3) Tile<3>::Run(wrow, x, b0, w.cols, out + r, stride); break;
        case 2: Tile<2>::Run(wrow, x, b0, w.cols, out + r, stride); break;
        default: Tile<1>::Run(wrow, x, b0, w.cols, out + r, stride); break;
      }
    }
  }
}

template <int N> struct F32Tile { static void Run(const uint8_t* w, const ActRows& x, int64_t b0, int64_t c, float* o, int64_t s) { FloatTile<false, N>(w, x, b0, c, o, s); } };
template <int N> struct Bf16Tile { static void Run(const uint8_t* w, const ActRows& x, int64_t b0, int64_t c, float* o, int64_t s) { FloatTile<true, N>(w, x, b0, c, o, s); } };

}  // namespace
}  // namespace strata::kernels

// The quantized kernels, twice: with vpmaddubsw + vpmaddwd, and with VNNI.
namespace strata::kernels::avx2 {
// Dot: int32 lanes i = sum of a[4i..4i+3] * b[4i..4i+3], a unsigned, b
// signed (no saturation: |a| <= 128 and |b| <= 127 in every format here).
// ScaledDotAcc: acc + the int16 pair sums of a * b, each times its scale16
// lane (a <= 63 here, so a pair sum fits int16).
inline __m256i ScaledDotAcc(__m256i acc, __m256i a, __m256i b, __m256i scale16) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), scale16));
}
inline __m256i Dot(__m256i a, __m256i b) { return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)); }
#include "node/engine/matmul_quant_avx2.inc"
}  // namespace strata::kernels::avx2
STRATA_TARGET_END

STRATA_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")
namespace strata::kernels::vnni {
inline __m256i ScaledDotAcc(__m256i acc, __m256i a, __m256i b, __m256i scale16) {
  return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(a, b), scale16);
}
inline __m256i Dot(__m256i a, __m256i b) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b); }
#include "node/engine/matmul_quant_avx2.inc"
}  // namespace strata::kernels::vnni
STRATA_TARGET_END

namespace strata::kernels {

void AddAvx2Paths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out) {
  if (!(cpu.avx2 && cpu.fma && cpu.f16c)) return;
  KernelPath p;
  p.type = type;
  p.level = 1;
  p.name = "avx2";
  switch (type) {
    case WeightType::kF32:
    case WeightType::kBF16: {
      const bool bf16 = type == WeightType::kBF16;
      p.form = ActForm::kF32;
      p.fn = bf16 ? TiledMat<2, Bf16Tile> : TiledMat<2, F32Tile>;
      p.many_rows = bf16 ? FloatManyRows<true> : FloatManyRows<false>;
      out->push_back(p);
      return;
    }
    default: break;
  }
  p.form = avx2::QuantForm(type);
  p.fn = avx2::QuantMat(type);
  out->push_back(p);
  if (cpu.avx512vnni && cpu.avx512vl) {
    p.name = "avx2-vnni";
    p.level = 2;  // VNNI on 256 bits comes with AVX-512 (VL): --kernels avx2 leaves it out
    p.fn = vnni::QuantMat(type);
    out->push_back(p);
  }
}

}  // namespace strata::kernels
