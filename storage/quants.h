#pragma once
// Reference conversions between f32 and the block formats of
// storage/quant_blocks.h: what `strata quantize` writes, what tests check
// the kernels against, and how a quantized row is read back when a kernel
// does not apply (an embedding row). Plain loops, no SIMD. F32, F16 and
// BF16 rows convert too.
//
// Thread-safe: pure functions.
#include <cstdint>

#include "storage/dtype.h"
#include "storage/quant_blocks.h"

namespace strata {

// out[cols] = the values a row of `type` stands for.
void DequantizeRow(DType type, const uint8_t* row, int64_t cols, float* out);
// out[row bytes] = x[cols] in `type`; cols a multiple of DTypeBlockElements(type).
void QuantizeRow(DType type, const float* x, int64_t cols, uint8_t* out);

// Activation rows: cols / 32 (or / 256) blocks, scale amax / 127, round to nearest even.
void QuantizeActQ8_0(const float* x, int64_t cols, ActQ8_0* out);
void QuantizeActQ8_K(const float* x, int64_t cols, ActQ8_K* out);

}  // namespace strata
