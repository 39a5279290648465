#pragma once
// llama.cpp's block formats as GGUF files hold them, field for field
// (little-endian, packed as ggml-common.h lays them out), so a mapped GGUF
// tensor is read in place; and the activation blocks Strata's kernels
// quantize activation rows into (its own layout, never on disk or on the
// wire). A row of a block format is whole blocks of 32 or 256 elements.
#include <cstdint>
#include <cstring>

namespace strata {

inline constexpr int64_t kQK8_0 = 32;  // elements of a Q8_0 / Q4_0 block
inline constexpr int64_t kQKK = 256;   // elements of a K-format super-block

#pragma pack(push, 1)
struct BlockQ8_0 {  // x = d * q
  uint16_t d;         // f16
  int8_t qs[kQK8_0];
};
struct BlockQ4_0 {  // x = d * (q - 8); byte j holds elements j (low nibble) and j + 16 (high)
  uint16_t d;         // f16
  uint8_t qs[kQK8_0 / 2];
};
struct BlockQ4_1 {  // x = d * q + m
  uint16_t d, m;      // f16
  uint8_t qs[kQK8_0 / 2];
};
struct BlockQ5_0 {  // x = d * (q - 16); bit j of qh (little-endian) is element j's fifth bit
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK8_0 / 2];
};
struct BlockQ5_1 {  // x = d * q + m, q as Q5_0's
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK8_0 / 2];
};
struct BlockQ4_K {  // 8 sub-blocks of 32: x = d * sc[j] * q - dmin * m[j], 6-bit sc and m
  uint16_t d, dmin;   // f16
  uint8_t scales[12];  // sc and m of the 8 sub-blocks, 6 bits each (Q4KScaleMin)
  uint8_t qs[kQKK / 2];  // 64-element chunk c: bytes [32c, 32c+32): low nibble sub-block 2c, high 2c+1
};
struct BlockQ5_K {  // as Q4_K, with a fifth bit per element from qh
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];  // bit 2c of byte l: element 64c + l; bit 2c+1: element 64c + 32 + l
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {  // 16 sub-blocks of 16: x = d * sc[j] * (q - 32), q of 6 bits
  uint8_t ql[kQKK / 2];  // low 4 bits
  uint8_t qh[kQKK / 4];  // high 2 bits
  int8_t scales[kQKK / 16];
  uint16_t d;            // f16
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18, "GGUF block sizes");
static_assert(sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24, "GGUF block sizes");
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210, "GGUF block sizes");

// Activation blocks (Strata's own layout: an f32 scale, kept exact).
struct ActQ8_0 {  // x ~ d * q, q in [-127, 127]; sum of qs for the formats with a min
  float d;
  int32_t sum;
  int8_t qs[kQK8_0];
};
// Two Q8_0 activation blocks as the AVX-512 VNNI kernels read them: the
// 64 qs in one run, each int32 lane's correction -128 * (its four qs) for
// weights made unsigned (q + 128), and both scales as the lanes take them
// ([d0 x 8 | d1 x 8]: one load, where joining two took three
// instructions per activation row and block pair). A lone last block
// leaves the upper half zero.
struct ActQ8_0Pair {
  int8_t qs[2 * kQK8_0];
  int32_t fix[16];
  float d[16];
};
struct ActQ8_K {  // x ~ d * q, q in [-127, 127]; bsums[i] = sum of qs[16i, 16i+16)
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K or Q5_K block.
inline void Q4KScaleMin(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// All eight scales and mins of a Q4_K or Q5_K block as bytes: u[0..1] =
// sc0..sc7, u[2..3] = m0..m7 (Q4KScaleMin's values, unpacked in 32-bit words).
inline void Q4KScalesAndMins(const uint8_t* packed, uint32_t (&u)[4]) {
  std::memcpy(u, packed, 12);
  constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
  u[3] = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);  // m4..m7
  const uint32_t m03 = u[1] & k6;
  u[1] = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);         // sc4..sc7
  u[2] = m03;
  u[0] &= k6;                                              // sc0..sc3
}

}  // namespace strata
