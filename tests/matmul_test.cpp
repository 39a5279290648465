// The kernels (node/engine/matmul): every path this CPU runs, for every
// weight type and shape tail, against a double-precision reference of the
// same stored values; every batched row bit-identical to the row alone and
// to any split of the weight rows; a reordered sum told apart; the block
// layouts decoded as GGUF defines them; and a quantize/dequantize round trip
// within each format's step.
#include "node/engine/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "storage/dtype.h"
#include "storage/quants.h"

namespace strata {
namespace {

const WeightType kAllTypes[] = {WeightType::kF32,  WeightType::kBF16, WeightType::kQ8_0, WeightType::kQ4_0,
                                WeightType::kQ4_1, WeightType::kQ5_0, WeightType::kQ5_1, WeightType::kQ4_K,
                                WeightType::kQ5_K, WeightType::kQ6_K};

std::vector<float> Normal(size_t n, std::mt19937& rng, float std = 1.0f) {
  std::normal_distribution<float> dist(0.0f, std);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A random weight matrix of `type`, stored.
std::vector<uint8_t> Weights(WeightType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::vector<uint8_t> w(RowBytes(type, cols) * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    auto x = Normal(static_cast<size_t>(cols), rng, 0.05f);
    QuantizeRow(type, x.data(), cols, w.data() + RowBytes(type, cols) * static_cast<size_t>(r));
  }
  return w;
}

// Activation rows as the compute dtype holds them: bf16 for BF16 weights, else f32.
struct Input {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  InputRows rows;
};
Input Activations(WeightType type, int64_t n, int64_t cols, std::mt19937& rng) {
  Input in;
  in.f32 = Normal(static_cast<size_t>(n * cols), rng);
  in.rows.n = n;
  in.rows.cols = cols;
  if (type == WeightType::kBF16) {
    for (float v : in.f32) in.bf16.push_back(FloatToBf16(v));
    in.rows.bf16 = true;
    in.rows.data = in.bf16.data();
  } else {
    in.rows.data = in.f32.data();
  }
  return in;
}

// The exact dot of the stored weight row with the activation row as the
// kernel sees it (quantized per block for quantized weights), in double;
// *magnitude = sum |w x|, the scale of the rounding error.
double Reference(WeightType type, const uint8_t* wrow, const InputRows& x, int64_t b, int64_t cols, double* magnitude) {
  std::vector<float> w(static_cast<size_t>(cols)), a(static_cast<size_t>(cols));
  DequantizeRow(type, wrow, cols, w.data());
  std::vector<uint8_t> storage;
  InputRows one = x;
  one.n = 1;
  one.data = x.bf16 ? static_cast<const void*>(static_cast<const uint16_t*>(x.data) + b * cols)
                    : static_cast<const void*>(static_cast<const float*>(x.data) + b * cols);
  const ActForm form = !IsQuantized(type) ? ActForm::kF32 : BlockElements(type) == 32 ? ActForm::kQ8_0 : ActForm::kQ8_K;
  const ActRows act = PrepareActivations(form, one, &storage);
  if (form == ActForm::kQ8_0) {
    const auto* q = reinterpret_cast<const ActQ8_0*>(act.data);
    for (int64_t i = 0; i < cols; ++i) a[static_cast<size_t>(i)] = q[i / 32].d * q[i / 32].qs[i % 32];
  } else if (form == ActForm::kQ8_K) {
    const auto* q = reinterpret_cast<const ActQ8_K*>(act.data);
    for (int64_t i = 0; i < cols; ++i) a[static_cast<size_t>(i)] = q[i / 256].d * q[i / 256].qs[i % 256];
  } else {
    std::memcpy(a.data(), act.data, static_cast<size_t>(cols) * 4);
  }
  double sum = 0, mag = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    sum += static_cast<double>(w[i]) * a[i];
    mag += std::fabs(static_cast<double>(w[i]) * a[i]);
  }
  *magnitude = mag;
  return sum;
}

std::vector<int64_t> TailShapes(WeightType type) {
  if (!IsQuantized(type)) return {1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 160, 2048 + 96 + 7};
  if (BlockElements(type) == 32) return {32, 64, 96, 128, 160, 2048 + 96};
  return {256, 512, 768, 2048 + 256};
}

TEST(MatmulTest, EveryPathMatchesTheReferenceForEveryTail) {
  const CpuFeatures cpu = CpuFeatures::Probe();
  std::cout << "cpu: " << cpu.ToString() << "\n";
  std::mt19937 rng(3);
  for (WeightType type : kAllTypes) {
    const auto paths = KernelPaths(type, cpu);
    std::string names;
    for (const auto& p : paths) names += std::string(" ") + p.name;
    std::cout << "paths checked for " << WeightTypeName(type) << ":" << names << "\n";
    for (int64_t cols : TailShapes(type)) {
      for (int64_t n : {1, 6}) {  // decode's row streams, and a batch's tiles
        const int64_t rows = 9;
        auto w = Weights(type, rows, cols, rng);
        const WeightMatrix m{type, w.data(), rows, cols};
        Input in = Activations(type, n, cols, rng);
        for (const KernelPath& path : paths) {
          std::vector<float> out(static_cast<size_t>(n * rows));
          MatRows(path, m, in.rows, 0, rows, out.data(), rows);
          for (int64_t b = 0; b < n; ++b) {
            for (int64_t r = 0; r < rows; ++r) {
              double mag;
              const double ref = Reference(type, m.row(r), in.rows, b, cols, &mag);
              EXPECT_NEAR(out[static_cast<size_t>(b * rows + r)], ref, 2e-5 * mag + 1e-30)
                  << WeightTypeName(type) << " path " << path.name << " cols " << cols << " row " << r << " act " << b;
            }
          }
        }
      }
    }
  }
}

// The paths a CPU with these features must have built: nothing skips quietly.
TEST(MatmulTest, ThePathsTheCpuCanRunAreAllThere) {
  const CpuFeatures cpu = CpuFeatures::Probe();
  for (WeightType type : kAllTypes) {
    std::vector<std::string> names;
    for (const auto& p : KernelPaths(type, cpu)) names.push_back(p.name);
    auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    EXPECT_TRUE(has("scalar"));
    const bool avx2 = cpu.avx2 && cpu.fma && cpu.f16c, avx512 = cpu.avx512f && cpu.avx512bw && cpu.avx512vl;
    EXPECT_EQ(has("avx2"), avx2) << WeightTypeName(type);
    EXPECT_EQ(has("avx512"), avx512 && cpu.fma && !IsQuantized(type)) << WeightTypeName(type);
    EXPECT_EQ(has("avx512-bf16"), avx512 && cpu.fma && cpu.avx512bf16 && type == WeightType::kBF16);
    EXPECT_EQ(has("avx2-vnni"), avx2 && cpu.avx512vnni && cpu.avx512vl && IsQuantized(type)) << WeightTypeName(type);
    const bool wide_int = type == WeightType::kQ8_0 || type == WeightType::kQ4_K || type == WeightType::kQ5_K ||
                          type == WeightType::kQ6_K;
    EXPECT_EQ(has("avx512-vnni"), avx2 && avx512 && cpu.avx512vnni && wide_int) << WeightTypeName(type);
    // The OS saves the tile state (the probe's xgetbv), so Linux grants it on request.
    const bool amx = cpu.amx_tile && avx512;
    EXPECT_EQ(has("amx-bf16"), amx && cpu.amx_bf16 && type == WeightType::kBF16);
    EXPECT_EQ(has("amx-int8"), amx && cpu.amx_int8 && cpu.avx512vnni && cpu.fma && cpu.f16c &&
                                      (type == WeightType::kQ4_K || type == WeightType::kQ6_K));
  }
}

// The integer paths of one format give the same bits on every CPU: their
// int32 lanes are exact and their f32 steps the same, so a cluster of
// AVX2 and AVX-512 machines splits a quantized model as one machine runs it.
TEST(MatmulTest, TheQuantizedPathsGiveTheSameBitsOnEveryCpu) {
  const CpuFeatures cpu = CpuFeatures::Probe();
  std::mt19937 rng(11);
  for (WeightType type : kAllTypes) {
    if (!IsQuantized(type)) continue;
    for (int64_t cols : TailShapes(type)) {
      const int64_t rows = 7;
      auto w = Weights(type, rows, cols, rng);
      const WeightMatrix m{type, w.data(), rows, cols};
      for (int64_t n : {1, 3, 6, 19}) {  // 6: Q4_K's AMX tiles (more than four rows); 19: Q6_K's too
        Input in = Activations(type, n, cols, rng);
        std::vector<float> first;
        std::string first_name;
        for (const KernelPath& path : KernelPaths(type, cpu)) {
          if (std::string(path.name) == "scalar") continue;
          std::vector<float> out(static_cast<size_t>(n * rows));
          MatRows(path, m, in.rows, 0, rows, out.data(), rows);
          if (first.empty()) {
            first = out, first_name = path.name;
            continue;
          }
          EXPECT_EQ(std::memcmp(first.data(), out.data(), out.size() * 4), 0)
              << WeightTypeName(type) << ": " << path.name << " and " << first_name << " cols " << cols << " batch " << n;
        }
      }
    }
  }
}

TEST(MatmulTest, BatchedRowsAndRowSplitsEqualEachRowAloneBitForBit) {
  const CpuFeatures cpu = CpuFeatures::Probe();
  std::mt19937 rng(5);
  for (WeightType type : kAllTypes) {
    // Enough rows for the float GEMM's blocks of sixteen four-row tiles, a
    // partial block and a partial tile; and for the quantized batches' groups
    // of weight rows (64 KiB of them on AVX2): two groups and a partial one.
    // Quantized rows long enough that the AVX2 batches take their columns in
    // blocks (16 KiB of four activation rows) with a partial last block, and
    // for the 32-element formats an odd number of blocks (a half pair last).
    const int64_t cols = IsQuantized(type) ? 4352 + BlockElements(type) : 2048 + 96 + 5;
    const int64_t rows = 75;
    auto w = Weights(type, rows, cols, rng);
    const WeightMatrix m{type, w.data(), rows, cols};
    for (const KernelPath& path : KernelPaths(type, cpu)) {
      for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 13, 37, 64}) {
        Input in = Activations(type, n, cols, rng);
        std::vector<float> together(static_cast<size_t>(n * rows));
        // The rows split unevenly, as threads take them.
        MatRows(path, m, in.rows, 0, 5, together.data(), rows);
        MatRows(path, m, in.rows, 5, rows, together.data(), rows);
        for (int64_t b = 0; b < n; ++b) {
          InputRows one = in.rows;
          one.n = 1;
          one.data = in.rows.bf16 ? static_cast<const void*>(in.bf16.data() + b * cols)
                                  : static_cast<const void*>(in.f32.data() + b * cols);
          std::vector<float> alone(static_cast<size_t>(rows));
          MatRows(path, m, one, 0, rows, alone.data(), rows);
          EXPECT_EQ(std::memcmp(alone.data(), together.data() + b * rows, alone.size() * 4), 0)
              << WeightTypeName(type) << " path " << path.name << " batch " << n << " row " << b;
        }
      }
    }
  }
}

// A path's many_rows (short rows eight or sixteen at a time: attention's
// keys against a query) gives fn's bits for every row count and width; the
// AVX2 and AVX-512 F32 and widened-BF16 paths have one.
TEST(MatmulTest, ManyShortRowsGiveTheBitsOfOneRowAtATime) {
  const CpuFeatures cpu = CpuFeatures::Probe();
  std::mt19937 rng(12);
  int checked = 0;
  for (WeightType type : {WeightType::kF32, WeightType::kBF16}) {
    for (int64_t cols : {1, 5, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80, 127, 128, 129, 200}) {
      const int64_t rows = 53;
      auto w = Weights(type, rows, cols, rng);
      const WeightMatrix m{type, w.data(), rows, cols};
      const std::vector<float> q = Normal(static_cast<size_t>(cols), rng);
      const ActRows x{ActForm::kF32, reinterpret_cast<const uint8_t*>(q.data()), static_cast<size_t>(cols) * 4, 1, cols};
      for (const KernelPath& path : KernelPaths(type, cpu)) {
        if (path.many_rows == nullptr || path.form != ActForm::kF32) continue;
        ++checked;
        std::vector<float> one(static_cast<size_t>(rows)), many(static_cast<size_t>(rows), -1.0f);
        path.fn(m, x, 0, rows, one.data(), rows);
        for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {3, 19}, {20, 21}, {21, 37}}) {
          path.many_rows(m, x, r0, r1, many.data(), rows);
          EXPECT_EQ(std::memcmp(one.data() + r0, many.data() + r0, static_cast<size_t>(r1 - r0) * 4), 0)
              << WeightTypeName(type) << " path " << path.name << " cols " << cols << " rows [" << r0 << ", " << r1 << ")";
        }
      }
    }
  }
  int want = 0;  // the avx2 and avx512 F32 and BF16 paths each have one
  if (cpu.avx2 && cpu.fma && cpu.f16c) want += 2 * 17;
  if (cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.fma) want += 2 * 17;
  EXPECT_EQ(checked, want);
  std::printf("[ many_rows ] checked %d path x width cases on this CPU\n", checked);
}

// The comparisons above use memcmp on f32 dots: a kernel that summed in
// another order would be seen. A sequential sum of the same products (one
// other order) differs from each vector path's bits on most dots.
TEST(MatmulTest, AReorderedSumIsToldApart) {
  const CpuFeatures cpu = CpuFeatures::Probe();
  std::mt19937 rng(9);
  for (WeightType type : {WeightType::kF32, WeightType::kBF16}) {
    const int64_t cols = 4096 + 32, rows = 16;
    auto w = Weights(type, rows, cols, rng);
    const WeightMatrix m{type, w.data(), rows, cols};
    Input in = Activations(type, 1, cols, rng);
    for (const KernelPath& path : KernelPaths(type, cpu)) {
      if (std::string(path.name) == "scalar") continue;  // the scalar path is the sequential sum
      std::vector<float> out(static_cast<size_t>(rows));
      MatRows(path, m, in.rows, 0, rows, out.data(), rows);
      int differs = 0;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> wf(static_cast<size_t>(cols));
        DequantizeRow(type, m.row(r), cols, wf.data());
        float sequential = 0;
        for (int64_t i = 0; i < cols; ++i) {
          const float a = in.rows.bf16 ? Bf16ToFloat(in.bf16[static_cast<size_t>(i)]) : in.f32[static_cast<size_t>(i)];
          sequential += wf[static_cast<size_t>(i)] * a;
        }
        differs += std::memcmp(&sequential, &out[static_cast<size_t>(r)], 4) != 0;
      }
      EXPECT_GT(differs, rows / 2) << path.name << ": a sequential sum matched the kernel's bits";
    }
  }
}

// The inline row sizes the kernels use are the block tables' sizes.
TEST(MatmulTest, InlineRowBytesAreTheBlockTablesRowBytes) {
  for (WeightType type : kAllTypes) {
    for (int64_t blocks : {1, 3, 8}) {
      const int64_t cols = blocks * BlockElements(type) * (IsQuantized(type) ? 1 : 7);
      EXPECT_EQ(RowBytes(type, cols), BlockRowBytes(type, cols)) << WeightTypeName(type);
    }
  }
}

// Block layouts as GGUF defines them, from hand-made bytes.
TEST(MatmulTest, BlockLayoutsDecodeAsGgufDefinesThem) {
  BlockQ4_0 q4{};
  q4.d = FloatToF16(0.5f);
  q4.qs[0] = 0x21;  // element 0: 1 - 8; element 16: 2 - 8
  q4.qs[15] = 0xF0;
  float out[256];
  DequantizeRow(WeightType::kQ4_0, reinterpret_cast<uint8_t*>(&q4), 32, out);
  EXPECT_EQ(out[0], -3.5f);
  EXPECT_EQ(out[16], -3.0f);
  EXPECT_EQ(out[15], -4.0f);
  EXPECT_EQ(out[31], 3.5f);

  BlockQ4_K k{};
  k.d = FloatToF16(1.0f);
  k.dmin = FloatToF16(0.25f);
  // Sub-block 5: scale 0x2A = 42 (low 4 bits in scales[9], high 2 in scales[1] bits 6-7), min 0x13 = 19.
  k.scales[9] = 0x3A;          // low nibble: scale's 0xA, high nibble: min's 0x3
  k.scales[1] = 0x80;          // scale's high bits 0b10
  k.scales[5] = 0x40;          // min's high bits 0b01
  k.qs[32 * 2 + 3] = 0x70;     // chunk 2, byte 3: high nibble 7 is sub-block 5, element 3
  DequantizeRow(WeightType::kQ4_K, reinterpret_cast<uint8_t*>(&k), 256, out);
  EXPECT_EQ(out[32 * 5 + 3], 42.0f * 7 - 0.25f * 19);
  EXPECT_EQ(out[32 * 5 + 4], -0.25f * 19);

  BlockQ6_K s{};
  s.d = FloatToF16(2.0f);
  for (int j = 0; j < 16; ++j) s.scales[j] = static_cast<int8_t>(j - 8);
  s.ql[64 + 32 + 5] = 0x9F;    // second half, byte 32+5: low nibble element 128+32+5, high nibble 128+96+5
  s.qh[32 + 5] = 0xC4;         // bits 2-3: 1 (element 128+32+5), bits 6-7: 3 (element 128+96+5)
  DequantizeRow(WeightType::kQ6_K, reinterpret_cast<uint8_t*>(&s), 256, out);
  EXPECT_EQ(out[128 + 32 + 5], 2.0f * ((128 + 32 + 5) / 16 - 8) * ((0xF | (1 << 4)) - 32));
  EXPECT_EQ(out[128 + 96 + 5], 2.0f * ((128 + 96 + 5) / 16 - 8) * ((0x9 | (3 << 4)) - 32));
  EXPECT_EQ(out[0], 2.0f * (0 - 8) * (0 - 32));

  BlockQ5_1 f{};
  f.d = FloatToF16(0.5f);
  f.m = FloatToF16(-1.0f);
  f.qs[2] = 0x3C;              // element 2: 0xC, element 18: 0x3
  f.qh[2] = 0x04;              // bit 18: element 18's fifth bit
  DequantizeRow(WeightType::kQ5_1, reinterpret_cast<uint8_t*>(&f), 32, out);
  EXPECT_EQ(out[2], 0.5f * 12 - 1.0f);
  EXPECT_EQ(out[18], 0.5f * (3 + 16) - 1.0f);
  BlockQ5_0 z{};
  z.d = FloatToF16(1.0f);
  z.qh[0] = 0x01;              // element 0: level 16 + 0
  DequantizeRow(WeightType::kQ5_0, reinterpret_cast<uint8_t*>(&z), 32, out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], -16.0f);
}

TEST(MatmulTest, QuantizeDequantizeStaysWithinEachFormatsStep) {
  std::mt19937 rng(13);
  const int64_t cols = 1024;
  auto x = Normal(static_cast<size_t>(cols), rng);
  const std::pair<WeightType, double> bounds[] = {{WeightType::kBF16, 0.01}, {WeightType::kQ8_0, 0.02},
                                                  {WeightType::kQ4_0, 0.35}, {WeightType::kQ4_1, 0.35},
                                                  {WeightType::kQ5_0, 0.18}, {WeightType::kQ5_1, 0.18},
                                                  {WeightType::kQ4_K, 0.35},
                                                  {WeightType::kQ5_K, 0.18}, {WeightType::kQ6_K, 0.1}};
  for (const auto& [type, bound] : bounds) {
    std::vector<uint8_t> q(RowBytes(type, cols));
    QuantizeRow(type, x.data(), cols, q.data());
    std::vector<float> back(static_cast<size_t>(cols));
    DequantizeRow(type, q.data(), cols, back.data());
    double worst = 0, sq = 0;
    for (int64_t i = 0; i < cols; ++i) {
      worst = std::max(worst, std::fabs(static_cast<double>(back[i]) - x[i]));
      sq += (back[i] - x[i]) * (back[i] - x[i]);
    }
    EXPECT_LT(worst, bound) << WeightTypeName(type);
    EXPECT_LT(std::sqrt(sq / cols), bound / 3) << WeightTypeName(type);
  }
}

TEST(MatmulTest, KernelsChooseTheBestPathUnderACap) {
  const CpuFeatures cpu = CpuFeatures::Probe();
  Kernels scalar, avx2, best;
  ASSERT_TRUE(Kernels::Choose(cpu, "scalar", &scalar));
  ASSERT_TRUE(Kernels::Choose(cpu, "avx2", &avx2));
  ASSERT_TRUE(Kernels::Choose(cpu, "auto", &best));
  Kernels unknown;
  EXPECT_FALSE(Kernels::Choose(cpu, "sse9", &unknown));
  for (WeightType type : kAllTypes) {
    EXPECT_STREQ(scalar.For(type).name, "scalar");
    EXPECT_LE(avx2.For(type).level, 1);
    EXPECT_STREQ(best.For(type).name, KernelPaths(type, cpu).back().name);
  }
  EXPECT_NE(best.Describe().find("q4_k:"), std::string::npos);
  // Under any cap, F32 and BF16 weights have a path for f32 activation rows (attention's queries).
  for (const Kernels* k : {&scalar, &avx2, &best}) {
    for (WeightType type : {WeightType::kF32, WeightType::kBF16}) {
      ASSERT_NE(k->ForF32Rows(type).fn, nullptr) << WeightTypeName(type);
      EXPECT_EQ(k->ForF32Rows(type).form, ActForm::kF32);
    }
  }
}

// The engine quantizes a prompt chunk's rows on its pool, in ranges: any
// ranges, in any order, give the bytes of all rows on the caller.
TEST(MatmulTest, ActivationRowsPreparedInRangesAreTheRowsPreparedAtOnce) {
  std::mt19937 rng(7);
  const int64_t n = 19, cols = 512;
  const Input in = Activations(WeightType::kF32, n, cols, rng);
  const ParallelRows backwards_in_threes = [](int64_t rows, const std::function<void(int64_t, int64_t)>& body) {
    for (int64_t b1 = rows; b1 > 0; b1 -= 3) body(std::max<int64_t>(0, b1 - 3), b1);
  };
  for (int f = 0; f < kActForms; ++f) {
    const auto form = static_cast<ActForm>(f);
    std::vector<uint8_t> whole, ranged;
    const ActRows a = PrepareActivations(form, in.rows, &whole);
    const ActRows b = PrepareActivations(form, in.rows, &ranged, backwards_in_threes);
    ASSERT_EQ(a.row_bytes, b.row_bytes);
    EXPECT_EQ(0, std::memcmp(a.data, b.data, a.row_bytes * static_cast<size_t>(n))) << "form " << f;
    EXPECT_EQ(whole, ranged) << "form " << f;  // the AMX forms' packed tiles too
  }
}

// Activation quantization rounds as std::nearbyint does (to nearest,
// ties to even) on ties, near-ties and both signs: amax 127 makes the
// scale exactly 1, so each q is the rounded input.
TEST(MatmulTest, ActivationQuantizationRoundsTiesToEven) {
  std::vector<float> x(kQKK);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> any(-127.0f, 127.0f);
  for (int i = 0; i < kQKK; ++i) {
    const float tie = static_cast<float>(i % 64) - 31.5f;  // -31.5 .. 31.5, every one a tie
    x[static_cast<size_t>(i)] = i % 4 == 0 ? any(rng) : i % 4 == 1 ? tie : i % 4 == 2 ? std::nextafter(tie, 0.0f) : -tie;
  }
  x[0] = 127.0f;
  ActQ8_K k{};
  QuantizeActQ8_K(x.data(), kQKK, &k);
  ASSERT_EQ(k.d, 1.0f);
  std::vector<ActQ8_0> b(kQKK / kQK8_0);
  QuantizeActQ8_0(x.data(), kQKK, b.data());
  for (int i = 0; i < kQKK; ++i) {
    const int want = static_cast<int>(std::nearbyint(x[static_cast<size_t>(i)]));
    EXPECT_EQ(k.qs[i], want) << "x = " << x[static_cast<size_t>(i)];
    if (b[static_cast<size_t>(i / kQK8_0)].d == 1.0f) {
      EXPECT_EQ(b[static_cast<size_t>(i / kQK8_0)].qs[i % kQK8_0], want);
    }
  }
  EXPECT_EQ(k.qs[1], -30);  // -30.5 to the even -30, not away from zero to -31 ...
  EXPECT_EQ(k.qs[5], -26);  // ... -26.5 to -26
  EXPECT_EQ(k.qs[13], -18);  // -18.5 to -18
}

// Rows whose quantization has edges: ties, zeros, NaN, infinities, values
// so small that 127 / amax overflows, and plain random rows.
std::vector<std::vector<float>> QuantizerRows(std::mt19937& rng) {
  const int64_t cols = 4 * kQKK;
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < 3; ++r) rows.push_back(Normal(static_cast<size_t>(cols), rng, r == 0 ? 1.0f : r == 1 ? 1e-3f : 1e4f));
  std::vector<float> edges = Normal(static_cast<size_t>(cols), rng);
  for (int64_t i = 0; i < 32; ++i) edges[static_cast<size_t>(i)] = 0.0f;                  // an all-zero block
  for (int64_t i = 32; i < 64; ++i) edges[static_cast<size_t>(i)] = static_cast<float>(i % 64) - 47.5f;  // ties
  edges[70] = std::nanf("");                                                              // NaN beside finite values
  edges[100] = std::numeric_limits<float>::infinity();
  edges[300] = -std::numeric_limits<float>::infinity();
  for (int64_t i = 512; i < 544; ++i) edges[static_cast<size_t>(i)] = i % 3 == 0 ? 1e-40f : -2e-45f;  // denormals
  rows.push_back(edges);
  return rows;
}

TEST(MatmulTest, ActivationQuantizersOnAvx2GiveTheScalarBits) {
  if (!CpuFeatures::Probe().avx2) {
    std::cout << "this CPU has no AVX2: the scalar quantizers are the only ones, nothing to compare\n";
    return;
  }
  std::mt19937 rng(21);
  for (const std::vector<float>& x : QuantizerRows(rng)) {
    const int64_t cols = static_cast<int64_t>(x.size());
    std::vector<ActQ8_0> want0(static_cast<size_t>(cols / kQK8_0)), got0(want0.size());
    std::memset(got0.data(), 0x5a, got0.size() * sizeof(ActQ8_0));
    QuantizeActQ8_0(x.data(), cols, want0.data());
    kernels::QuantizeActQ8_0Avx2(x.data(), cols, got0.data());
    for (size_t i = 0; i < want0.size(); ++i) {
      EXPECT_EQ(0, std::memcmp(&want0[i], &got0[i], sizeof(ActQ8_0))) << "Q8_0 block " << i;
    }
    std::vector<ActQ8_K> wantk(static_cast<size_t>(cols / kQKK)), gotk(wantk.size());
    std::memset(wantk.data(), 0, wantk.size() * sizeof(ActQ8_K));  // padding compared too
    std::memset(gotk.data(), 0, gotk.size() * sizeof(ActQ8_K));
    QuantizeActQ8_K(x.data(), cols, wantk.data());
    kernels::QuantizeActQ8_KAvx2(x.data(), cols, gotk.data());
    for (size_t i = 0; i < wantk.size(); ++i) {
      EXPECT_EQ(0, std::memcmp(&wantk[i], &gotk[i], sizeof(ActQ8_K))) << "Q8_K block " << i;
    }
  }
}

}  // namespace
}  // namespace strata
