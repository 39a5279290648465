#pragma once
// How a weight matrix is stored: plain F32 and BF16 rows, and llama.cpp's
// block formats as GGUF files hold them. A matrix [rows, cols] is `rows`
// rows of RowBytes(type, cols) bytes; a quantized row is cols / block
// elements' blocks, each one scale (and min) with its small integers.
// The structs below are those bytes, field for field (little-endian, packed
// as llama.cpp's ggml-common.h lays them out), so a mapped GGUF tensor is
// read in place.
//
// Activations meet quantized weights quantized in their turn, per block:
// Q8_0 rows for the 32-element formats, Q8_K rows for the K formats. Their
// layout is Strata's own (never on disk or on the wire).
#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/dtype.h"

namespace strata {

enum class WeightType : uint8_t { kF32, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K, kQ4_1, kQ5_0, kQ5_1 };
inline constexpr int kWeightTypes = 10;

const char* WeightTypeName(WeightType type);  // "f32", "bf16", "q8_0", ..., "q6_k"
bool ParseWeightType(const std::string& text, WeightType* out);
int64_t BlockElements(WeightType type);       // 1 for F32/BF16, 32 or 256
size_t BlockBytes(WeightType type);
bool IsQuantized(WeightType type);
// The same format as storage names it at rest; false for a storage type
// without a kernel (F16 is widened at load).
DType StorageDType(WeightType type);
bool WeightTypeOf(DType dtype, WeightType* out);
// Bytes of one row of `cols` elements; cols must be a multiple of BlockElements.
size_t RowBytes(WeightType type, int64_t cols);

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

}  // namespace strata
