#include "node/engine/bf16_gemv.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "storage/dtype.h"

namespace strata {
namespace {

// One weight row at a time, as one sequential stream: the hardware
// prefetcher keeps it in flight, and four independent accumulators hide the
// dot-product latency. (Interleaving four rows was measured 30% slower: too
// many concurrent streams per core.)
__attribute__((target("avx512f,avx512bf16,avx512bw"))) float Row(const uint16_t* w, const uint16_t* x, int64_t cols) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 128 <= cols; i += 128) {
    a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + i), (__m512bh)_mm512_loadu_si512(w + i));
    a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(x + i + 32), (__m512bh)_mm512_loadu_si512(w + i + 32));
    a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(x + i + 64), (__m512bh)_mm512_loadu_si512(w + i + 64));
    a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(x + i + 96), (__m512bh)_mm512_loadu_si512(w + i + 96));
  }
  for (; i < cols; i += 32) {
    a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + i), (__m512bh)_mm512_loadu_si512(w + i));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// Row()'s dots for a tile of R weight rows x N activation rows. Row() keeps
// four accumulators a0..a3: a_j sums the 32-wide chunks at 128*i + 32*j in
// order of i, and a0 then takes the tail. Each accumulator's sequence of
// operations is all that decides its bits, so the tile runs them one j at a
// time (a0 with its tail), each with R*N accumulators in registers, and
// reduces the four exactly as Row() does: every dot is bit-identical to
// Row() on its own, while each weight and activation load serves N or R
// dot steps (R = N = 4: 16 accumulators, 8 loads per 16 dot steps).
template <int R, int N>
__attribute__((target("avx512f,avx512bf16,avx512bw"))) void Tile(const uint16_t* w, const uint16_t* x, int64_t cols,
                                                                 float* out, int64_t out_stride) {
  __m512 part[4][R][N];  // [j][row][activation]
  const int64_t main_end = cols / 128 * 128;
  for (int j = 0; j < 4; ++j) {
    __m512 acc[R][N];
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < N; ++b) acc[r][b] = _mm512_setzero_ps();
    auto step = [&](int64_t i) __attribute__((target("avx512f,avx512bf16,avx512bw"))) {
      __m512bh wv[R];
      for (int r = 0; r < R; ++r) wv[r] = (__m512bh)_mm512_loadu_si512(w + r * cols + i);
      for (int b = 0; b < N; ++b) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + b * cols + i);
        for (int r = 0; r < R; ++r) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], xv, wv[r]);
      }
    };
    for (int64_t i = 32 * j; i < main_end; i += 128) step(i);
    if (j == 0) {
      for (int64_t i = main_end; i < cols; i += 32) step(i);
    }
    for (int r = 0; r < R; ++r)
      for (int b = 0; b < N; ++b) part[j][r][b] = acc[r][b];
  }
  for (int r = 0; r < R; ++r) {
    for (int b = 0; b < N; ++b) {
      out[r * out_stride + b] = _mm512_reduce_add_ps(
          _mm512_add_ps(_mm512_add_ps(part[0][r][b], part[1][r][b]), _mm512_add_ps(part[2][r][b], part[3][r][b])));
    }
  }
}

template <int R>
void TileRows(int n, const uint16_t* w, const uint16_t* x, int64_t cols, float* out, int64_t out_stride) {
  switch (n) {
    case 4: Tile<R, 4>(w, x, cols, out, out_stride); break;
    case 3: Tile<R, 3>(w, x, cols, out, out_stride); break;
    case 2: Tile<R, 2>(w, x, cols, out, out_stride); break;
    default: Tile<R, 1>(w, x, cols, out, out_stride); break;
  }
}

}  // namespace

bool Bf16GemvAvailable() {
  static const bool available = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512bf16");
  return available;
}

void Bf16GemvRows(const uint16_t* w, const uint16_t* x, const uint16_t* bias, uint16_t* y, int64_t cols,
                  int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    float value = Row(w + r * cols, x, cols);
    if (bias != nullptr) value += Bf16ToFloat(bias[r]);
    y[r] = FloatToBf16(value);
  }
}

float Bf16Dot(const uint16_t* w, const uint16_t* x, int64_t cols) { return Row(w, x, cols); }

void Bf16Dots(const uint16_t* w, int64_t rows, const uint16_t* x, int64_t batch, int64_t cols, float* out) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const int m = static_cast<int>(std::min<int64_t>(4, rows - r0));
    for (int64_t b0 = 0; b0 < batch; b0 += 4) {
      const int n = static_cast<int>(std::min<int64_t>(4, batch - b0));
      const uint16_t* wt = w + r0 * cols;
      const uint16_t* xt = x + b0 * cols;
      float* o = out + r0 * batch + b0;
      switch (m) {
        case 4: TileRows<4>(n, wt, xt, cols, o, batch); break;
        case 3: TileRows<3>(n, wt, xt, cols, o, batch); break;
        case 2: TileRows<2>(n, wt, xt, cols, o, batch); break;
        default: TileRows<1>(n, wt, xt, cols, o, batch); break;
      }
    }
  }
}

void Bf16GemvBatchRows(const uint16_t* w, const uint16_t* x, int64_t batch, const uint16_t* bias, uint16_t* y,
                       int64_t rows, int64_t cols, int64_t row_begin, int64_t row_end) {
  // Four weight rows at a time, against the whole batch (chunks of
  // kMaxDotBatch activation rows): the four stay in L1/L2 while every
  // activation row passes them.
  float dots[4 * kMaxDotBatch];  // [4][n]
  for (int64_t r0 = row_begin; r0 < row_end; r0 += 4) {
    const int64_t m = std::min<int64_t>(4, row_end - r0);
    for (int64_t b0 = 0; b0 < batch; b0 += kMaxDotBatch) {
      const int64_t n = std::min<int64_t>(kMaxDotBatch, batch - b0);
      Bf16Dots(w + r0 * cols, m, x + b0 * cols, n, cols, dots);
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t k = 0; k < n; ++k) {
          float value = dots[r * n + k];
          if (bias != nullptr) value += Bf16ToFloat(bias[r0 + r]);
          y[(b0 + k) * rows + r0 + r] = FloatToBf16(value);
        }
      }
    }
  }
}

}  // namespace strata
