// The AVX-512 VNNI paths ("avx512-vnni") for Q8_0 and the K formats, in
// 512-bit registers, tiles of up to 4 weight rows by 4 activation rows:
// each weight block is unpacked once for the tile's activation rows and
// each activation block loaded once for its weight rows. Decode and small
// batches take a tile's weight rows from the four RowStreams stretches of
// the thread's rows (matmul.h: four streams of addresses keep the L2
// prefetcher ahead); Q8_0's prompt chunks take 4 adjacent rows. The K
// formats' prompt chunks go through the AMX tiles where the CPU has them.
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
#include <cmath>
#include <cstring>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"
#include "storage/quant_blocks.h"

STRATA_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
#include "node/engine/k_scales_simd.h"

namespace strata::kernels {
namespace {

// [a x 8 | b x 8] for two f16 scales.
inline __m512 JoinF16(uint16_t a, uint16_t b) {
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(static_cast<int16_t>(a))),
                                            _mm_set1_epi16(static_cast<int16_t>(b)), 1);
  return _mm512_cvtph_ps(h);
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
  template <bool kPair>
  __attribute__((always_inline)) static inline void Step(const BlockQ8_0* const (&w)[R], const ActQ8_0Pair* const (&x)[N],
                                                         int64_t p, __m512 (&acc)[R * N]) {
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
      const __m512 dx = _mm512_loadu_ps(a.d);
      for (int r = 0; r < R; ++r) {
        const __m512 lanes = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(fix, wu[r], xv));
        const __m512 scale = _mm512_mul_ps(dw[r], dx);
        acc[r * N + k] = kPair ? _mm512_fmadd_ps(lanes, scale, acc[r * N + k])
                               : _mm512_mask3_fmadd_ps(lanes, scale, acc[r * N + k], 0x00FF);
      }
    }
  }

  // Weight rows rows[0..R) against activation rows [b0, b0 + N).
  static void Run(const WeightMatrix& m, const int64_t* rows, const ActRows& a, int64_t b0, float* out, int64_t stride) {
    const BlockQ8_0* w[R];
    const ActQ8_0Pair* x[N];
    for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const BlockQ8_0*>(m.row(rows[r]));
    for (int k = 0; k < N; ++k) x[k] = reinterpret_cast<const ActQ8_0Pair*>(a.row(b0 + k));
    __m512 acc[R * N];
    for (int j = 0; j < R * N; ++j) acc[j] = _mm512_setzero_ps();
    const int64_t nb = m.cols / kQK8_0;
    for (int64_t p = 0; p < nb / 2; ++p) Step<true>(w, x, p, acc);
    if (nb % 2 != 0) Step<false>(w, x, nb / 2, acc);
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < N; ++k) out[(b0 + k) * stride + rows[r]] = _mm512_reduce_add_ps(acc[r * N + k]);
  }
};

// The K formats: 64 elements a step, a 32-element Q4_K sub-block's
// nibbles in each half (the low nibbles of 32 bytes, then the high ones),
// or four 16-element Q6_K sub-blocks; each sub-block's pair sums times its
// scale into int32 lanes (vpdpwssd), the super-block's sum taken whole
// (exact), then one f32 fma per super-block: the order of the avx2 paths
// (Q45KTile, Q6KTile) and the AMX tiles, so these dots have their bits.

// Lane sum of an int32 vector's 16 lanes (exact).
inline int32_t SumLanes(__m512i v) {
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  q = _mm_add_epi32(q, _mm_shuffle_epi32(q, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtsi128_si32(_mm_add_epi32(q, _mm_shuffle_epi32(q, _MM_SHUFFLE(2, 3, 0, 1))));
}

// int16 lanes [a x 16 | b x 16] of v (lane indices a, b < 32).
inline __m512i PickPairs(__m512i v, int a, int b) {
  const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<int16_t>(a))),
                                         _mm256_set1_epi16(static_cast<int16_t>(b)), 1);
  return _mm512_permutexvar_epi16(idx, v);
}

// [v | v] for 32 bytes at p.
inline __m512i Both(const uint8_t* p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// int16 lanes shifted right by a in the lower half and by b in the upper.
inline __m512i ShiftHalves(__m512i v, int a, int b) {
  return _mm512_srlv_epi16(v, _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(a)),
                                                 _mm256_set1_epi16(static_cast<int16_t>(b)), 1));
}

// Four rows' super-block sums: [S0, M0, S1, M1, S2, M2, S3, M3] from each
// row's int32 lanes (sum: 16, mins: 8). Integer adds: exact in any order.
inline __m256i RowPairSums(const __m512i (&sum)[4], const __m256i (&mins)[4]) {
  __m256i a[4];
  for (int r = 0; r < 4; ++r) {
    const __m256i f = _mm256_add_epi32(_mm512_castsi512_si256(sum[r]), _mm512_extracti64x4_epi64(sum[r], 1));
    a[r] = _mm256_add_epi32(_mm256_unpacklo_epi32(f, mins[r]), _mm256_unpackhi_epi32(f, mins[r]));  // per 128: [S, M, S, M]
  }
  const __m256i b01 = _mm256_add_epi32(_mm256_unpacklo_epi64(a[0], a[1]), _mm256_unpackhi_epi64(a[0], a[1]));
  const __m256i b23 = _mm256_add_epi32(_mm256_unpacklo_epi64(a[2], a[3]), _mm256_unpackhi_epi64(a[2], a[3]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(b01, b23, 0x20), _mm256_permute2x128_si256(b01, b23, 0x31));
}

// int16 lanes shifted left by a in the lower half and by b in the upper.
inline __m512i ShiftLeftHalves(__m512i v, int a, int b) {
  return _mm512_sllv_epi16(v, _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(a)),
                                                 _mm256_set1_epi16(static_cast<int16_t>(b)), 1));
}

// Q4_K (kQ5 false) or Q5_K weights: R weight rows (any rows of the
// matrix, `rows`) against N Q8_K activation rows, each activation chunk
// loaded once for the R rows. 128 elements a step: 64 bytes of nibbles
// hold sub-blocks [4p | 4p + 2] in their low nibbles and [4p + 1 | 4p + 3]
// in their high ones. Each super-block's exact int32 sums of the R rows
// meet in one register (RowPairSums), then one f32 fma takes all R rows'
// steps acc = fma(S, d dx, acc) and accm = fma(M, dmin dx, accm) at once,
// in super-block order: the steps of the scalar dot.
template <bool kQ5, int R, int N>
struct Q45KTile512 {
  static void Run(const WeightMatrix& m, const int64_t* rows, const ActRows& a, int64_t b0, float* out, int64_t stride) {
    constexpr int64_t kBlock = kQ5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    const ActQ8_K* xs[N];
    for (int k = 0; k < N; ++k) xs[k] = reinterpret_cast<const ActQ8_K*>(a.row(b0 + k));
    const uint8_t* w[R];
    for (int r = 0; r < R; ++r) w[r] = m.row(rows[r]);
    __m256 acc[N];  // [acc_0, accm_0, acc_1, accm_1, ...] of row r in lanes 2r, 2r + 1
    for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
    const __m512i low4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    const int64_t nb = m.cols / kQKK;
    for (int64_t i = 0; i < nb; ++i) {
      const uint8_t* qs[R];
      __m512i sc16[R], high[R];
      __m256i m16[R];
      __m128i head[4];
      for (int r = 0; r < 4; ++r) head[r] = _mm_setzero_si128();
      for (int r = 0; r < R; ++r) {
        const uint8_t* b = w[r] + i * kBlock;
        if constexpr (kQ5) {
          const auto* q5 = reinterpret_cast<const BlockQ5_K*>(b);
          qs[r] = q5->qs, high[r] = Both(q5->qh);
        } else {
          qs[r] = reinterpret_cast<const BlockQ4_K*>(b)->qs;
        }
        head[r] = LoadHead(b);
        const __m128i sm = Q4KScaleBytes(head[r]);                    // [sc0..sc7, m0..m7]
        sc16[r] = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm));
        m16[r] = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));  // [m0, m0, m1, m1, ...]
      }
      // [d0, dmin0, d1, dmin1, ...]
      const __m256 dd = HeadScales(head[0], head[1], head[2], head[3]);
      __m512i isum[R][N];
      for (int r = 0; r < R; ++r)
        for (int k = 0; k < N; ++k) isum[r][k] = _mm512_setzero_si512();
      for (int p = 0; p < 2; ++p) {
        __m512i xlo[N], xhi[N];  // x of sub-blocks [4p | 4p + 2], [4p + 1 | 4p + 3]
        for (int k = 0; k < N; ++k) {
          const __m512i x0 = _mm512_loadu_si512(xs[k][i].qs + 128 * p), x1 = _mm512_loadu_si512(xs[k][i].qs + 128 * p + 64);
          xlo[k] = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(1, 0, 1, 0));
          xhi[k] = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int r = 0; r < R; ++r) {
          const __m512i v = _mm512_loadu_si512(qs[r] + 64 * p);
          __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
          if constexpr (kQ5) {
            lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(ShiftHalves(high[r], 4 * p, 4 * p + 2), one), 4));
            hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(ShiftHalves(high[r], 4 * p + 1, 4 * p + 3), one), 4));
          }
          const __m512i slo = PickPairs(sc16[r], 4 * p, 4 * p + 2), shi = PickPairs(sc16[r], 4 * p + 1, 4 * p + 3);
          for (int k = 0; k < N; ++k) {
            isum[r][k] = _mm512_dpwssd_epi32(isum[r][k], _mm512_maddubs_epi16(lo, xlo[k]), slo);
            isum[r][k] = _mm512_dpwssd_epi32(isum[r][k], _mm512_maddubs_epi16(hi, xhi[k]), shi);
          }
        }
      }
      for (int k = 0; k < N; ++k) {
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs[k][i].bsums));
        __m512i sum[4];
        __m256i mins[4];
        for (int r = 0; r < 4; ++r) sum[r] = _mm512_setzero_si512(), mins[r] = _mm256_setzero_si256();
        for (int r = 0; r < R; ++r) sum[r] = isum[r][k], mins[r] = _mm256_madd_epi16(bs, m16[r]);
        const __m256 scale = _mm256_mul_ps(dd, _mm256_set1_ps(xs[k][i].d));
        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(RowPairSums(sum, mins)), scale, acc[k]);
      }
    }
    for (int k = 0; k < N; ++k) {
      alignas(32) float f[8];
      _mm256_store_ps(f, acc[k]);
      for (int r = 0; r < R; ++r) out[(b0 + k) * stride + rows[r]] = f[2 * r] - f[2 * r + 1];
    }
  }
};
template <int R, int N> using Q4KTile512 = Q45KTile512<false, R, N>;
template <int R, int N> using Q5KTile512 = Q45KTile512<true, R, N>;

// Q6_K weights, as Q45KTile512: q in [0, 64) against x, the -32 through
// the bsums (32 * sc_j * bsum_j) in the same int32 sum.
template <int R, int N>
struct Q6KTile512 {
  static void Run(const WeightMatrix& m, const int64_t* rows, const ActRows& a, int64_t b0, float* out, int64_t stride) {
    const ActQ8_K* xs[N];
    for (int k = 0; k < N; ++k) xs[k] = reinterpret_cast<const ActQ8_K*>(a.row(b0 + k));
    float acc[R][N] = {};
    const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
    const int64_t nb = m.cols / kQKK;
    for (int64_t i = 0; i < nb; ++i) {
      const BlockQ6_K* b[R];
      __m512i sc[R], isum[R][N];
      for (int r = 0; r < R; ++r) {
        b[r] = reinterpret_cast<const BlockQ6_K*>(m.row(rows[r])) + i;
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[r]->scales)));  // [16]
        sc[r] = _mm512_castsi256_si512(s16);
        for (int k = 0; k < N; ++k) {
          const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs[k][i].bsums));
          isum[r][k] = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bs, s16), 5)));
        }
      }
      for (int n = 0; n < 2; ++n) {  // elements [128n, 128n + 128): sub-blocks 8n .. 8n + 7
        for (int h = 0; h < 2; ++h) {  // elements 128n + 64h: sub-blocks 8n + 4h .. + 3, 8 pair lanes each
          const int j = 8 * n + 4 * h;
          const __m512i idx = _mm512_set_epi16(j + 3, j + 3, j + 3, j + 3, j + 3, j + 3, j + 3, j + 3, j + 2, j + 2, j + 2,
                                               j + 2, j + 2, j + 2, j + 2, j + 2, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1,
                                               j + 1, j + 1, j, j, j, j, j, j, j, j);
          __m512i xv[N];
          for (int k = 0; k < N; ++k) xv[k] = _mm512_loadu_si512(xs[k][i].qs + 128 * n + 64 * h);
          for (int r = 0; r < R; ++r) {
            const __m512i lo = _mm512_loadu_si512(b[r]->ql + 64 * n);
            const __m512i hi = Both(b[r]->qh + 32 * n);
            // Bits 2s, 2s + 1 of qh as bits 4, 5 of sub-block s's bytes (what a 16-bit shift moves across a byte is masked off).
            const __m512i q = h == 0 ? _mm512_or_si512(_mm512_and_si512(lo, low4), _mm512_and_si512(ShiftLeftHalves(hi, 4, 2), bits45))
                                     : _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo, 4), low4),
                                                       _mm512_and_si512(ShiftHalves(hi, 0, 2), bits45));
            const __m512i s = _mm512_permutexvar_epi16(idx, sc[r]);
            for (int k = 0; k < N; ++k) isum[r][k] = _mm512_dpwssd_epi32(isum[r][k], _mm512_maddubs_epi16(q, xv[k]), s);
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        const float d = _cvtsh_ss(b[r]->d);
        for (int k = 0; k < N; ++k) acc[r][k] = std::fma(static_cast<float>(SumLanes(isum[r][k])), d * xs[k][i].d, acc[r][k]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < N; ++k) out[(b0 + k) * stride + rows[r]] = acc[r][k];
  }
};

template <template <int, int> class Tile, int R>
void TileRows(int n, const WeightMatrix& w, const int64_t* rows, const ActRows& x, int64_t b0, float* out, int64_t stride) {
  switch (n) {
    case 4: Tile<R, 4>::Run(w, rows, x, b0, out, stride); break;
    case 3: Tile<R, 3>::Run(w, rows, x, b0, out, stride); break;
    case 2: Tile<R, 2>::Run(w, rows, x, b0, out, stride); break;
    default: Tile<R, 1>::Run(w, rows, x, b0, out, stride); break;
  }
}

// Tile<R, N> over weight rows `rows` (R of them) and every activation row in groups of up to 4.
template <template <int, int> class Tile>
void TileAllCols(int m, const WeightMatrix& w, const int64_t* rows, const ActRows& x, float* out, int64_t stride) {
  for (int64_t b0 = 0; b0 < x.n; b0 += 4) {
    const int n = static_cast<int>(std::min<int64_t>(4, x.n - b0));
    switch (m) {
      case 4: TileRows<Tile, 4>(n, w, rows, x, b0, out, stride); break;
      case 3: TileRows<Tile, 3>(n, w, rows, x, b0, out, stride); break;
      case 2: TileRows<Tile, 2>(n, w, rows, x, b0, out, stride); break;
      default: TileRows<Tile, 1>(n, w, rows, x, b0, out, stride); break;
    }
  }
}

// A thread's weight rows as RowStreams: each step's rows (one from each
// stretch) in one tile.
template <template <int, int> class Tile>
void StreamedMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  const RowStreams streams(r0, r1);
  for (int64_t j = 0; j < streams.steps(); ++j) {
    int64_t rows[kRowStreams];
    const int m = streams.Rows(j, rows);
    TileAllCols<Tile>(m, w, rows, x, out, stride);
  }
}

// Q8_0: decode and small batches as StreamedMat; prompt chunks and
// batches of more than four rows in tiles of 4 adjacent weight rows,
// whose weight blocks stay in L1 for every activation row group.
void Q8_0Mat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  if (x.n <= 4) return StreamedMat<Q8_0Tile>(w, x, r0, r1, out, stride);
  for (int64_t r = r0; r < r1; r += 4) {
    const int64_t rows[4] = {r, r + 1, r + 2, r + 3};
    TileAllCols<Q8_0Tile>(static_cast<int>(std::min<int64_t>(4, r1 - r)), w, rows, x, out, stride);
  }
}

}  // namespace
}  // namespace strata::kernels
STRATA_TARGET_END

namespace strata::kernels {

MatFn Avx512KQuantMat(WeightType type) {
  switch (type) {
    case WeightType::kQ4_K: return StreamedMat<Q4KTile512>;
    case WeightType::kQ5_K: return StreamedMat<Q5KTile512>;
    case WeightType::kQ6_K: return StreamedMat<Q6KTile512>;
    default: return nullptr;
  }
}

void AddAvx512QuantPaths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out) {
  if (!(cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512vnni && cpu.fma && cpu.f16c)) return;
  KernelPath p;
  p.type = type;
  p.level = 2;
  p.name = "avx512-vnni";
  switch (type) {
    case WeightType::kQ8_0: p.form = ActForm::kQ8_0Pairs; p.fn = Q8_0Mat; break;
    case WeightType::kQ4_K:
    case WeightType::kQ5_K:
    case WeightType::kQ6_K: p.form = ActForm::kQ8_K; p.fn = Avx512KQuantMat(type); break;
    default: return;
  }
  out->push_back(p);
}

}  // namespace strata::kernels
