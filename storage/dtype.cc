#include "storage/dtype.h"

#include <cmath>

namespace strata {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF64: case DType::kI64: return 8;
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: case DType::kI16: return 2;
    case DType::kI8: case DType::kU8: case DType::kBool: return 1;
    default: return 0;
  }
}

bool IsBlockDType(DType dtype) { return DTypeBlockElements(dtype) > 1; }

int64_t DTypeBlockElements(DType dtype) {
  switch (dtype) {
    case DType::kQ4_0: case DType::kQ4_1: case DType::kQ5_0: case DType::kQ5_1: case DType::kQ8_0: return 32;
    case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K: return 256;
    default: return 1;
  }
}

size_t DTypeBlockBytes(DType dtype) {
  switch (dtype) {  // ggml-common.h's block structs, packed
    case DType::kQ4_0: return 18;
    case DType::kQ4_1: return 20;
    case DType::kQ5_0: return 22;
    case DType::kQ5_1: return 24;
    case DType::kQ8_0: return 34;
    case DType::kQ4_K: return 144;
    case DType::kQ5_K: return 176;
    case DType::kQ6_K: return 210;
    default: return DTypeSize(dtype);
  }
}

bool DTypeBytes(DType dtype, const std::vector<int64_t>& shape, uint64_t* out) {
  const int64_t block = DTypeBlockElements(dtype);
  if (!shape.empty() && shape.back() % block != 0) return false;
  unsigned __int128 total = DTypeBlockBytes(dtype);
  int64_t blocks_in_row = shape.empty() ? 1 : shape.back() / block;
  for (size_t i = 0; i + 1 < shape.size(); ++i) {
    if (shape[i] < 0) return false;
    total *= static_cast<uint64_t>(shape[i]);
    if (total > (static_cast<unsigned __int128>(1) << 62)) return false;
  }
  if (blocks_in_row < 0) return false;
  total *= static_cast<uint64_t>(blocks_in_row);
  if (total > (static_cast<unsigned __int128>(1) << 62)) return false;
  *out = static_cast<uint64_t>(total);
  return true;
}

const char* DTypeString(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
    case DType::kQ4_0: return "Q4_0";
    case DType::kQ4_1: return "Q4_1";
    case DType::kQ5_0: return "Q5_0";
    case DType::kQ5_1: return "Q5_1";
    case DType::kQ8_0: return "Q8_0";
    case DType::kQ4_K: return "Q4_K";
    case DType::kQ5_K: return "Q5_K";
    case DType::kQ6_K: return "Q6_K";
  }
  return "?";
}

bool ParseSafetensorsDType(const std::string& text, DType* out) {
  static const struct { const char* name; DType dtype; } kTable[] = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
      {"F64", DType::kF64}, {"I64", DType::kI64}, {"I32", DType::kI32},
      {"I16", DType::kI16}, {"I8", DType::kI8},   {"U8", DType::kU8},
      {"BOOL", DType::kBool}};
  for (const auto& row : kTable) {
    if (text == row.name) { *out = row.dtype; return true; }
  }
  return false;
}

bool ParseDTypeName(const std::string& text, DType* out) {
  if (ParseSafetensorsDType(text, out)) return true;
  for (DType d : {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K,
                  DType::kQ6_K}) {
    if (text == DTypeString(d)) { *out = d; return true; }
  }
  return false;
}

float F16ToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float value;
  if (exp == 0) {
    value = std::ldexp(static_cast<float>(mant), -24);          // subnormal or zero
  } else if (exp == 31) {
    value = mant ? NAN : INFINITY;
  } else {
    value = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -value : value;
}

uint16_t FloatToF16(float f) {
  // Round-to-nearest-even through the hardware-independent path.
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a < 6.103515625e-05f) {  // subnormal range: quantize to multiples of 2^-24
    const float q = std::nearbyint(a * 16777216.0f);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(q));
  }
  int e;
  const float m = std::frexp(a, &e);                      // a = m * 2^e, m in [0.5, 1)
  const float scaled = std::nearbyint(std::ldexp(m, 11));  // 11 significant bits
  uint32_t mant = static_cast<uint32_t>(scaled);
  if (mant == 2048) { mant = 1024; ++e; }
  const uint32_t exp = static_cast<uint32_t>(e - 1 + 15);
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  return static_cast<uint16_t>(sign | (exp << 10) | (mant & 0x3ffu));
}

}  // namespace strata
