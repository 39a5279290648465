// The decode kernels: the multi-row BF16 GEMV gives every activation row
// exactly the bits the single-row kernel gives it alone, for any batch size
// (groups of four and every remainder), with and without bias — the
// property that keeps a request's logits independent of its batch. A second
// order of summation over the same data does differ, so the comparison can
// tell orders apart.
#include "node/engine/bf16_gemv.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "storage/dtype.h"

namespace strata {
namespace {

std::vector<uint16_t> Random(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = FloatToBf16(dist(rng));
  return v;
}

TEST(Bf16GemvTest, BatchRowsEqualEachRowAlone) {
  if (!Bf16GemvAvailable()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int64_t rows = 384, cols = 5632 + 32;  // a tail past the 128-wide main loop
  std::mt19937 rng(7);
  auto w = Random(static_cast<size_t>(rows * cols), rng);
  auto bias = Random(static_cast<size_t>(rows), rng);
  for (int64_t batch : {1, 2, 3, 4, 5, 7, 8, 13}) {
    auto x = Random(static_cast<size_t>(batch * cols), rng);
    for (const uint16_t* b : {static_cast<const uint16_t*>(nullptr), static_cast<const uint16_t*>(bias.data())}) {
      std::vector<uint16_t> together(static_cast<size_t>(batch * rows));
      // Split the rows as threads would, unevenly.
      Bf16GemvBatchRows(w.data(), x.data(), batch, b, together.data(), rows, cols, 0, 100);
      Bf16GemvBatchRows(w.data(), x.data(), batch, b, together.data(), rows, cols, 100, rows);
      for (int64_t i = 0; i < batch; ++i) {
        std::vector<uint16_t> alone(static_cast<size_t>(rows));
        Bf16GemvRows(w.data(), x.data() + i * cols, b, alone.data(), cols, 0, rows);
        EXPECT_EQ(std::memcmp(alone.data(), together.data() + i * rows, alone.size() * 2), 0)
            << "batch " << batch << " row " << i << (b ? " with bias" : "");
      }
    }
  }
}

// Before rounding: every row's f32 dot equals the single-row dot's bits,
// and a sequential sum (another order) differs from it, so the comparison
// sees a reorder that BF16 rounding would mostly hide.
TEST(Bf16GemvTest, BatchDotsEqualSingleDotsBeforeRounding) {
  if (!Bf16GemvAvailable()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int64_t cols = 2048 + 96, rows = 7, batch = 11;  // tails of every tile shape, and of the column loop
  std::mt19937 rng(11);
  auto w = Random(static_cast<size_t>(rows * cols), rng);
  auto x = Random(static_cast<size_t>(batch * cols), rng);
  std::vector<float> together(static_cast<size_t>(rows * batch));
  Bf16Dots(w.data(), rows, x.data(), batch, cols, together.data());
  int reordered_differs = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < batch; ++i) {
      const float alone = Bf16Dot(w.data() + r * cols, x.data() + i * cols, cols);
      EXPECT_EQ(std::memcmp(&alone, &together[static_cast<size_t>(r * batch + i)], sizeof(float)), 0)
          << "weight row " << r << " activation row " << i;
      float sequential = 0;
      for (int64_t c = 0; c < cols; ++c) sequential += Bf16ToFloat(w[r * cols + c]) * Bf16ToFloat(x[i * cols + c]);
      reordered_differs += std::memcmp(&alone, &sequential, sizeof(float)) != 0;
    }
  }
  EXPECT_GT(reordered_differs, rows * batch / 2) << "a sequential sum matched the kernel's bits: the test cannot see a reorder";
}

}  // namespace
}  // namespace strata
