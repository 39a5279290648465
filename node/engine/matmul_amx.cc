// The AMX path for BF16 weights ("amx-bf16"): TDPBF16PS on tiles, for
// decode and prompt chunks alike.
//
// A tile op's dot is not any sequence of vdpbf16ps steps (measured: its
// bits differ from each order tried), so every activation row count runs
// here, one row too: a dot is the same chain of tile ops over 32-column
// chunks whether its row sits in a tile of 1 or 16 activation rows, and
// its bits are the same for any batch and any split of the weight rows.
//
// The weights are the A tiles as stored: 16 rows x 32 bf16 with the row
// stride, no packing. The activation rows come packed as B tiles
// (ActForm::kBF16Tiles, packed once a call in PrepareActivations): for
// each group of up to 16 rows and each 32-column chunk, 16 rows of
// column pairs [k2][row][2], zero past the last column. The last chunk of
// a row whose width is not a multiple of 32 goes through a zero-padded
// copy of the A tile, so no load reads past a row.
//
// Tiles: C[a][b] in tmm0-3 (weight-row tile a, activation tile b), A in
// tmm4-5, B in tmm6-7: 32 weight rows by 32 activation rows a step.
//
// The Q4_K and Q6_K paths ("amx-int8"): integer sums are exact, so a
// tile's dot of one sub-block (Q4_K: TDPBUSD of 16 weight rows' nibbles as
// u8, 32 columns; Q6_K: TDPBSSD of q - 32 as s8, 16 columns; against 16
// activation rows' Q8_K bytes) is the very sum the AVX2 paths make in
// lanes. Scaled by sc_j in int32 and summed over the sub-blocks, then one
// fma per super-block in f32, as Q45KTile and Q6KTile do: the bits of the
// avx2 paths, which the avx512-vnni path shares and which runs up to
// kVnniMaxRows activation rows here.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"
#include "storage/quant_blocks.h"

namespace strata::kernels {
namespace {

// Linux hands out the 8 KiB AMX register state only on request, once per process.
bool AmxPermitted() {
  static const bool permitted = [] {
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return ::syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return permitted;
}

// Rows of activation tile g of n rows (16 a tile, the last one the rest).
int TileWidth(int64_t n, int64_t g) { return static_cast<int>(std::min<int64_t>(16, n - 16 * g)); }

// The K-quant tiles take more than this many activation rows (Q6_K more
// than kQ6VnniMaxRows); fewer go through avx512-vnni, whose bits they are,
// and their rows are not packed as tiles. Measured on the Xeon, a [5632,
// 2048] matrix, 8 rows, 2 threads: Q4_K 0.76-0.85 ms in tiles, 1.11 in
// avx512-vnni; Q6_K 1.2-1.4 in tiles, 1.0 in avx512-vnni. (The activation
// form does not know its weight type: Q6_K's 5-8 rows are packed as tiles
// they do not read, n x cols bytes, small beside the matrix.)
constexpr int64_t kVnniMaxRows = 4;
constexpr int64_t kQ6VnniMaxRows = 8;

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The shape of one 32 x 32 step: weight rows in tiles a = 0, 1 and
// activation rows in tiles b = 0, 1 (0: the tile is not used).
struct StepShape {
  int m[2] = {0, 0};
  int n[2] = {0, 0};
  bool operator==(const StepShape& o) const { return m[0] == o.m[0] && m[1] == o.m[1] && n[0] == o.n[0] && n[1] == o.n[1]; }
};

TileConfig ConfigFor(const StepShape& s) {
  TileConfig c;
  for (int a = 0; a < 2; ++a) {
    const int m = std::max(s.m[a], 1);
    c.rows[4 + a] = static_cast<uint8_t>(m);
    c.colsb[4 + a] = 64;
    for (int b = 0; b < 2; ++b) {
      c.rows[2 * a + b] = static_cast<uint8_t>(m);
      c.colsb[2 * a + b] = static_cast<uint16_t>(4 * std::max(s.n[b], 1));
    }
  }
  for (int b = 0; b < 2; ++b) {
    c.rows[6 + b] = 16;
    c.colsb[6 + b] = static_cast<uint16_t>(4 * std::max(s.n[b], 1));
  }
  return c;
}

// Where ActForm::kQ8_KTiles keeps its parts: the Q8_K rows, then per group
// g of up to 16 rows, super-block i and sub-block j a B tile [k4 (8)][row][4],
// then per (g, i) the rows' d_x and bsum_2j + bsum_2j+1, as f32 ([16], [8][16]).
struct Q8KTilesLayout {
  int64_t n, nb, tiles_at, side_at;
  Q8KTilesLayout(int64_t rows, int64_t cols) : n(rows), nb(cols / kQKK) {
    tiles_at = (n * nb * static_cast<int64_t>(sizeof(ActQ8_K)) + 63) / 64 * 64;
    side_at = tiles_at + n * nb * kQKK;
  }
  bool HasTiles() const { return n > kVnniMaxRows; }
  int Width(int64_t g) const { return TileWidth(n, g); }
  int64_t Tile(int64_t g, int64_t i, int j) const { return tiles_at + g * 16 * nb * kQKK + (i * 8 + j) * 32 * Width(g); }
  int64_t Side(int64_t g, int64_t i) const { return side_at + (g * nb + i) * kSideFloats * 4; }
  int64_t Bytes() const {
    return HasTiles() ? side_at + (n + 15) / 16 * nb * kSideFloats * 4 : n * nb * static_cast<int64_t>(sizeof(ActQ8_K));
  }
  static constexpr int64_t kSideFloats = 16 + 8 * 16;
};


}  // namespace
}  // namespace strata::kernels

STRATA_TARGET_BEGIN("amx-tile,amx-bf16,avx512f")
namespace strata::kernels {
namespace {

// Where B tile (group g, chunk c) starts in the packed activations, and its stride.
struct PackedActs {
  const uint8_t* data;
  int64_t n;
  int64_t chunks;
  const uint8_t* Tile(int64_t g, int64_t c) const {
    return data + static_cast<size_t>(g) * 16 * chunks * 64 + static_cast<size_t>(c) * 64 * Width(g);
  }
  int Width(int64_t g) const { return TileWidth(n, g); }
};

// The C tiles a step uses, zeroed / stored. Tile numbers are immediates.
inline void ZeroC(const StepShape& s) {
  _tile_zero(0);
  if (s.n[1]) _tile_zero(1);
  if (s.m[1]) _tile_zero(2);
  if (s.m[1] && s.n[1]) _tile_zero(3);
}

// One 32-column chunk: A tiles from `a` (stride a_stride), B tiles from the packed activations.
inline void Chunk(const StepShape& s, const uint8_t* a, int64_t a_stride, const uint8_t* b0, const uint8_t* b1) {
  _tile_loadd(4, a, a_stride);
  _tile_loadd(6, b0, 4 * s.n[0]);
  _tile_dpbf16ps(0, 4, 6);
  if (s.n[1]) {
    _tile_loadd(7, b1, 4 * s.n[1]);
    _tile_dpbf16ps(1, 4, 7);
  }
  if (s.m[1]) {
    _tile_loadd(5, a + 16 * a_stride, a_stride);
    _tile_dpbf16ps(2, 5, 6);
    if (s.n[1]) _tile_dpbf16ps(3, 5, 7);
  }
}

// C[a][b] into out[(b0 + 16 b + k) * stride + r + 16 a + i] (C is [weight row][activation row]).
inline void StoreC(const StepShape& s, int64_t r, int64_t b0, float* out, int64_t stride) {
  alignas(64) float c[4][16 * 16];
  _tile_stored(0, c[0], 64);
  if (s.n[1]) _tile_stored(1, c[1], 64);
  if (s.m[1]) _tile_stored(2, c[2], 64);
  if (s.m[1] && s.n[1]) _tile_stored(3, c[3], 64);
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      for (int i = 0; i < s.m[a]; ++i) {
        for (int k = 0; k < s.n[b]; ++k) out[(b0 + 16 * b + k) * stride + r + 16 * a + i] = c[2 * a + b][i * 16 + k];
      }
    }
  }
}

void AmxBf16Mat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  const int64_t cols = w.cols, full = cols / 32, chunks = (cols + 31) / 32;
  const int64_t row_bytes = cols * 2;
  const PackedActs acts{x.data, x.n, chunks};
  const int64_t groups = (x.n + 15) / 16;
  alignas(64) uint16_t tail[32 * 32];  // the last chunk of 32 weight rows, zero-padded
  StepShape loaded;
  bool configured = false;
  for (int64_t r = r0; r < r1; r += 32) {
    StepShape s;
    s.m[0] = static_cast<int>(std::min<int64_t>(16, r1 - r));
    s.m[1] = static_cast<int>(std::clamp<int64_t>(r1 - r - 16, 0, 16));
    const uint8_t* wr = w.row(r);
    if (full < chunks) {
      std::memset(tail, 0, sizeof tail);
      for (int i = 0; i < s.m[0] + s.m[1]; ++i) std::memcpy(tail + 32 * i, wr + i * row_bytes + full * 64, static_cast<size_t>(cols - 32 * full) * 2);
    }
    for (int64_t g = 0; g < groups; g += 2) {
      s.n[0] = acts.Width(g);
      s.n[1] = g + 1 < groups ? acts.Width(g + 1) : 0;
      if (!configured || !(s == loaded)) {
        const TileConfig config = ConfigFor(s);
        _tile_loadconfig(&config);
        loaded = s, configured = true;
      }
      ZeroC(s);
      for (int64_t c = 0; c < full; ++c) {
        Chunk(s, wr + 64 * c, row_bytes, acts.Tile(g, c), s.n[1] ? acts.Tile(g + 1, c) : nullptr);
      }
      if (full < chunks) {
        Chunk(s, reinterpret_cast<const uint8_t*>(tail), 64, acts.Tile(g, full), s.n[1] ? acts.Tile(g + 1, full) : nullptr);
      }
      StoreC(s, r, 16 * g, out, stride);
    }
  }
  if (configured) _tile_release();
}

}  // namespace
}  // namespace strata::kernels
STRATA_TARGET_END

STRATA_TARGET_BEGIN("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx2,f16c")
namespace strata::kernels {
namespace {

// isum[m] (int32 over the activation rows) += sc[m] * the dot of weight row
// m's sub-block (A: rows x k bytes, u8 or s8) with the rows' (B tile, k / 4 x width x 4).
template <bool kSigned>
inline void SubBlockSums(const void* a, int k, const uint8_t* b, int width, const int32_t* sc, int rows, __m512i* isum) {
  alignas(64) int32_t c[16][16];
  _tile_zero(0);
  _tile_loadd(1, a, k);
  _tile_loadd(2, b, 4 * width);
  if constexpr (kSigned) _tile_dpbssd(0, 1, 2);
  else _tile_dpbusd(0, 1, 2);
  _tile_stored(0, c, 64);
  for (int m = 0; m < rows; ++m) {
    isum[m] = _mm512_add_epi32(isum[m], _mm512_mullo_epi32(_mm512_load_si512(c[m]), _mm512_set1_epi32(sc[m])));
  }
}

// 16 weight rows' super-block, unpacked: A tiles of nibbles [j][row][32], scales and mins.
struct Q4KRows {
  alignas(64) uint8_t q[8][16][32];
  int32_t sc[8][16];
  float mn[8][16];
  float d[16], dmin[16];
};

void UnpackQ4K(const WeightMatrix& w, int64_t r, int rows, int64_t i, Q4KRows* u) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int m = 0; m < rows; ++m) {
    const auto* b = reinterpret_cast<const BlockQ4_K*>(w.row(r + m)) + i;
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * c));
      _mm256_store_si256(reinterpret_cast<__m256i*>(u->q[2 * c][m]), _mm256_and_si256(packed, low4));
      _mm256_store_si256(reinterpret_cast<__m256i*>(u->q[2 * c + 1][m]), _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4));
    }
    uint32_t sm[4];
    Q4KScalesAndMins(b->scales, sm);
    const auto* bytes = reinterpret_cast<const uint8_t*>(sm);
    for (int j = 0; j < 8; ++j) {
      u->sc[j][m] = bytes[j];
      u->mn[j][m] = bytes[8 + j];
    }
    u->d[m] = _cvtsh_ss(b->d);
    u->dmin[m] = _cvtsh_ss(b->dmin);
  }
}

// One group's super-block against 16 weight rows: acc[m] and accm[m] (f32 over the group's rows) take its sums.
void Q4KSuperBlock(const Q4KRows& u, int rows, const uint8_t* tiles, int width, const float* side, float (*acc)[16],
                   float (*accm)[16]) {
  __m512i isum[16];
  for (int m = 0; m < rows; ++m) isum[m] = _mm512_setzero_si512();
  for (int j = 0; j < 8; ++j) SubBlockSums<false>(u.q[j], 32, tiles + j * 32 * width, width, u.sc[j], rows, isum);
  const __m512 dx = _mm512_loadu_ps(side);
  for (int m = 0; m < rows; ++m) {
    const __m512 a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(_mm512_set1_ps(u.d[m]), dx), _mm512_loadu_ps(acc[m]));
    _mm512_storeu_ps(acc[m], a);
    // sum_j m_j * bsum pair: integers below 2^24 all the way, so exact in f32.
    __m512 ms = _mm512_mul_ps(_mm512_set1_ps(u.mn[0][m]), _mm512_loadu_ps(side + 16));
    for (int j = 1; j < 8; ++j) ms = _mm512_fmadd_ps(_mm512_set1_ps(u.mn[j][m]), _mm512_loadu_ps(side + 16 + 16 * j), ms);
    _mm512_storeu_ps(accm[m], _mm512_fmadd_ps(ms, _mm512_mul_ps(_mm512_set1_ps(u.dmin[m]), dx), _mm512_loadu_ps(accm[m])));
  }
}

// 16 weight rows' Q6_K super-block, unpacked: A tiles of q - 32 [sub-block][row][16] (s8), scales.
struct Q6KRows {
  alignas(64) int8_t q[16][16][16];
  int32_t sc[16][16];
  float d[16];
};

void UnpackQ6K(const WeightMatrix& w, int64_t r, int rows, int64_t i, Q6KRows* u) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
  for (int m = 0; m < rows; ++m) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(w.row(r + m)) + i;
    for (int n = 0; n < 2; ++n) {  // elements [128n, 128n + 128): q[p] holds sub-blocks 8n + 2p and 8n + 2p + 1
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * n));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * n + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh + 32 * n));
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, two), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two), 4))};
      for (int p = 0; p < 4; ++p) {
        const __m256i v = _mm256_sub_epi8(q[p], off);
        _mm_store_si128(reinterpret_cast<__m128i*>(u->q[8 * n + 2 * p][m]), _mm256_castsi256_si128(v));
        _mm_store_si128(reinterpret_cast<__m128i*>(u->q[8 * n + 2 * p + 1][m]), _mm256_extracti128_si256(v, 1));
      }
    }
    for (int j = 0; j < 16; ++j) u->sc[j][m] = b->scales[j];
    u->d[m] = _cvtsh_ss(b->d);
  }
}

// One group's Q6_K super-block against 16 weight rows: acc[m] (f32 over the group's rows) takes its sums.
void Q6KSuperBlock(const Q6KRows& u, int rows, const uint8_t* tiles, int width, const float* side, float (*acc)[16]) {
  __m512i isum[16];
  for (int m = 0; m < rows; ++m) isum[m] = _mm512_setzero_si512();
  for (int j = 0; j < 16; ++j) {  // sub-block j: the j % 2 half of the 32-element tile j / 2
    SubBlockSums<true>(u.q[j], 16, tiles + (j / 2) * 32 * width + (j % 2) * 16 * width, width, u.sc[j], rows, isum);
  }
  const __m512 dx = _mm512_loadu_ps(side);
  for (int m = 0; m < rows; ++m) {
    _mm512_storeu_ps(acc[m], _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(_mm512_set1_ps(u.d[m]), dx),
                                             _mm512_loadu_ps(acc[m])));
  }
}

// Q4_K or Q6_K weights (kQ6 false, true) against ActForm::kQ8_KTiles rows.
template <bool kQ6>
void AmxKMat(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out, int64_t stride) {
  const Q8KTilesLayout at(x.n, w.cols);
  if (x.n <= (kQ6 ? kQ6VnniMaxRows : kVnniMaxRows)) {  // decode, small batches
    ActRows rows = x;
    rows.form = ActForm::kQ8_K;
    return Avx512KQuantMat(kQ6 ? WeightType::kQ6_K : WeightType::kQ4_K)(w, rows, r0, r1, out, stride);
  }
  constexpr int64_t kGroups = 4;  // 64 activation rows a pass: their f32 state fits L1
  alignas(64) float acc[kGroups][16][16], accm[kGroups][16][16];
  std::conditional_t<kQ6, Q6KRows, Q4KRows> u;
  int loaded_rows = 0, loaded_width = 0;
  for (int64_t g0 = 0; g0 * 16 < x.n; g0 += kGroups) {
    const int64_t g1 = std::min<int64_t>(g0 + kGroups, (x.n + 15) / 16);
    for (int64_t r = r0; r < r1; r += 16) {
      const int rows = static_cast<int>(std::min<int64_t>(16, r1 - r));
      std::memset(acc, 0, sizeof acc);
      std::memset(accm, 0, sizeof accm);
      for (int64_t i = 0; i < at.nb; ++i) {
        if constexpr (kQ6) UnpackQ6K(w, r, rows, i, &u);
        else UnpackQ4K(w, r, rows, i, &u);
        for (int64_t g = g0; g < g1; ++g) {
          const int width = at.Width(g);
          if (rows != loaded_rows || width != loaded_width) {  // C [rows][width], A [rows][K], B [K / 4][width x 4]
            TileConfig c;
            c.rows[0] = c.rows[1] = static_cast<uint8_t>(rows);
            c.colsb[0] = c.colsb[2] = static_cast<uint16_t>(4 * width);
            c.colsb[1] = kQ6 ? 16 : 32;
            c.rows[2] = kQ6 ? 4 : 8;
            _tile_loadconfig(&c);
            loaded_rows = rows, loaded_width = width;
          }
          const uint8_t* tiles = x.data + at.Tile(g, i, 0);
          const auto* side = reinterpret_cast<const float*>(x.data + at.Side(g, i));
          if constexpr (kQ6) Q6KSuperBlock(u, rows, tiles, width, side, acc[g - g0]);
          else Q4KSuperBlock(u, rows, tiles, width, side, acc[g - g0], accm[g - g0]);
        }
      }
      for (int64_t g = g0; g < g1; ++g) {
        for (int m = 0; m < rows; ++m) {
          for (int k = 0; k < at.Width(g); ++k) out[(16 * g + k) * stride + r + m] = acc[g - g0][m][k] - accm[g - g0][m][k];
        }
      }
    }
  }
  if (loaded_rows != 0) _tile_release();
}

}  // namespace
}  // namespace strata::kernels
STRATA_TARGET_END

namespace strata::kernels {

void PackBf16Tiles(const uint16_t* x, int64_t n, int64_t cols, uint8_t* out) {
  // [group][chunk][k2 (16)][row in group][2 bf16]
  const int64_t chunks = (cols + 31) / 32;
  std::memset(out, 0, static_cast<size_t>(n * chunks * 64));
  auto* o = reinterpret_cast<uint16_t*>(out);
  for (int64_t b = 0; b < n; ++b) {
    const int64_t g = b / 16, width = TileWidth(n, g), k = b % 16;
    uint16_t* group = o + g * 16 * chunks * 32;
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t c = i / 32, k2 = (i % 32) / 2;
      group[c * 32 * width + (k2 * width + k) * 2 + (i % 2)] = x[b * cols + i];
    }
  }
}

size_t Q8KTilesBytes(int64_t n, int64_t cols) { return static_cast<size_t>(Q8KTilesLayout(n, cols).Bytes()); }

void PackQ8KTiles(const ActQ8_K* rows, int64_t n, int64_t cols, uint8_t* out) {
  const Q8KTilesLayout at(n, cols);
  if (!at.HasTiles()) return;
  std::memset(out + at.tiles_at, 0, static_cast<size_t>(at.Bytes() - at.tiles_at));
  for (int64_t b = 0; b < n; ++b) {
    const int64_t g = b / 16, k = b % 16;
    const int width = at.Width(g);
    for (int64_t i = 0; i < at.nb; ++i) {
      const ActQ8_K& q = rows[b * at.nb + i];
      for (int j = 0; j < 8; ++j) {
        uint8_t* tile = out + at.Tile(g, i, j);
        for (int k4 = 0; k4 < 8; ++k4) std::memcpy(tile + (k4 * width + k) * 4, q.qs + 32 * j + 4 * k4, 4);
      }
      auto* side = reinterpret_cast<float*>(out + at.Side(g, i));
      side[k] = q.d;
      for (int j = 0; j < 8; ++j) side[16 + 16 * j + k] = static_cast<float>(q.bsums[2 * j] + q.bsums[2 * j + 1]);
    }
  }
}

void AddAmxPaths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out) {
  if (!(cpu.amx_tile && cpu.avx512f && cpu.avx512bw && cpu.avx512vl) || !AmxPermitted()) return;
  KernelPath p;
  p.type = type;
  p.level = 3;
  if (type == WeightType::kBF16 && cpu.amx_bf16) {
    p.name = "amx-bf16";
    p.form = ActForm::kBF16Tiles;
    p.rows_per_pass = kMaxPassRows;  // 128-token BF16 prefill: 204-211 -> 236-242 tok/s
    p.fn = AmxBf16Mat;
  } else if ((type == WeightType::kQ4_K || type == WeightType::kQ6_K) && cpu.amx_int8 && cpu.avx512vnni && cpu.fma &&
             cpu.f16c) {
    p.name = "amx-int8";
    p.form = ActForm::kQ8_KTiles;
    p.fn = type == WeightType::kQ6_K ? AmxKMat<true> : AmxKMat<false>;
  } else {
    return;
  }
  out->push_back(p);
}

}  // namespace strata::kernels
