#pragma once
// The Q4_K/Q5_K block head (d, dmin and the twelve bytes of packed 6-bit
// scales and mins) unpacked in SSE registers, for the AVX2 and AVX-512
// K-quant tiles. Include it inside a STRATA_TARGET region with avx2: its
// functions take that region's instruction sets (and internal linkage, so
// each kernel file has its own copy).
#include <immintrin.h>

#include <cstdint>

namespace strata::kernels {
namespace {

// The first 16 bytes of a Q4_K/Q5_K block, unpacked to the bytes
// [sc0..sc7, m0..m7] (Q4KScalesAndMins in one register: a few vector
// instructions where the scalar unpack took twenty).
inline __m128i Q4KScaleBytes(__m128i head) {
  // dwords of head: [d | dmin, s0-3, s4-7, s8-11]
  const __m128i a = _mm_srlv_epi32(_mm_shuffle_epi32(head, _MM_SHUFFLE(3, 2, 3, 1)), _mm_setr_epi32(0, 0, 0, 4));
  const __m128i low = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  // The top two bits of sc0-3 and m0-3, as bits 4-5 of sc4-7 and m4-7.
  const __m128i b = _mm_srli_epi32(_mm_shuffle_epi32(head, _MM_SHUFFLE(2, 0, 1, 0)), 2);
  return _mm_or_si128(low, _mm_and_si128(b, _mm_setr_epi32(0, 0x30303030, 0, 0x30303030)));
}

// The 16 bytes at p (a block's head).
inline __m128i LoadHead(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// [d0, dmin0, d1, dmin1, d2, dmin2, d3, dmin3] as f32, from four heads.
inline __m256 HeadScales(__m128i h0, __m128i h1, __m128i h2, __m128i h3) {
  return _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm_unpacklo_epi32(h0, h1), _mm_unpacklo_epi32(h2, h3)));
}

}  // namespace
}  // namespace strata::kernels
