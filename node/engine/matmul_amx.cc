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
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"

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
  int Width(int64_t g) const { return static_cast<int>(std::min<int64_t>(16, n - 16 * g)); }
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

namespace strata::kernels {

void PackBf16Tiles(const uint16_t* x, int64_t n, int64_t cols, uint8_t* out) {
  // [group][chunk][k2 (16)][row in group][2 bf16]
  const int64_t chunks = (cols + 31) / 32;
  std::memset(out, 0, static_cast<size_t>(n * chunks * 64));
  auto* o = reinterpret_cast<uint16_t*>(out);
  for (int64_t b = 0; b < n; ++b) {
    const int64_t g = b / 16, width = std::min<int64_t>(16, n - 16 * g), k = b % 16;
    uint16_t* group = o + g * 16 * chunks * 32;
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t c = i / 32, k2 = (i % 32) / 2;
      group[c * 32 * width + (k2 * width + k) * 2 + (i % 2)] = x[b * cols + i];
    }
  }
}

void AddAmxPaths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out) {
  if (type != WeightType::kBF16 || !(cpu.amx_tile && cpu.amx_bf16 && cpu.avx512f) || !AmxPermitted()) return;
  KernelPath p;
  p.type = type;
  p.level = 3;
  p.name = "amx-bf16";
  p.form = ActForm::kBF16Tiles;
  p.fn = AmxBf16Mat;
  out->push_back(p);
}

}  // namespace strata::kernels
