#include "node/bf16_gemv.h"

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

// Row() for up to four activation rows at once: each weight chunk is loaded
// once and used for every row. Each row keeps Row()'s own four accumulators,
// its own order of additions and its own final reduction, so its result is
// bit-identical to Row() on that row alone: a request's logits do not depend
// on the batch it shares. (16 accumulators + 4 weight registers fit in the
// 32 zmm registers.)
template <int N>
__attribute__((target("avx512f,avx512bf16,avx512bw"))) void RowsN(const uint16_t* w, const uint16_t* const* x,
                                                                  int64_t cols, float* out) {
  __m512 a0[N], a1[N], a2[N], a3[N];
  for (int b = 0; b < N; ++b) a0[b] = a1[b] = a2[b] = a3[b] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 128 <= cols; i += 128) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w + i), w1 = (__m512bh)_mm512_loadu_si512(w + i + 32),
                   w2 = (__m512bh)_mm512_loadu_si512(w + i + 64), w3 = (__m512bh)_mm512_loadu_si512(w + i + 96);
    for (int b = 0; b < N; ++b) {
      a0[b] = _mm512_dpbf16_ps(a0[b], (__m512bh)_mm512_loadu_si512(x[b] + i), w0);
      a1[b] = _mm512_dpbf16_ps(a1[b], (__m512bh)_mm512_loadu_si512(x[b] + i + 32), w1);
      a2[b] = _mm512_dpbf16_ps(a2[b], (__m512bh)_mm512_loadu_si512(x[b] + i + 64), w2);
      a3[b] = _mm512_dpbf16_ps(a3[b], (__m512bh)_mm512_loadu_si512(x[b] + i + 96), w3);
    }
  }
  for (; i < cols; i += 32) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w + i);
    for (int b = 0; b < N; ++b) a0[b] = _mm512_dpbf16_ps(a0[b], (__m512bh)_mm512_loadu_si512(x[b] + i), w0);
  }
  for (int b = 0; b < N; ++b) {
    out[b] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0[b], a1[b]), _mm512_add_ps(a2[b], a3[b])));
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

void Bf16DotBatch(const uint16_t* w, const uint16_t* x, int64_t batch, int64_t cols, float* out) {
  for (int64_t b0 = 0; b0 < batch; b0 += 4) {
    const uint16_t* xs[4];
    const int n = static_cast<int>(std::min<int64_t>(4, batch - b0));
    for (int k = 0; k < n; ++k) xs[k] = x + (b0 + k) * cols;
    switch (n) {
      case 4: RowsN<4>(w, xs, cols, out + b0); break;
      case 3: RowsN<3>(w, xs, cols, out + b0); break;
      case 2: RowsN<2>(w, xs, cols, out + b0); break;
      default: RowsN<1>(w, xs, cols, out + b0); break;
    }
  }
}

void Bf16GemvBatchRows(const uint16_t* w, const uint16_t* x, int64_t batch, const uint16_t* bias, uint16_t* y,
                       int64_t rows, int64_t cols, int64_t row_begin, int64_t row_end) {
  float dots[kMaxDotBatch];
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t b0 = 0; b0 < batch; b0 += kMaxDotBatch) {
      const int64_t n = std::min<int64_t>(kMaxDotBatch, batch - b0);
      Bf16DotBatch(w + r * cols, x + b0 * cols, n, cols, dots);
      for (int64_t k = 0; k < n; ++k) {
        float value = dots[k];
        if (bias != nullptr) value += Bf16ToFloat(bias[r]);
        y[(b0 + k) * rows + r] = FloatToBf16(value);
      }
    }
  }
}

}  // namespace strata
