// The AVX-512 VNNI path for Q8_0 ("avx512-vnni"). Prompt chunks and
// batches of more than four rows go in tiles of up to 4 weight rows by 4
// activation rows, two 32-element blocks a step in 512-bit registers:
// each weight block is unpacked once for the 4 activation rows and each
// activation block loaded once for the 4 weight rows. Up to four rows
// (decode) go one weight row at a time in 256-bit registers, which cost
// less where nothing is shared on CPUs that split 512-bit operations.
//
// The 256-bit paths' sign trick (|w| . (x * sign w)) costs an instruction
// per weight block and activation row. Here the weights are made unsigned
// once (q + 128) and vpdpbusd starts from the activation's correction
// (-128 x each lane's four x), computed once when the row is quantized
// (ActQ8_0Pair): the int32 lanes are exactly the signed dot's, and the
// f32 steps are the 256-bit paths' (even and odd blocks in two
// accumulators, the same reduction). So every dot here has the bits it
// has on the AVX2 path, in a tile of any shape, and a cluster of AVX2 and
// AVX-512 machines computes a split model as one machine does.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"
#include "storage/quant_blocks.h"

STRATA_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")

namespace strata::kernels {
namespace {

// [a x 8 | b x 8] for two f16 scales.
inline __m512 JoinF16(uint16_t a, uint16_t b) {
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(static_cast<int16_t>(a))),
                                            _mm_set1_epi16(static_cast<int16_t>(b)), 1);
  return _mm512_cvtph_ps(h);
}

// [a x 8 | b x 8] for two f32 scales.
inline __m512 JoinF32(const float* a, const float* b) {
  const __m512d lo = _mm512_castps_pd(_mm512_castps256_ps512(_mm256_broadcast_ss(a)));
  return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_broadcast_ss(b)), 1));
}

// Q8_0 weights, Q8_0 activations in pairs of blocks (ActQ8_0Pair): blocks
// 2p and 2p + 1 in the two halves of one register, the weights made
// unsigned (q + 128) and the dot started from the activation's correction,
// so its int32 lanes are the signed dot's. acc[r][k] += lanes * (d_w * d_x);
// a lone last block adds to the lower half only. The lower half sums the
// even blocks and the upper the odd ones, reduced as (even + odd) then
// 8 -> 4 -> 2 -> 1: the 256-bit paths' order, so this path's dots have
// their bits.
template <int R, int N>
struct Q8_0Tile {
  const BlockQ8_0* w[R];
  const ActQ8_0Pair* x[N];

  template <bool kPair>
  __attribute__((always_inline)) inline void Step(int64_t p, __m512 (&acc)[R * N]) const {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i wu[R];
    __m512 dw[R];
    for (int r = 0; r < R; ++r) {
      const BlockQ8_0* b = w[r] + 2 * p;
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
      const __m256i hi = kPair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)) : _mm256_set1_epi8(static_cast<char>(0x80));
      wu[r] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);  // q + 128; 0 above a lone block
      dw[r] = JoinF16(b[0].d, kPair ? b[1].d : 0);
    }
    for (int k = 0; k < N; ++k) {
      const ActQ8_0Pair& a = x[k][p];
      const __m512i xv = _mm512_loadu_si512(a.qs);
      const __m512i fix = _mm512_loadu_si512(a.fix);
      const __m512 dx = JoinF32(&a.d[0], &a.d[1]);
      for (int r = 0; r < R; ++r) {
        const __m512 lanes = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(fix, wu[r], xv));
        const __m512 scale = _mm512_mul_ps(dw[r], dx);
        acc[r * N + k] = kPair ? _mm512_fmadd_ps(lanes, scale, acc[r * N + k])
                               : _mm512_mask3_fmadd_ps(lanes, scale, acc[r * N + k], 0x00FF);
      }
    }
  }

  void Run(const WeightMatrix& m, int64_t r0, const ActRows& a, int64_t b0, float* out, int64_t stride) {
    for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const BlockQ8_0*>(m.row(r0 + r));
    for (int k = 0; k < N; ++k) x[k] = reinterpret_cast<const ActQ8_0Pair*>(a.row(b0 + k));
    __m512 acc[R * N];
    for (int j = 0; j < R * N; ++j) acc[j] = _mm512_setzero_ps();
    const int64_t nb = m.cols / kQK8_0;
    for (int64_t p = 0; p < nb / 2; ++p) Step<true>(p, acc);
    if (nb % 2 != 0) Step<false>(nb / 2, acc);
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < N; ++k) out[(b0 + k) * stride + r0 + r] = _mm512_reduce_add_ps(acc[r * N + k]);
  }
};

// The same dots 256 bits at a time, for few activation rows: one weight
// row, block by block, even blocks into one accumulator and odd into
// another (the halves of Q8_0Tile's), so the bits are Q8_0Tile's. With no
// other weight rows to share an activation load, the narrower registers
// cost less here on CPUs that split 512-bit operations in two.
template <int N>
struct Q8_0Row256 {
  // Block h (0 or 1) of pair p against the N activation rows.
  template <int h>
  __attribute__((always_inline)) static inline void Block(const BlockQ8_0* b, const ActQ8_0Pair* const (&x)[N], int64_t p,
                                                          __m256 (&acc)[N]) {
    const __m256i wu = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs)),
                                        _mm256_set1_epi8(static_cast<char>(0x80)));
    const __m256 dw = _mm256_cvtph_ps(_mm_set1_epi16(static_cast<int16_t>(b->d)));
    for (int k = 0; k < N; ++k) {
      const ActQ8_0Pair& a = x[k][p];
      const __m256i fix = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.fix + 8 * h));
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * h));
      const __m256 lanes = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(fix, wu, xv));
      acc[k] = _mm256_fmadd_ps(lanes, _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d[h])), acc[k]);
    }
  }

  void Run(const WeightMatrix& m, int64_t r, const ActRows& a, int64_t b0, float* out, int64_t stride) const {
    const auto* w = reinterpret_cast<const BlockQ8_0*>(m.row(r));
    const ActQ8_0Pair* x[N];
    for (int k = 0; k < N; ++k) x[k] = reinterpret_cast<const ActQ8_0Pair*>(a.row(b0 + k));
    __m256 acc[2][N];  // [even, odd blocks][activation row]
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < N; ++k) acc[h][k] = _mm256_setzero_ps();
    const int64_t nb = m.cols / kQK8_0;
    for (int64_t p = 0; p < nb / 2; ++p) {
      Block<0>(w + 2 * p, x, p, acc[0]);
      Block<1>(w + 2 * p + 1, x, p, acc[1]);
    }
    if (nb % 2 != 0) Block<0>(w + nb - 1, x, nb / 2, acc[0]);
    for (int k = 0; k < N; ++k) {
      const __m256 v = _mm256_add_ps(acc[1][k], acc[0][k]);
      __m128 q = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
      q = _mm_add_ps(q, _mm_shuffle_ps(q, q, _MM_SHUFFLE(1, 0, 3, 2)));
      out[(b0 + k) * stride + r] = _mm_cvtss_f32(q) + _mm_cvtss_f32(_mm_shuffle_ps(q, q, 1));
    }
  }
};

// Runs Tile<R, N> over weight rows [r0, r1) in groups of up to 4 and the
// activation rows in groups of up to 4; up to 4 activation rows in all
// go through Row<N>, one weight row at a time (one stream per core, as
// the float paths' decode). Every dot has the same bits either way.
template <template <int, int> class Tile, int R>
void TileRows(int n, const WeightMatrix& w, int64_t r, const ActRows& x, int64_t b0, float* out, int64_t stride) {
  switch (n) {
    case 4: Tile<R, 4>().Run(w, r, x, b0, out, stride); break;
    case 3: Tile<R, 3>().Run(w, r, x, b0, out, stride); break;
    case 2: Tile<R, 2>().Run(w, r, x, b0, out, stride); break;
    default: Tile<R, 1>().Run(w, r, x, b0, out, stride); break;
  }
}

template <template <int, int> class Tile, template <int> class Row>
void TiledQuantMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  if (x.n <= 4) {
    for (int64_t r = r0; r < r1; ++r) {
      PrefetchRowAhead(w, r, r1);
      switch (x.n) {
        case 4: Row<4>().Run(w, r, x, 0, out, stride); break;
        case 3: Row<3>().Run(w, r, x, 0, out, stride); break;
        case 2: Row<2>().Run(w, r, x, 0, out, stride); break;
        default: Row<1>().Run(w, r, x, 0, out, stride); break;
      }
    }
    return;
  }
  for (int64_t r = r0; r < r1; r += 4) {
    const int m = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t b0 = 0; b0 < x.n; b0 += 4) {
      const int n = static_cast<int>(std::min<int64_t>(4, x.n - b0));
      switch (m) {
        case 4: TileRows<Tile, 4>(n, w, r, x, b0, out, stride); break;
        case 3: TileRows<Tile, 3>(n, w, r, x, b0, out, stride); break;
        case 2: TileRows<Tile, 2>(n, w, r, x, b0, out, stride); break;
        default: TileRows<Tile, 1>(n, w, r, x, b0, out, stride); break;
      }
    }
  }
}

}  // namespace
}  // namespace strata::kernels
STRATA_TARGET_END

namespace strata::kernels {

void AddAvx512QuantPaths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out) {
  if (!(cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512vnni && cpu.fma && cpu.f16c)) return;
  KernelPath p;
  p.type = type;
  p.level = 2;
  p.name = "avx512-vnni";
  switch (type) {
    case WeightType::kQ8_0: p.form = ActForm::kQ8_0Pairs; p.fn = TiledQuantMat<Q8_0Tile, Q8_0Row256>; break;
    default: return;
  }
  out->push_back(p);
}

}  // namespace strata::kernels
