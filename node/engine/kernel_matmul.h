#pragma once
// A weight matrix, given by row ranges that may each have their own format,
// times a few activation rows on Strata's kernels (node/engine/matmul),
// weight rows split across the intra-op threads by bytes. Every row's result
// is the same whether it comes alone, with its prompt chunk, or in a batch
// of other sessions' rows. Torch-free: raw rows in, raw rows out.
//
// Thread-safe: a pure function of its arguments (it uses the calling
// thread's scratch).
#include <cstdint>
#include <vector>

#include "node/engine/weight_format.h"

namespace strata {

// Rows [row0, row0 + rows) of a weight matrix, as one kernel reads them.
struct KernelRows {
  WeightType type = WeightType::kF32;
  int64_t row0 = 0, rows = 0;
  const uint8_t* data = nullptr;
};

// y[n, rows] = residual + x[n, cols] W^T + bias, with W given by `parts`
// (covering [0, rows)). x, residual and y are in f32, or (bf16) BF16; bias
// is f32 or null, residual may be null or equal to y (added in place). The
// dot plus the bias is rounded to the dtype first, and the sum with the
// residual after: the bits of y = x W^T + b followed by residual + y.
void KernelMatmul(const void* x, bool bf16, int64_t n, int64_t cols, const std::vector<KernelRows>& parts,
                  int64_t rows, const float* bias, const void* residual, void* y);

}  // namespace strata
