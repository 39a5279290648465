#include "node/bf16_gemv.h"

#include <immintrin.h>

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

}  // namespace

bool Bf16GemvAvailable() {
  static const bool available = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512bf16");
  return available;
}

void Bf16GemvRows(const uint16_t* w, const uint16_t* x, const uint16_t* bias, uint16_t* y, int64_t cols,
                  int64_t row_begin, int64_t row_end) {
  auto store = [&](int64_t row, float value) {
    if (bias != nullptr) value += Bf16ToFloat(bias[row]);
    y[row] = FloatToBf16(value);
  };
  for (int64_t r = row_begin; r < row_end; ++r) {
    float value = Row(w + r * cols, x, cols);
    if (bias != nullptr) value += Bf16ToFloat(bias[r]);
    y[r] = FloatToBf16(value);
  }
}

}  // namespace strata
