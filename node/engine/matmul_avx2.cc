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
#include <type_traits>
#include <vector>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"
#include "storage/dtype.h"

STRATA_TARGET_BEGIN("avx2,fma,f16c")
#include "node/engine/k_scales_simd.h"

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

// The lanes of R weight rows' dots with one activation row before the
// horizontal sum and the scalar tail (which starts at *end), each in the
// order FloatDot describes (R x 4 accumulators). Decode and EightDots make
// their lanes here.
template <bool kBf16, int R>
inline void DotLanesRows(const uint8_t* const* wrows, const float* x, int64_t cols, __m256* lanes, int64_t* end) {
  auto load_w = [&](int r, int64_t i) __attribute__((target("avx2,fma,f16c"))) {
    return kBf16 ? LoadBf16(reinterpret_cast<const uint16_t*>(wrows[r]) + i) : _mm256_loadu_ps(reinterpret_cast<const float*>(wrows[r]) + i);
  };
  __m256 a[R][4];
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= cols; i += 32) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8), x2 = _mm256_loadu_ps(x + i + 16),
                 x3 = _mm256_loadu_ps(x + i + 24);
    for (int r = 0; r < R; ++r) {
      a[r][0] = _mm256_fmadd_ps(load_w(r, i), x0, a[r][0]);
      a[r][1] = _mm256_fmadd_ps(load_w(r, i + 8), x1, a[r][1]);
      a[r][2] = _mm256_fmadd_ps(load_w(r, i + 16), x2, a[r][2]);
      a[r][3] = _mm256_fmadd_ps(load_w(r, i + 24), x3, a[r][3]);
    }
  }
  for (; i + 8 <= cols; i += 8)
    for (int r = 0; r < R; ++r) a[r][0] = _mm256_fmadd_ps(load_w(r, i), _mm256_loadu_ps(x + i), a[r][0]);
  *end = i;
  for (int r = 0; r < R; ++r) lanes[r] = _mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), _mm256_add_ps(a[r][2], a[r][3]));
}

// One row's.
template <bool kBf16>
inline __m256 DotLanes(const uint8_t* wrow, const float* x, int64_t cols, int64_t* end) {
  __m256 lanes;
  DotLanesRows<kBf16, 1>(&wrow, x, cols, &lanes, end);
  return lanes;
}

// A dot's scalar tail [from, cols), after its lanes' sum v.
template <bool kBf16>
inline float DotTail(float v, const uint8_t* wrow, const float* x, int64_t from, int64_t cols) {
  const auto* wf = reinterpret_cast<const float*>(wrow);
  const auto* wh = reinterpret_cast<const uint16_t*>(wrow);
  for (int64_t t = from; t < cols; ++t) v += (kBf16 ? Bf16ToFloat(wh[t]) : wf[t]) * x[t];
  return v;
}

// Hsum of eight vectors at once, bit for bit: Hsum's tree run across the
// eight as a transpose.
inline void Hsum8(const __m256* v, float* out) {  // v[0..7]
  __m256 u[4], z[2];
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {  // halves of 128: [row 2k | row 2k+1]
    u[k] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * k], v[2 * k + 1], 0x20),
                         _mm256_permute2f128_ps(v[2 * k], v[2 * k + 1], 0x31));
  }
#pragma GCC unroll 2
  for (int n = 0; n < 2; ++n) {  // of 64: 128-bit lane j holds [rows 4n + j, 4n + 2 + j] x 2
    z[n] = _mm256_add_ps(_mm256_shuffle_ps(u[2 * n], u[2 * n + 1], 0x44), _mm256_shuffle_ps(u[2 * n], u[2 * n + 1], 0xEE));
  }
  // of 32: lane 0 holds rows 0, 2, 4, 6 and lane 1 rows 1, 3, 5, 7; put back in order.
  const __m256 sums = _mm256_add_ps(_mm256_shuffle_ps(z[0], z[1], 0x88), _mm256_shuffle_ps(z[0], z[1], 0xDD));
  _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(sums, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// F32 or BF16 weights with f32 activations, one dot's order (every tile and
// path below keeps it): four accumulators of eight lanes, a_j summing the
// 8-column chunks at 32i + 8j in order of i; then the 8-column steps past
// the last 32 into a_0; then ((a_0 + a_1) + (a_2 + a_3)) summed across its
// lanes, then the scalar tail. One activation row (decode) runs it as is,
// or two weight rows at a time (DotLanesRows) in FloatMat.
template <bool kBf16>
void FloatDot(const uint8_t* wrow, const ActRows& x, int64_t b, int64_t cols, float* out) {
  const auto* xf = reinterpret_cast<const float*>(x.row(b));
  int64_t end = 0;
  const __m256 lanes = DotLanes<kBf16>(wrow, xf, cols, &end);
  *out = DotTail<kBf16>(Hsum(lanes), wrow, xf, end, cols);
}

// Several activation rows (prompt chunks, batches): a GEMM in tiles of R
// weight rows x N activation rows. A tile runs one a_j at a time over a
// block of columns (R x N accumulators fit the 16 registers, all four per
// dot would not), its state kept between blocks in memory, which is exact:
// each a_j sees the same operations in the same order as in FloatDot.
// A pass of one a_j loads and stores its twelve accumulators and waits for
// their fma chains at its end: over 16 chunks that cost a third of the
// rate (measured on the AMD EPYC: 60-66 GFLOP/s a thread from L1, 89 over
// 64 chunks). So with packed weights a pass spans 2048 columns: one a_j of
// the activation block (8 KiB of the four rows) stays in L1 while every
// tile of the group passes it. Rows as stored (a few activation rows) run
// every a_j of a tile over 512 columns in turn, which reads the tile's
// lines from L1 again rather than from L2.
constexpr int kGemmR = 3, kGemmN = 4;         // 12 accumulators; a weight vector serves four activation rows
constexpr int64_t kGemmBlockCols = 512;       // rows as stored: a block of four activation rows is 8 KiB, in L1
constexpr int64_t kGemmPackedBlockCols = 2048;  // packed: one a_j of it for four activation rows is 8 KiB
constexpr int kGemmTiles = 4;                 // tiles of weight rows that share an activation block

struct GemmState {
  __m256 a[kGemmR * kGemmN][4];  // [dot = r * N + n][j]
};

// `chunks` 32-column chunks of a block: for a_j, weight row r's 8 columns
// of chunk c at w[r] + c * wstep + j * jstep (elements, f32 or BF16) and
// activation row n's at x + ((j * chunks + c) * N + n) * 8 (PackChunks).
// `fresh`: the block is the first, and the accumulators start at zero.
template <bool kBf16, int R, int N>
void GemmChunks(const void* const* w, int64_t wstep, int64_t jstep, const float* x, int64_t chunks, int j0, int j1,
                bool fresh, GemmState* st) {
  for (int j = j0; j < j1; ++j) {
    __m256 acc[R][N];
    for (int r = 0; r < R; ++r)
      for (int n = 0; n < N; ++n) acc[r][n] = fresh ? _mm256_setzero_ps() : st->a[r * N + n][j];
    const float* xc = x + j * chunks * 8 * N;
    for (int64_t c = 0; c < chunks; ++c, xc += 8 * N) {
      const int64_t at = c * wstep + j * jstep;
      __m256 wv[R];
      for (int r = 0; r < R; ++r)
        wv[r] = kBf16 ? LoadBf16(static_cast<const uint16_t*>(w[r]) + at) : _mm256_loadu_ps(static_cast<const float*>(w[r]) + at);
      for (int n = 0; n < N; ++n) {
        const __m256 xv = _mm256_loadu_ps(xc + 8 * n);
        for (int r = 0; r < R; ++r) acc[r][n] = _mm256_fmadd_ps(wv[r], xv, acc[r][n]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int n = 0; n < N; ++n) st->a[r * N + n][j] = acc[r][n];
  }
}

// The 8-column steps [from, to) past the last 32 into a_0, from the rows as stored.
template <bool kBf16, int R, int N>
void GemmSteps8(const uint8_t* const* w, const float* const* x, int64_t from, int64_t to, GemmState* st) {
  for (int64_t i = from; i < to; i += 8) {
    for (int r = 0; r < R; ++r) {
      const __m256 wv = kBf16 ? LoadBf16(reinterpret_cast<const uint16_t*>(w[r]) + i)
                              : _mm256_loadu_ps(reinterpret_cast<const float*>(w[r]) + i);
      for (int n = 0; n < N; ++n) st->a[r * N + n][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[n] + i), st->a[r * N + n][0]);
    }
  }
}

// 64-byte aligned floats of the calling thread's scratch `slot`: a 32-byte
// load that straddles two cache lines costs two.
float* GemmScratch(int slot, size_t floats) {
  thread_local std::vector<float> scratch[2];
  scratch[slot].resize(floats + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch[slot].data()) + 63) & ~uintptr_t{63});
}

// Rows [0, m) of 32-column chunks, packed for GemmChunks: per block of
// `block` columns [k0, k1) (at k0 * m), per a_j, chunk by chunk, row by
// row, its 8 columns at 32c + 8j, so that each pass over a block reads one
// contiguous run, not rows a multiple of 4 KiB apart (which share the L1's
// sets) nor every fourth 32 bytes. load8(row_of(i), col, to) puts row i's
// columns [col, col + 8) at `to` (32-byte aligned). Each row is read front to back,
// one stream of addresses, its pieces written to their four a_j runs: read
// a_j by a_j, the rows were read four times at a 128-byte stride, and the
// pack waited on them (a third of FloatGemm's own time in a F32 prefill).
template <typename RowOf, typename Load8>
float* PackChunks(float* out, int64_t m, int64_t end32, int64_t block, const RowOf& row_of, const Load8& load8) {
  for (int64_t i = 0; i < m; ++i) {
    const uint8_t* const row = row_of(i);
    for (int64_t k0 = 0; k0 < end32; k0 += block) {
      const int64_t chunks = (std::min(end32, k0 + block) - k0) / 32;
      float* const at = out + k0 * m + 8 * i;  // a_j's chunk c at at + (j * chunks + c) * m * 8
      for (int64_t c = 0; c < chunks; ++c)
        for (int j = 0; j < 4; ++j) load8(row, k0 + 32 * c + 8 * j, at + (j * chunks + c) * m * 8);
    }
  }
  return out + m * end32;
}

// The activation rows in groups of kGemmN, group b at b * end32.
const float* PackGemmRows(const ActRows& x, int64_t end32, int64_t block) {
  float* const base = GemmScratch(0, static_cast<size_t>(x.n * end32));
  float* out = base;
  for (int64_t b = 0; b < x.n; b += kGemmN) {
    out = PackChunks(
        out, std::min<int64_t>(kGemmN, x.n - b), end32, block, [&](int64_t i) { return x.row(b + i); },
        [](const uint8_t* row, int64_t col, float* to) {
          _mm256_store_ps(to, _mm256_loadu_ps(reinterpret_cast<const float*>(row) + col));
        });
  }
  return base;
}

// Weight rows [g, g1) in tiles of kGemmR, as f32 (BF16 widened here once,
// exactly, instead of in registers at each of the activation groups that
// pass the tile); tile t at t * end32 * kGemmR floats.
template <bool kBf16>
const float* PackGemmWeights(const WeightMatrix& w, int64_t g, int64_t g1, int64_t end32) {
  float* const base = GemmScratch(1, static_cast<size_t>(kGemmTiles * kGemmR * end32));
  for (int64_t r = g, t = 0; r < g1; r += kGemmR, ++t) {
    PackChunks(
        base + t * end32 * kGemmR, std::min<int64_t>(kGemmR, g1 - r), end32, kGemmPackedBlockCols,
        [&](int64_t i) { return w.row(r + i); },
        [](const uint8_t* row, int64_t col, float* to) {
          if (kBf16) {
            _mm256_store_ps(to, LoadBf16(reinterpret_cast<const uint16_t*>(row) + col));
          } else {
            _mm256_store_ps(to, _mm256_loadu_ps(reinterpret_cast<const float*>(row) + col));
          }
        });
  }
  return base;
}

// One tile of R weight rows from r and the N activation rows from b.
struct GemmTile {
  const WeightMatrix* w;
  int64_t r;
  const float* packed_w;  // PackGemmWeights' tile (f32), or null: read the rows as stored
  const ActRows* x;
  int64_t b;
  const float* packed_x;  // [chunk][N][32] from column 0
};

// One pass of a tile: a_j for j in [j0, j1) over the block [k0, k1), then
// (where end8 > k1: the last block) the 8-column steps into a_0, once a_0
// has had every chunk.
struct GemmPass {
  int64_t k0, k1, end8;
  int j0, j1;
};

template <bool kBf16, int R, int N>
void RunTile(const GemmTile& t, const GemmPass& p, GemmState* st) {
  const void* w[R];
  const int64_t chunks = (p.k1 - p.k0) / 32;
  if (t.packed_w != nullptr) {  // PackChunks' layout: row r of chunk c for a_j at ((j * chunks + c) * R + r) * 8
    for (int i = 0; i < R; ++i) w[i] = t.packed_w + p.k0 * R + 8 * i;
    GemmChunks<false, R, N>(w, 8 * R, chunks * 8 * R, t.packed_x + p.k0 * N, chunks, p.j0, p.j1, p.k0 == 0, st);
  } else {  // the rows as stored
    for (int i = 0; i < R; ++i) w[i] = t.w->row(t.r + i) + p.k0 * (kBf16 ? 2 : 4);
    GemmChunks<kBf16, R, N>(w, 32, 8, t.packed_x + p.k0 * N, chunks, p.j0, p.j1, p.k0 == 0, st);
  }
  if (p.end8 > p.k1 && p.j0 == 0) {
    const uint8_t* wr[R];
    const float* xr[N];
    for (int i = 0; i < R; ++i) wr[i] = t.w->row(t.r + i);
    for (int i = 0; i < N; ++i) xr[i] = reinterpret_cast<const float*>(t.x->row(t.b + i));
    GemmSteps8<kBf16, R, N>(wr, xr, p.k1, p.end8, st);
  }
}

template <bool kBf16, int R>
void RunTileN(int n, const GemmTile& t, const GemmPass& p, GemmState* st) {
  switch (n) {
    case 4: RunTile<kBf16, R, 4>(t, p, st); break;
    case 3: RunTile<kBf16, R, 3>(t, p, st); break;
    case 2: RunTile<kBf16, R, 2>(t, p, st); break;
    default: RunTile<kBf16, R, 1>(t, p, st); break;
  }
}

// The dots of weight rows [g, g1) with activation rows [b, b + n): their
// four accumulators summed as FloatDot sums them, eight dots' lanes at a
// time, then each dot's scalar tail. The dots go in order of activation row,
// then weight row, so that each activation row's sums are one run of `out`
// (one copy, not a scattered store a dot: those were a tenth of the finish).
template <bool kBf16>
void FinishGemm(const WeightMatrix& w, int64_t g, int64_t g1, const ActRows& x, int64_t b, int n, const GemmState* st,
                float* out, int64_t stride) {
  constexpr int kDots = kGemmTiles * kGemmR * kGemmN;
  const int rows = static_cast<int>(g1 - g);
  __m256 lanes[kDots + 8];
  for (int k = 0; k < n; ++k) {
    for (int q = 0; q < rows; ++q) {  // tile q / R's row q % R
      const __m256* a = st[q / kGemmR].a[(q % kGemmR) * n + k];
      lanes[k * rows + q] = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    }
  }
  const int dots = n * rows;
  for (int d = dots; d < dots + 8; ++d) lanes[d] = _mm256_setzero_ps();  // the last eight's slack
  float sums[kDots + 8];
  for (int d = 0; d < dots; d += 8) Hsum8(lanes + d, sums + d);
  const int64_t end8 = w.cols / 8 * 8;
  for (int k = 0; k < n; ++k) {
    float* const to = out + (b + k) * stride + g;
    const float* const from = sums + k * rows;
    if (end8 == w.cols) {
      std::memcpy(to, from, sizeof(float) * rows);
      continue;
    }
    const auto* xf = reinterpret_cast<const float*>(x.row(b + k));
    for (int q = 0; q < rows; ++q) to[q] = DotTail<kBf16>(from[q], w.row(g + q), xf, end8, w.cols);
  }
}

// Weight rows [r0, r1) in groups of kGemmTiles tiles (packed once, they stay
// in L2 while every activation row passes them); per group of N activation
// rows, column block by block: packed, one a_j at a time across the tiles;
// as stored, each tile in turn.
template <bool kBf16>
void FloatGemm(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  const int64_t cols = w.cols, end32 = cols / 32 * 32, end8 = cols / 8 * 8;
  // Packing the weights pays for itself from three groups of activation rows
  // (measured: at eight rows, widening BF16 once cost a third of its rate).
  const bool pack_w = x.n > 2 * kGemmN;
  const int64_t block = pack_w ? kGemmPackedBlockCols : kGemmBlockCols;
  const float* packed_x = PackGemmRows(x, end32, block);
  const int per_pass = pack_w ? 1 : 4;  // a_j per pass of a tile over a block
  GemmState st[kGemmTiles];
  for (int64_t g = r0; g < r1; g += kGemmR * kGemmTiles) {
    const int64_t g1 = std::min<int64_t>(r1, g + kGemmR * kGemmTiles);
    const float* packed_w = pack_w ? PackGemmWeights<kBf16>(w, g, g1, end32) : nullptr;
    const int64_t per_group = ((end32 + block - 1) / block) * (4 / per_pass) * ((g1 - g + kGemmR - 1) / kGemmR);
    // The last 256 KiB of packed activation rows: the group's next weights
    // stay in L2 behind them (128 rows of 2048 are 1 MiB).
    const int64_t within = std::max<int64_t>(1, (256 << 10) / (kGemmN * std::max<int64_t>(end32, 32) * 4)) * per_group;
    LinePrefetch next(w.row(g1), pack_w ? w.row(std::min<int64_t>(r1, g1 + kGemmR * kGemmTiles)) : w.row(g1),
                      (x.n + kGemmN - 1) / kGemmN * per_group, within);
    for (int64_t b = 0; b < x.n; b += kGemmN) {
      const int n = static_cast<int>(std::min<int64_t>(kGemmN, x.n - b));
      // FinishGemm's stores go to n rows of `out` far apart; owned by the
      // time they come, they do not wait (they were 2% of a BF16 prefill).
      for (int k = 0; k < n; ++k) {
        __builtin_prefetch(out + (b + k) * stride + g, 1, 3);
        __builtin_prefetch(out + (b + k) * stride + g1 - 1, 1, 3);
      }
      int64_t k0 = 0;
      do {
        const int64_t k1 = std::min(end32, k0 + block);
        const int64_t steps8_to = k1 == end32 ? end8 : k1;  // the 8-column steps come after the last block
        for (int j = 0; j < 4; j += per_pass) {
          const GemmPass pass{k0, k1, steps8_to, j, j + per_pass};
          for (int64_t r = g, t = 0; r < g1; r += kGemmR, ++t) {
            next.Step();
            const GemmTile tile{&w, r, packed_w ? packed_w + t * end32 * kGemmR : nullptr, &x, b, packed_x + b * end32};
            switch (std::min<int64_t>(kGemmR, g1 - r)) {
              case 3: RunTileN<kBf16, 3>(n, tile, pass, &st[t]); break;
              case 2: RunTileN<kBf16, 2>(n, tile, pass, &st[t]); break;
              default: RunTileN<kBf16, 1>(n, tile, pass, &st[t]); break;
            }
          }
        }
        k0 = k1;
      } while (k0 < end32);
      FinishGemm<kBf16>(w, g, g1, x, b, n, st, out, stride);
    }
  }
}

template <bool kBf16>
void FloatMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  if (x.n >= 2) return FloatGemm<kBf16>(w, x, r0, r1, out, stride);
  // Decode: each RowStreams step's rows two at a time (four streams of
  // addresses; four rows' 16 accumulators would not fit the registers).
  // --kernels avx2 on the Xeon: BF16 decode 9.5 -> 12 tok/s, F32 5.5 -> 6.6.
  const auto* xf = reinterpret_cast<const float*>(x.row(0));
  const RowStreams streams(r0, r1);
  for (int64_t j = 0; j < streams.steps(); ++j) {
    int64_t rows[kRowStreams];
    const int m = streams.Rows(j, rows);
    int q = 0;
    for (; q + 2 <= m; q += 2) {
      const uint8_t* pair[2] = {w.row(rows[q]), w.row(rows[q + 1])};
      __m256 lanes[2];
      int64_t end = 0;
      DotLanesRows<kBf16, 2>(pair, xf, w.cols, lanes, &end);
      for (int k = 0; k < 2; ++k) out[rows[q + k]] = DotTail<kBf16>(Hsum(lanes[k]), pair[k], xf, end, w.cols);
    }
    if (q < m) FloatDot<kBf16>(w.row(rows[q]), x, 0, w.cols, out + rows[q]);
  }
}

// Eight short dots at once (attention's keys against one query): each
// row's lanes as DotLanes makes them, Hsum's tree run across the eight as a
// transpose, then each row's scalar tail: FloatDot's bits for every row.
template <bool kBf16>
inline void EightDots(const WeightMatrix& w, int64_t r, const float* x, float* out) {
  __m256 lanes[8];
  int64_t end = 0;
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) lanes[k] = DotLanes<kBf16>(w.row(r + k), x, w.cols, &end);
  Hsum8(lanes, out);
  for (int k = 0; k < 8; ++k) out[k] = DotTail<kBf16>(out[k], w.row(r + k), x, end, w.cols);
}

// Many short rows against one activation row, eight rows at a time:
// FloatDot's bits, without a horizontal sum per row.
template <bool kBf16>
void FloatManyRows(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t /*stride*/) {
  const auto* xf = reinterpret_cast<const float*>(x.row(0));
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) EightDots<kBf16>(w, r, xf, out + r);
  for (; r < r1; ++r) FloatDot<kBf16>(w.row(r), x, 0, w.cols, out + r);
}

// A quantized Tile<R, N> over a thread's weight rows [r0, r1). A tile
// keeps its dots' accumulators in a State across units of columns (a pair
// of 32-element blocks, or a 256-element super-block): Accumulate over
// units [u0, u1) in order, then Finish writes the dots. Any split of the
// units gives the bits of one pass over all of them.
// Decode (one activation row): the rows of each RowStreams step in one
// tile, four streams of addresses. Batches: one weight row at a time
// against up to four activation rows, in groups of weight rows (below).
constexpr int64_t kQuantGroupBytes = 64 * 1024;
// The most bytes of four activation rows' column block a batch reads
// while it stays in L1 (32 KiB), beside the weight rows that stream past.
constexpr int64_t kQuantActBlockBytes = 24 * 1024;
// Rows that long are read in column blocks by a bigger group (each four
// activation rows' block from L3 serves every row of it; measured on the
// AMD EPYC, Q8_0 [2048, 5632] at 128 rows: 64 KiB 50-60 GMAC/s, 256 KiB 61-62).
constexpr int64_t kQuantBlockedGroupBytes = 256 * 1024;
constexpr int64_t kMaxGroupRows = 256;  // a group's states on the stack (at most 72 KiB)

template <class T>
void WholeRows(const WeightMatrix& w, const int64_t* rows, const ActRows& x, int64_t b0, float* out, int64_t stride) {
  typename T::State s{};
  T::Accumulate(w, rows, nullptr, x, b0, 0, T::Units(w), &s);
  T::Finish(s, rows, b0, out, stride);
}

// Weight rows [g, g1) against activation rows [b0, b0 + N), `block` units
// of columns at a time (all of them where four rows fit L1), so that the
// rows' block stays in L1 while every weight row of the group passes it.
// `scales`: null, or the group's T::GroupScales, `per_row` floats a row.
template <class T>
void GroupRows(const WeightMatrix& w, int64_t g, int64_t g1, const ActRows& x, int64_t b0, int64_t block,
               const float* scales, int64_t per_row, LinePrefetch* next, float* out, int64_t stride) {
  const int64_t units = T::Units(w);
  typename T::State st[kMaxGroupRows];  // [g1 - g]
  for (int64_t r = g; r < g1; ++r) st[r - g] = typename T::State{};
  for (int64_t u0 = 0; u0 < units; u0 += block) {
    const int64_t u1 = std::min(units, u0 + block);
    for (int64_t r = g; r < g1; ++r) {
      next->Step();
      const float* row_scales = scales != nullptr ? scales + (r - g) * per_row : nullptr;
      T::Accumulate(w, &r, row_scales != nullptr ? &row_scales : nullptr, x, b0, u0, u1, &st[r - g]);
    }
  }
  for (int64_t r = g; r < g1; ++r) T::Finish(st[r - g], &r, b0, out, stride);
}

template <template <int, int> class Tile>
void TiledMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  if (x.n == 1) {
    const RowStreams streams(r0, r1);
    for (int64_t j = 0; j < streams.steps(); ++j) {
      int64_t rows[kRowStreams] = {};  // Rows fills at least one (GCC cannot tell)
      switch (streams.Rows(j, rows)) {
        case 4: WholeRows<Tile<4, 1>>(w, rows, x, 0, out, stride); break;
        case 3: WholeRows<Tile<3, 1>>(w, rows, x, 0, out, stride); break;
        case 2: WholeRows<Tile<2, 1>>(w, rows, x, 0, out, stride); break;
        default: WholeRows<Tile<1, 1>>(w, rows, x, 0, out, stride); break;
      }
    }
    return;
  }
  // Batches: a group of weight rows (kQuantGroupBytes, in L2) against each
  // four activation rows in turn, which stay in L1 while the group passes
  // them; the next group's rows fetched meanwhile. Four Q8_K rows of 2048
  // columns are 9 KiB: one weight row against every activation row in turn
  // would bring them all from L2 again for each weight row (measured on the
  // AMD EPYC, 2 threads, [5632, 2048], 32 to 128 rows, best of nine: Q4_K
  // 90 -> 95 GMAC/s, Q6_K 86 -> 94, Q8_0 63 -> 65). Longer rows go in
  // even column blocks of at most kQuantActBlockBytes for the four: four
  // Q8_0 rows of 5632 columns are 66 KiB.
  const int64_t units = Tile<1, 4>::Units(w);
  const int64_t most = std::clamp<int64_t>(kQuantActBlockBytes / 4 / std::max<int64_t>(1, x.row_bytes / units), 1, units);
  const int64_t blocks = (units + most - 1) / most;
  const int64_t block = (units + blocks - 1) / blocks;  // even blocks
  const int64_t group = std::clamp<int64_t>((blocks > 1 ? kQuantBlockedGroupBytes : kQuantGroupBytes) / static_cast<int64_t>(w.row_bytes()),
                                            1, std::min(r1 - r0, kMaxGroupRows));
  int64_t per_row = 0;
  thread_local std::vector<float> group_scales;
  for (int64_t g = r0; g < r1; g += group) {
    const int64_t g1 = std::min(r1, g + group);
    LinePrefetch next(w.row(g1), w.row(std::min(r1, g1 + group)), (x.n + 3) / 4 * (g1 - g) * blocks);
    const float* scales = nullptr;
    if constexpr (Tile<1, 1>::kGroupScales) {
      per_row = Tile<1, 1>::ScalesPerRow(w);
      group_scales.resize(static_cast<size_t>((g1 - g) * per_row));
      Tile<1, 1>::GroupScales(w, g, g1, group_scales.data());
      scales = group_scales.data();
    }
    for (int64_t b0 = 0; b0 < x.n; b0 += 4) {
      switch (std::min<int64_t>(4, x.n - b0)) {
        case 4: GroupRows<Tile<1, 4>>(w, g, g1, x, b0, block, scales, per_row, &next, out, stride); break;
        case 3: GroupRows<Tile<1, 3>>(w, g, g1, x, b0, block, scales, per_row, &next, out, stride); break;
        case 2: GroupRows<Tile<1, 2>>(w, g, g1, x, b0, block, scales, per_row, &next, out, stride); break;
        default: GroupRows<Tile<1, 1>>(w, g, g1, x, b0, block, scales, per_row, &next, out, stride); break;
      }
    }
  }
}

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
      p.rows_per_pass = kMaxPassRows;
      p.fn = bf16 ? FloatMat<true> : FloatMat<false>;
      p.many_rows = bf16 ? FloatManyRows<true> : FloatManyRows<false>;
      out->push_back(p);
      return;
    }
    default: break;
  }
  p.form = avx2::QuantForm(type);
  p.rows_per_pass = kMaxPassRows;  // TiledMat's groups of weight rows pass every activation row
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
