#pragma once
// How a weight matrix is stored: plain F32 and BF16 rows, and llama.cpp's
// block formats as GGUF files hold them. A matrix [rows, cols] is `rows`
// rows of RowBytes(type, cols) bytes; a quantized row is cols / block
// elements' blocks, each one scale (and min) with its small integers.
// The blocks themselves are storage/quant_blocks.h. Activations meet
// quantized weights quantized in their turn, per block: Q8_0 rows for the
// 32-element formats, Q8_K rows for the K formats.
#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/dtype.h"
#include "storage/quant_blocks.h"
#include "storage/quants.h"

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
size_t BlockRowBytes(WeightType type, int64_t cols);  // any type, through the block tables
// Inline, from a table of the block structs (matmul_test checks it against
// BlockRowBytes): attention asks it once a cached position and the kernels
// once a weight row.
struct WeightBlock {
  int64_t elements;
  size_t bytes;
};
inline constexpr WeightBlock kWeightBlocks[kWeightTypes] = {
    {1, 4},    {1, 2},  {kQK8_0, sizeof(BlockQ8_0)}, {kQK8_0, sizeof(BlockQ4_0)}, {kQKK, sizeof(BlockQ4_K)},
    {kQKK, sizeof(BlockQ5_K)}, {kQKK, sizeof(BlockQ6_K)}, {kQK8_0, sizeof(BlockQ4_1)}, {kQK8_0, sizeof(BlockQ5_0)},
    {kQK8_0, sizeof(BlockQ5_1)}};
constexpr bool BlockElementsArePowersOfTwo() {
  for (const WeightBlock& b : kWeightBlocks)
    if (b.elements <= 0 || (b.elements & (b.elements - 1)) != 0) return false;
  return true;
}
static_assert(BlockElementsArePowersOfTwo(), "RowBytes shifts instead of dividing");
// A shift, not a division: kernels ask it per weight row (the AVX2 GEMM's
// pack asked it per eight columns, an idiv each time).
inline size_t RowBytes(WeightType type, int64_t cols) {
  const WeightBlock& b = kWeightBlocks[static_cast<int>(type)];
  return (static_cast<size_t>(cols) >> __builtin_ctzll(static_cast<unsigned long long>(b.elements))) * b.bytes;
}

// storage/quants' conversions, by weight type.
inline void DequantizeRow(WeightType type, const uint8_t* row, int64_t cols, float* out) {
  DequantizeRow(StorageDType(type), row, cols, out);
}
inline void QuantizeRow(WeightType type, const float* x, int64_t cols, uint8_t* out) {
  QuantizeRow(StorageDType(type), x, cols, out);
}

}  // namespace strata
