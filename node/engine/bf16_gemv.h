#pragma once
// A decode-path kernel: y = x W^T (+ b) for one BF16 activation row and BF16
// weights [rows, cols], accumulating in f32 and rounding to BF16 the way a
// BF16 GEMM does. One token's matrix-vector product is bound by memory
// bandwidth; this streams each weight row once with enough independent
// accumulators to keep the loads in flight.
//
// Thread-safe: pure function of its inputs; callers split rows across threads.
#include <cstdint>

namespace strata {

// Rows that Linear hands to these kernels in one call (more go to
// LibTorch's GEMM, faster for long prompt chunks).
inline constexpr int64_t kMaxKernelRows = 64;

// True when the CPU has AVX512-BF16 (vdpbf16ps); otherwise callers fall back.
bool Bf16GemvAvailable();

// Rows [row_begin, row_end) of y[rows] = round_bf16(W[rows, cols] . x[cols] + bias).
// bias may be null. cols must be a multiple of 32.
void Bf16GemvRows(const uint16_t* w, const uint16_t* x, const uint16_t* bias, uint16_t* y, int64_t cols,
                  int64_t row_begin, int64_t row_end);

// The f32 dot product of one weight row w[cols] with x[cols], before bias
// and rounding: what Bf16GemvRows computes for each row.
float Bf16Dot(const uint16_t* w, const uint16_t* x, int64_t cols);
// Every dot of weight rows w[rows, cols] with activation rows x[batch, cols]
// into out[rows, batch], in register tiles of 4 x 4;
// out[r, b] == Bf16Dot(w[r], x[b]) bit for bit.
void Bf16Dots(const uint16_t* w, int64_t rows, const uint16_t* x, int64_t batch, int64_t cols, float* out);
inline constexpr int64_t kMaxDotBatch = 64;  // Bf16GemvBatchRows' rows per pass over a weight row

// The same for `batch` activation rows x[batch, cols] at once, into
// y[batch, rows]: each weight row is read once for the whole batch, and each
// activation row's result is bit-identical to Bf16GemvRows on that row alone
// (same accumulators, same order). This is what makes batched decode exact.
void Bf16GemvBatchRows(const uint16_t* w, const uint16_t* x, int64_t batch, const uint16_t* bias, uint16_t* y,
                       int64_t rows, int64_t cols, int64_t row_begin, int64_t row_end);

}  // namespace strata
