#pragma once
// Element types of tensors at rest, and the scalar conversions between them.
// Besides plain element types, the block formats of llama.cpp's GGUF files:
// a row of a block type is whole blocks of BlockElements values each.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace strata {

enum class DType : uint8_t {
  kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool,
  kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ8_0, kQ4_K, kQ5_K, kQ6_K,
};

size_t DTypeSize(DType dtype);                     // bytes per element; 0 for a block type
const char* DTypeString(DType dtype);              // safetensors spelling: "F32", "BF16", ...; GGUF's "Q4_K", ...
bool IsBlockDType(DType dtype);
int64_t DTypeBlockElements(DType dtype);           // 1 for plain types; 32 or 256
size_t DTypeBlockBytes(DType dtype);               // bytes of one block (DTypeSize for plain types)
// Bytes of a tensor of `shape` (row-major, the last dimension innermost):
// false when the last dimension is not whole blocks, a dimension is
// negative, or the size overflows 2^62.
bool DTypeBytes(DType dtype, const std::vector<int64_t>& shape, uint64_t* out);
bool ParseSafetensorsDType(const std::string& text, DType* out);
bool ParseDTypeName(const std::string& text, DType* out);  // any DTypeString spelling, block types too

inline float Bf16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  // A select rather than an early return: loops over rows of it vectorise.
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

float F16ToFloat(uint16_t bits);
uint16_t FloatToF16(float f);

}  // namespace strata
