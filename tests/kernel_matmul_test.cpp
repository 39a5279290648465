// KernelMatmul (node/engine/kernel_matmul): a matrix given by parts of
// different formats, its rows split into pieces that the intra-op threads
// take as each is free, gives for every thread count the bits of each part
// computed in one pass on one thread, then the bias, the rounding and the
// residual as its header says.
#include "node/engine/kernel_matmul.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "node/engine/matmul.h"
#include "storage/dtype.h"
#include "storage/quants.h"

namespace strata {
namespace {

constexpr int64_t kCols = 2048;

struct Part {
  WeightType type;
  int64_t rows;
};

// Restores the intra-op thread count a test changed.
class ThreadCount {
 public:
  ThreadCount() : saved_(at::get_num_threads()) {}
  ~ThreadCount() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

struct Matrix {
  std::vector<std::vector<uint8_t>> storage;
  std::vector<KernelRows> parts;
  int64_t rows = 0;
};

Matrix MakeMatrix(const std::vector<Part>& layout, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 0.05f);
  Matrix m;
  m.storage.reserve(layout.size());
  for (const Part& p : layout) {
    const size_t row_bytes = RowBytes(p.type, kCols);
    std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(p.rows));
    std::vector<float> row(static_cast<size_t>(kCols));
    for (int64_t r = 0; r < p.rows; ++r) {
      for (float& v : row) v = dist(rng);
      QuantizeRow(p.type, row.data(), kCols, bytes.data() + row_bytes * static_cast<size_t>(r));
    }
    m.storage.push_back(std::move(bytes));
    m.parts.push_back(KernelRows{p.type, m.rows, p.rows, m.storage.back().data()});
    m.rows += p.rows;
  }
  return m;
}

// y as the header defines it, from each part's kernel over all its rows on this thread.
std::vector<uint8_t> Expected(const Matrix& m, const void* x, bool bf16, int64_t n, const float* bias,
                              const void* residual) {
  std::vector<float> dots(static_cast<size_t>(n * m.rows));
  const InputRows in{x, bf16, n, kCols};
  for (const KernelRows& p : m.parts) {
    const WeightMatrix w{p.type, p.data, p.rows, kCols};
    MatRows(ActiveKernels().For(p.type), w, in, 0, p.rows, dots.data() + p.row0, m.rows);
  }
  std::vector<uint8_t> y(static_cast<size_t>(n * m.rows) * (bf16 ? 2 : 4));
  for (int64_t i = 0; i < n * m.rows; ++i) {
    const float v = dots[static_cast<size_t>(i)] + (bias != nullptr ? bias[i % m.rows] : 0.0f);
    if (bf16) {
      uint16_t out = FloatToBf16(v);
      if (residual != nullptr) out = FloatToBf16(Bf16ToFloat(static_cast<const uint16_t*>(residual)[i]) + Bf16ToFloat(out));
      std::memcpy(y.data() + 2 * i, &out, 2);
    } else {
      const float out = residual != nullptr ? static_cast<const float*>(residual)[i] + v : v;
      std::memcpy(y.data() + 4 * i, &out, 4);
    }
  }
  return y;
}

std::vector<float> Normal(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(KernelMatmulTest, MixedPartsGiveOnePassBitsForEveryThreadCount) {
  ThreadCount restore;
  std::mt19937 rng(11);
  // 700 rows of three formats (two activation forms): ten pieces at three threads.
  const Matrix m = MakeMatrix({{WeightType::kQ4_K, 300}, {WeightType::kQ6_K, 100}, {WeightType::kQ8_0, 300}}, rng);
  const std::vector<float> bias = Normal(static_cast<size_t>(m.rows), rng);
  for (int64_t n : {1, 3, 24}) {
    const std::vector<float> x = Normal(static_cast<size_t>(n * kCols), rng);
    const std::vector<float> residual = Normal(static_cast<size_t>(n * m.rows), rng);
    for (const bool with_residual : {false, true}) {
      const void* res = with_residual ? residual.data() : nullptr;
      const std::vector<uint8_t> want = Expected(m, x.data(), false, n, bias.data(), res);
      for (int threads : {1, 2, 3}) {
        at::set_num_threads(threads);
        std::vector<uint8_t> y(want.size(), 0xff);
        KernelMatmul(x.data(), false, n, kCols, m.parts, m.rows, bias.data(), res, y.data());
        EXPECT_EQ(0, std::memcmp(y.data(), want.data(), want.size()))
            << "n " << n << ", threads " << threads << (with_residual ? ", residual" : "");
      }
    }
  }
}

TEST(KernelMatmulTest, Bf16RowsAddedInPlaceGiveOnePassBitsForEveryThreadCount) {
  ThreadCount restore;
  std::mt19937 rng(12);
  const Matrix m = MakeMatrix({{WeightType::kBF16, 450}}, rng);
  for (int64_t n : {1, 17}) {
    std::vector<uint16_t> x, residual;
    for (float v : Normal(static_cast<size_t>(n * kCols), rng)) x.push_back(FloatToBf16(v));
    for (float v : Normal(static_cast<size_t>(n * m.rows), rng)) residual.push_back(FloatToBf16(v));
    const std::vector<uint8_t> want = Expected(m, x.data(), true, n, nullptr, residual.data());
    for (int threads : {1, 2, 3}) {
      at::set_num_threads(threads);
      std::vector<uint16_t> y = residual;  // residual == y: added in place
      KernelMatmul(x.data(), true, n, kCols, m.parts, m.rows, nullptr, y.data(), y.data());
      EXPECT_EQ(0, std::memcmp(y.data(), want.data(), want.size())) << "n " << n << ", threads " << threads;
    }
  }
}

}  // namespace
}  // namespace strata
