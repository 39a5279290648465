// AVX2 quantization of activation rows to Q8_0 and Q8_K blocks, the bits
// of storage/quants.cc's QuantizeActQ8_0 / QuantizeActQ8_K (the scalar
// reference) for every input, NaN and infinity included:
// - the absolute maximum ignores NaN as std::max(m, |x|) does (vmaxps
//   returns its second operand when the first is NaN);
// - vcvtps2dq rounds to nearest, ties to even, as Round does, and gives
//   INT32_MIN for NaN and out-of-range values, as the scalar cast does;
// - the block sums are integer sums, exact in any order.
// A quantized prefill quantizes every matrix's input rows; one element at a
// time it was 2% of a Q4_K_M 128-token prefill on the AMD EPYC.
#include <immintrin.h>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"

namespace strata {
namespace kernels {

STRATA_TARGET_BEGIN("avx2")
namespace {

// max(|x[i]|) over n (a multiple of 32) floats, NaN ignored; 0 for none.
float AbsMax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

// 8 elements of x * id, rounded and clamped to [-127, 127].
__m256i Levels8(const float* x, __m256 id) {
  const __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
  return _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
}

// 32 elements of x * id as int8 levels at qs, in order; the sums of the
// levels of each 16 into *lo and *hi (eight int32 lanes each).
void Levels32(const float* x, __m256 id, int8_t* qs, __m256i* lo, __m256i* hi) {
  const __m256i a = Levels8(x, id), b = Levels8(x + 8, id), c = Levels8(x + 16, id), d = Levels8(x + 24, id);
  // packs work within 128-bit lanes: dwords come out as a0 b0 c0 d0 a1 b1 c1 d1.
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
  const __m256i order = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), order);
  *lo = _mm256_add_epi32(a, b);
  *hi = _mm256_add_epi32(c, d);
}

int32_t Sum8(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// amax / 127 into *d; the reciprocal the levels take (0 for an all-zero block).
__m256 Scale(float amax, float* d) {
  *d = amax / 127.0f;
  return _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
}

}  // namespace

void QuantizeActQ8_0Avx2(const float* x, int64_t cols, ActQ8_0* out) {
  for (int64_t i = 0; i < cols / kQK8_0; ++i) {
    const float* s = x + kQK8_0 * i;
    __m256i lo, hi;
    Levels32(s, Scale(AbsMax(s, kQK8_0), &out[i].d), out[i].qs, &lo, &hi);
    out[i].sum = Sum8(_mm256_add_epi32(lo, hi));
  }
}

void QuantizeActQ8_KAvx2(const float* x, int64_t cols, ActQ8_K* out) {
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    const float* s = x + kQKK * i;
    const __m256 id = Scale(AbsMax(s, kQKK), &out[i].d);
    for (int k = 0; k < kQKK; k += 32) {
      __m256i lo, hi;
      Levels32(s + k, id, out[i].qs + k, &lo, &hi);
      out[i].bsums[k / 16] = static_cast<int16_t>(Sum8(lo));
      out[i].bsums[k / 16 + 1] = static_cast<int16_t>(Sum8(hi));
    }
  }
}
STRATA_TARGET_END

}  // namespace kernels
}  // namespace strata
