// AVX-512 paths: F32, and BF16 two ways: widened to f32 in registers (any
// AVX-512F/BW CPU, f32 activations) or with vdpbf16ps where the CPU has
// AVX512-BF16 (bf16 activations, as the compute dtype holds them).
// Column tails are masked loads, so any width runs in the vector loop.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"

STRATA_TARGET_BEGIN("avx512f,avx512bw,avx512vl,fma")

namespace strata::kernels {
namespace {

inline __m512 LoadBf16x16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// The sum of v's lanes, in the tree of GCC's _mm512_reduce_add_ps: halves
// of 256, 128, 64 and 32 bits. Spelled out, so that SixteenDots's
// transposed sums are certain to be the same additions.
inline float Hsum16(__m512 v) {
  const __m256 t3 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 t6 = _mm_add_ps(_mm256_castps256_ps128(t3), _mm256_extractf128_ps(t3, 1));
  const __m128 t8 = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));  // [t6_0 + t6_2, t6_1 + t6_3]
  return _mm_cvtss_f32(_mm_add_ss(t8, _mm_movehdup_ps(t8)));
}

// Sixteen Hsum16s at once: Hsum16's tree run across v[0..15] as a
// transpose, so lane k is Hsum16(v[k]) bit for bit.
inline __m512 Hsum16x16(const __m512* v) {
  __m512 u[8], w[4], z[2];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {  // halves of 256: [row 2k | row 2k+1]
    u[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44), _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
  }
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {  // of 128: 128-bit lane j holds row 4m + j
    w[m] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * m], u[2 * m + 1], 0x88),
                         _mm512_shuffle_f32x4(u[2 * m], u[2 * m + 1], 0xDD));
  }
#pragma GCC unroll 2
  for (int n = 0; n < 2; ++n) {  // of 64: lane j holds [t8 of row 8n + j, of row 8n + 4 + j]
    z[n] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * n], w[2 * n + 1], 0x44), _mm512_shuffle_ps(w[2 * n], w[2 * n + 1], 0xEE));
  }
  // of 32: lane j holds rows j, 4 + j, 8 + j, 12 + j; put back in order.
  const __m512 sums = _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], 0x88), _mm512_shuffle_ps(z[0], z[1], 0xDD));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, sums);
}

// R dots of one activation row before their horizontal sums, each as
// FloatGemm describes it: a_j over the 16-wide chunks at 64i + 16j, the
// tail into a_0, ((a0 + a1) + (a2 + a3)). FloatMat's decode and
// SixteenDots make their lanes here.
template <bool kBf16, int R>
inline void DotLanesRows(const uint8_t* const* rows, const float* x, int64_t cols, __m512* lanes) {
  auto load = [&](int r, int64_t i, __mmask16 m) __attribute__((target("avx512f,avx512bw,avx512vl,fma"))) {
    return kBf16 ? LoadBf16x16(reinterpret_cast<const uint16_t*>(rows[r]) + i, m)
                 : _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(rows[r]) + i);
  };
  __m512 a[R][4];
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
  const int64_t main_end = cols / 64 * 64;
  for (int64_t i = 0; i < main_end; i += 64) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16), x2 = _mm512_loadu_ps(x + i + 32),
                 x3 = _mm512_loadu_ps(x + i + 48);
    for (int r = 0; r < R; ++r) {
      a[r][0] = _mm512_fmadd_ps(load(r, i, 0xFFFF), x0, a[r][0]);
      a[r][1] = _mm512_fmadd_ps(load(r, i + 16, 0xFFFF), x1, a[r][1]);
      a[r][2] = _mm512_fmadd_ps(load(r, i + 32, 0xFFFF), x2, a[r][2]);
      a[r][3] = _mm512_fmadd_ps(load(r, i + 48, 0xFFFF), x3, a[r][3]);
    }
  }
  for (int64_t i = main_end; i < cols; i += 16) {
    const __mmask16 m = cols - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (cols - i)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    for (int r = 0; r < R; ++r) a[r][0] = _mm512_fmadd_ps(load(r, i, m), xv, a[r][0]);
  }
  for (int r = 0; r < R; ++r) lanes[r] = _mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3]));
}

// One dot's.
template <bool kBf16>
inline __m512 DotLanes(const uint8_t* row, const float* x, int64_t cols) {
  __m512 lanes;
  DotLanesRows<kBf16, 1>(&row, x, cols, &lanes);
  return lanes;
}

// F32 or BF16 weights with f32 activations, one dot's order (DotLanes):
// four accumulators of 16 lanes, a_j summing the 16-column chunks at
// 64i + 16j in order of i; then the 16-column steps past the last 64 into
// a_0, the last masked; then Hsum16((a0 + a1) + (a2 + a3)). One activation
// row (decode) runs it as is. Several (prompt chunks, batches) run as a
// GEMM in tiles of R weight rows x N activation rows, one a_j at a time
// over the whole row, R x N accumulators in registers: each a_j sees the
// same operations in the same order, so a dot's bits are the same in any
// tile. A pass for a_j reads a quarter of every row, packed: the
// activation rows' quarter stays in L1 while the tiles of a group take
// their turns (a state kept in memory between column blocks cost as much
// as the FMAs: 24 stores and loads per 192).
constexpr int kGemmR = 4, kGemmN = 6;  // 24 accumulators; a weight vector serves six activation rows
// A block: the tiles of weight rows that share an activation group's pass,
// packed once, at most kGemmBlockBytes (they stay in L2 while every
// activation row passes them; 1.1B shape, one thread, 256 rows: F32
// 44 GMAC/s with two tiles, 54 with sixteen).
constexpr int kGemmTiles = 16;
constexpr int64_t kGemmBlockBytes = 1 << 20;

struct GemmState {
  __m512 a[kGemmR * kGemmN][4];  // [dot = r * N + n][j]
};

// Pass j over `chunks` 64-column chunks: weight row r's 16 columns of chunk
// c at w[r] + c * wstep (elements, f32 or BF16: as stored, or
// PackGemmWeights'), the activation rows' at x + (c * N + n) * 16.
template <bool kBf16, int R, int N>
__attribute__((noinline)) void GemmPass(const uint8_t* const* w, int64_t wstep, const float* x, int64_t chunks, int j,
                                        GemmState* st) {
  __m512 acc[R][N];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) acc[r][n] = _mm512_setzero_ps();
  const float* xc = x;
  for (int64_t c = 0; c < chunks; ++c, xc += 16 * N) {
    const int64_t at = c * wstep;
    __m512 wv[R];
    for (int r = 0; r < R; ++r) {
      wv[r] = kBf16 ? LoadBf16x16(reinterpret_cast<const uint16_t*>(w[r]) + at, 0xFFFF)
                    : _mm512_loadu_ps(reinterpret_cast<const float*>(w[r]) + at);
    }
    for (int n = 0; n < N; ++n) {
      const __m512 xv = _mm512_load_ps(xc + 16 * n);
      for (int r = 0; r < R; ++r) acc[r][n] = _mm512_fmadd_ps(wv[r], xv, acc[r][n]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) st->a[r * N + n][j] = acc[r][n];
}

// The 16-column steps [from, cols) past the last 64 into a_0, from the rows as stored.
template <bool kBf16, int R, int N>
void GemmSteps16(const uint8_t* const* w, const float* const* x, int64_t from, int64_t cols, GemmState* st) {
  for (int64_t i = from; i < cols; i += 16) {
    const __mmask16 m = cols - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (cols - i)) - 1);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = kBf16 ? LoadBf16x16(reinterpret_cast<const uint16_t*>(w[r]) + i, m)
                              : _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(w[r]) + i);
      for (int n = 0; n < N; ++n) st->a[r * N + n][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[n] + i), st->a[r * N + n][0]);
    }
  }
}

// 64-byte aligned scratch `slot` of the calling thread.
template <typename T>
T* GemmScratch(int slot, size_t elems) {
  thread_local std::vector<uint8_t> scratch[2];
  scratch[slot].resize(elems * sizeof(T) + 64);
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(scratch[slot].data()) + 63) & ~uintptr_t{63});
}

// Rows [0, m) of `row_at(i)`'s 64-column chunks [0, end64): per a_j, chunk
// by chunk, row by row, its 16 columns at 64c + 16j (a_j's quarter at
// j * end64 / 4 * m): a pass reads one contiguous run. Each row is read
// front to back: by quarters, 256 bytes apart, the pack of a block from
// DRAM took a third longer (F32 prefill 82 -> 96 tok/s).
template <typename T, typename RowAt>
T* PackChunks(T* out, int64_t m, int64_t end64, const RowAt& row_at) {
  const int64_t chunks = end64 / 64;
  for (int64_t i = 0; i < m; ++i) {
    const T* row = row_at(i);
    for (int64_t c = 0; c < chunks; ++c)
      for (int j = 0; j < 4; ++j) std::memcpy(out + ((j * chunks + c) * m + i) * 16, row + 64 * c + 16 * j, 16 * sizeof(T));
  }
  return out + 4 * chunks * m * 16;
}

// The activation rows in groups of kGemmN, group b at b * end64.
const float* PackGemmRows(const ActRows& x, int64_t end64) {
  float* const base = GemmScratch<float>(0, static_cast<size_t>(x.n * end64));
  float* out = base;
  for (int64_t b = 0; b < x.n; b += kGemmN) {
    out = PackChunks(out, std::min<int64_t>(kGemmN, x.n - b), end64,
                     [&](int64_t i) { return reinterpret_cast<const float*>(x.row(b + i)); });
  }
  return base;
}

// Weight rows [g, g1) in tiles of kGemmR, as stored (f32 or BF16); tile t at
// t * end64 * kGemmR elements.
template <bool kBf16>
const uint8_t* PackGemmWeights(const WeightMatrix& w, int64_t g, int64_t g1, int64_t end64) {
  using Elem = std::conditional_t<kBf16, uint16_t, float>;
  Elem* const base = GemmScratch<Elem>(1, static_cast<size_t>(kGemmTiles * kGemmR * end64));
  for (int64_t r = g, t = 0; r < g1; r += kGemmR, ++t) {
    PackChunks(base + t * end64 * kGemmR, std::min<int64_t>(kGemmR, g1 - r), end64,
               [&](int64_t i) { return reinterpret_cast<const Elem*>(w.row(r + i)); });
  }
  return reinterpret_cast<const uint8_t*>(base);
}

// Pass j of one tile: R weight rows from r (packed at pw, or null: as
// stored), N activation rows from b (packed at px); after the last pass,
// the 16-column steps past end64.
template <bool kBf16, int R, int N>
void RunTile(const WeightMatrix& w, int64_t r, const uint8_t* pw, const ActRows& x, int64_t b, const float* px,
             int64_t end64, int j, GemmState* st) {
  constexpr int64_t kElem = kBf16 ? 2 : 4;
  const uint8_t* wr[R];
  const int64_t chunks = end64 / 64;
  if (pw != nullptr) {  // PackChunks' layout: row i of chunk c for a_j at (j * chunks + c) * R * 16 + 16 i
    for (int i = 0; i < R; ++i) wr[i] = pw + ((j * chunks * R) * 16 + 16 * i) * kElem;
    GemmPass<kBf16, R, N>(wr, 16 * R, px + j * chunks * N * 16, chunks, j, st);
  } else {
    for (int i = 0; i < R; ++i) wr[i] = w.row(r + i) + 16 * j * kElem;
    GemmPass<kBf16, R, N>(wr, 64, px + j * chunks * N * 16, chunks, j, st);
  }
  if (j != 3) return;
  const float* xr[N];
  for (int i = 0; i < R; ++i) wr[i] = w.row(r + i);
  for (int i = 0; i < N; ++i) xr[i] = reinterpret_cast<const float*>(x.row(b + i));
  GemmSteps16<kBf16, R, N>(wr, xr, end64, w.cols, st);
}

template <bool kBf16, int R>
void RunTileN(int n, const WeightMatrix& w, int64_t r, const uint8_t* pw, const ActRows& x, int64_t b, const float* px,
              int64_t end64, int j, GemmState* st) {
  switch (n) {
    case 6: RunTile<kBf16, R, 6>(w, r, pw, x, b, px, end64, j, st); break;
    case 5: RunTile<kBf16, R, 5>(w, r, pw, x, b, px, end64, j, st); break;
    case 4: RunTile<kBf16, R, 4>(w, r, pw, x, b, px, end64, j, st); break;
    case 3: RunTile<kBf16, R, 3>(w, r, pw, x, b, px, end64, j, st); break;
    case 2: RunTile<kBf16, R, 2>(w, r, pw, x, b, px, end64, j, st); break;
    default: RunTile<kBf16, R, 1>(w, r, pw, x, b, px, end64, j, st); break;
  }
}

// Activation row k's dots with weight rows [g, g1) from their tiles'
// states, sixteen rows at a time where four whole tiles hold them.
inline void StoreGemmSums(const GemmState* st, int64_t g, int64_t g1, int n, int k, float* out) {
  auto lanes = [&](int64_t r) __attribute__((target("avx512f,avx512bw,avx512vl,fma"))) {
    const __m512* a = st[(r - g) / kGemmR].a[(r - g) % kGemmR * n + k];
    return _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
  };
  int64_t r = g;
  for (; r + 16 <= g1; r += 16) {
    __m512 v[16];
    for (int i = 0; i < 16; ++i) v[i] = lanes(r + i);
    _mm512_storeu_ps(out + r, Hsum16x16(v));
  }
  for (; r < g1; ++r) out[r] = Hsum16(lanes(r));
}

// Weight rows [r0, r1) in blocks of up to kGemmTiles tiles; per group of
// N activation rows, pass by pass, each tile in turn, while the next
// block's rows are fetched.
template <bool kBf16>
void FloatGemm(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  const int64_t end64 = w.cols / 64 * 64;
  const float* packed = PackGemmRows(x, end64);
  const bool pack_w = x.n > 2 * kGemmN;  // packing pays from three groups of activation rows
  const int64_t tiles = std::clamp<int64_t>(kGemmBlockBytes / (kGemmR * std::max<int64_t>(end64, 64) * (kBf16 ? 2 : 4)), 1, kGemmTiles);
  GemmState st[kGemmTiles];
  for (int64_t g = r0; g < r1; g += kGemmR * tiles) {
    const int64_t g1 = std::min<int64_t>(r1, g + kGemmR * tiles);
    const uint8_t* packed_w = pack_w ? PackGemmWeights<kBf16>(w, g, g1, end64) : nullptr;
    const int64_t steps = (x.n + kGemmN - 1) / kGemmN * 4 * ((g1 - g + kGemmR - 1) / kGemmR);
    LinePrefetch next(w.row(g1), pack_w ? w.row(std::min<int64_t>(r1, g1 + kGemmR * tiles)) : w.row(g1), steps);
    for (int64_t b = 0; b < x.n; b += kGemmN) {
      const int n = static_cast<int>(std::min<int64_t>(kGemmN, x.n - b));
      const float* px = packed + b * end64;
      for (int j = 0; j < 4; ++j) {
        for (int64_t r = g, t = 0; r < g1; r += kGemmR, ++t) {
          next.Step();
          const uint8_t* pw = packed_w ? packed_w + t * end64 * kGemmR * (kBf16 ? 2 : 4) : nullptr;
          switch (std::min<int64_t>(kGemmR, g1 - r)) {
            case 4: RunTileN<kBf16, 4>(n, w, r, pw, x, b, px, end64, j, &st[t]); break;
            case 3: RunTileN<kBf16, 3>(n, w, r, pw, x, b, px, end64, j, &st[t]); break;
            case 2: RunTileN<kBf16, 2>(n, w, r, pw, x, b, px, end64, j, &st[t]); break;
            default: RunTileN<kBf16, 1>(n, w, r, pw, x, b, px, end64, j, &st[t]); break;
          }
        }
      }
      for (int k = 0; k < n; ++k) StoreGemmSums(st, g, g1, n, k, out + (b + k) * stride);
    }
  }
}

// Sixteen short dots at once (attention's keys against one query): each
// row's lanes as DotLanes makes them, then their sums (Hsum16x16).
// out[k] = the dot of row k.
template <bool kBf16>
inline void SixteenDots(const WeightMatrix& w, int64_t r, const float* x, float* out) {
  __m512 lanes[16];
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k) lanes[k] = DotLanes<kBf16>(w.row(r + k), x, w.cols);
  _mm512_storeu_ps(out, Hsum16x16(lanes));
}

// Many short rows against one activation row, 16 rows at a time: FloatMat's
// bits for x.n == 1, without a horizontal sum per row.
template <bool kBf16>
void FloatManyRows(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t /*stride*/) {
  const auto* xf = reinterpret_cast<const float*>(x.row(0));
  int64_t r = r0;
  for (; r + 16 <= r1; r += 16) SixteenDots<kBf16>(w, r, xf, out + r);
  for (; r < r1; ++r) out[r] = Hsum16(DotLanes<kBf16>(w.row(r), xf, w.cols));
}

template <bool kBf16>
void FloatMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  if (x.n > 1) return FloatGemm<kBf16>(w, x, r0, r1, out, stride);
  const auto* xf = reinterpret_cast<const float*>(x.row(0));
  // Decode: each RowStreams step's rows together (four streams of
  // addresses). On the Xeon: F32 decode 6.4 -> 7.8 tok/s (two at a time 7.0).
  const RowStreams streams(r0, r1);
  for (int64_t j = 0; j < streams.steps(); ++j) {
    int64_t rows[kRowStreams];
    const int m = streams.Rows(j, rows);
    const uint8_t* wr[kRowStreams];
    for (int q = 0; q < m; ++q) wr[q] = w.row(rows[q]);
    __m512 lanes[kRowStreams];
    if (m == 4) {
      DotLanesRows<kBf16, 4>(wr, xf, w.cols, lanes);
    } else {
      for (int q = 0; q < m; ++q) DotLanesRows<kBf16, 1>(wr + q, xf, w.cols, lanes + q);
    }
    for (int q = 0; q < m; ++q) out[rows[q]] = Hsum16(lanes[q]);
  }
}

}  // namespace
}  // namespace strata::kernels
STRATA_TARGET_END

STRATA_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx512bf16")
namespace strata::kernels {
namespace {

// vdpbf16ps over a tile of R weight rows x N activation rows (both bf16).
// A dot keeps four accumulators: a_j sums the 32-wide chunks at 128i + 32j
// in order of i, and a_0 then takes the tail (masked), reduced as
// ((a0 + a1) + (a2 + a3)). A small tile keeps all four in
// registers and reads its rows once, front to back; a large one runs one j
// at a time (R = N = 4: 8 loads per 16 dot steps). Each dot's sequence of
// operations, and so its bits, are the same for any R and N.
template <int R, int N>
void DpTile(const uint16_t* w, const ActRows& x, int64_t b0, int64_t cols, float* out, int64_t stride) {
  const auto* xp = reinterpret_cast<const uint16_t*>(x.row(b0));
  const int64_t xs = static_cast<int64_t>(x.row_bytes / 2);
  __m512 part[4][R][N];  // [j][weight row][activation row]
  for (int j = 0; j < 4; ++j)
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < N; ++b) part[j][r][b] = _mm512_setzero_ps();
  auto step = [&](int64_t i, __mmask32 m, __m512 (&acc)[R][N]) __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) {
    __m512bh wv[R];
    for (int r = 0; r < R; ++r) wv[r] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + r * cols + i);
    for (int b = 0; b < N; ++b) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, xp + b * xs + i);
      for (int r = 0; r < R; ++r) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], xv, wv[r]);
    }
  };
  const int64_t main_end = cols / 128 * 128;
  if constexpr (R * N <= 4) {
    for (int64_t i = 0; i < main_end; i += 128)
      for (int j = 0; j < 4; ++j) step(i + 32 * j, 0xFFFFFFFFu, part[j]);
  } else {
    for (int j = 0; j < 4; ++j) {
      __m512 acc[R][N];
      for (int r = 0; r < R; ++r)
        for (int b = 0; b < N; ++b) acc[r][b] = _mm512_setzero_ps();
      for (int64_t i = 32 * j; i < main_end; i += 128) step(i, 0xFFFFFFFFu, acc);
      for (int r = 0; r < R; ++r)
        for (int b = 0; b < N; ++b) part[j][r][b] = acc[r][b];
    }
  }
  for (int64_t i = main_end; i < cols; i += 32) {
    step(i, cols - i >= 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1u << (cols - i)) - 1), part[0]);
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
  // Decode: one weight row at a time (a row of 4 KiB at 2048 columns; four
  // RowStreams rows a tile measured no faster: 13.0 vs 13.5 tok/s).
  const int64_t rows_per_tile = x.n == 1 ? 1 : 4;
  for (int64_t r = r0; r < r1; r += rows_per_tile) {
    const int m = static_cast<int>(std::min<int64_t>(rows_per_tile, r1 - r));
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
STRATA_TARGET_END

namespace strata::kernels {

void AddAvx512Paths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out) {
  if (!(cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.fma)) return;
  KernelPath p;
  p.type = type;
  p.level = 2;
  p.name = "avx512";
  p.form = ActForm::kF32;
  p.rows_per_pass = kMaxPassRows;  // the GEMM
  if (type == WeightType::kF32) {
    p.fn = FloatMat<false>;
    p.many_rows = FloatManyRows<false>;
    out->push_back(p);
  } else if (type == WeightType::kBF16) {
    p.fn = FloatMat<true>;
    p.many_rows = FloatManyRows<true>;
    out->push_back(p);
    p.many_rows = nullptr;
    p.rows_per_pass = 64;  // DpBf16Mat's tiles walk every row per weight row
    if (cpu.avx512bf16) {
      p.name = "avx512-bf16";
      p.form = ActForm::kBF16;
      p.fn = DpBf16Mat;
      out->push_back(p);
    }
  }
}

}  // namespace strata::kernels
