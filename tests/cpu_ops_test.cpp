// The CPU inference ops (node/engine/cpu_ops) against double-precision
// references: RMSNorm, SwiGLU, and causal grouped-query attention of
// several new positions over a cache, in F32 and BF16.
#include "node/engine/cpu_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "storage/dtype.h"

namespace strata {
namespace {

std::vector<float> Normal(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Values as the compute dtype holds them, and its bytes.
struct Buf {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  bool is_bf16;
  Buf(std::vector<float> v, bool b) : is_bf16(b) {
    if (b) {
      for (float& x : v) x = Bf16ToFloat(FloatToBf16(x));
      for (float x : v) bf16.push_back(FloatToBf16(x));
    }
    f32 = std::move(v);
  }
  void* data() { return is_bf16 ? static_cast<void*>(bf16.data()) : static_cast<void*>(f32.data()); }
  float at(size_t i) const { return is_bf16 ? Bf16ToFloat(bf16[i]) : f32[i]; }
};

TEST(CpuOpsTest, RmsNormAndSwiGluMatchTheirDefinitions) {
  std::mt19937 rng(1);
  for (bool bf16 : {false, true}) {
    const int64_t n = 3, cols = 96;
    Buf x(Normal(n * cols, rng), bf16), w(Normal(cols, rng), bf16), out(std::vector<float>(n * cols), bf16);
    RmsNormRows(x.data(), w.data(), out.data(), n, cols, 1e-5, bf16);
    for (int64_t r = 0; r < n; ++r) {
      double ss = 0;
      for (int64_t j = 0; j < cols; ++j) ss += double(x.at(r * cols + j)) * x.at(r * cols + j);
      const double inv = 1 / std::sqrt(ss / cols + 1e-5);
      for (int64_t j = 0; j < cols; ++j) {
        const double want = x.at(r * cols + j) * inv * w.at(j);
        EXPECT_NEAR(out.at(r * cols + j), want, (bf16 ? 1.6e-2 : 1e-5) * (std::fabs(want) + 1e-3)) << r << "," << j;
      }
    }
    const int64_t inter = 40;
    Buf gu(Normal(n * 2 * inter, rng), bf16), act(std::vector<float>(n * inter), bf16);
    SwiGluRows(gu.data(), act.data(), n, inter, bf16);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t j = 0; j < inter; ++j) {
        const double g = gu.at(r * 2 * inter + j), u = gu.at(r * 2 * inter + inter + j);
        const double want = g / (1 + std::exp(-g)) * u;
        EXPECT_NEAR(act.at(r * inter + j), want, (bf16 ? 1.6e-2 : 1e-5) * (std::fabs(want) + 1e-3));
      }
    }
  }
}

TEST(CpuOpsTest, AttentionIsCausalGroupedAndRotated) {
  std::mt19937 rng(2);
  for (bool bf16 : {false, true}) {
    const int64_t nh = 4, nkv = 2, hd = 16, start = 5, T = 3, cap = 12, width = (nh + 2 * nkv) * hd;
    Buf qkv(Normal(T * width, rng), bf16);
    Buf k(Normal(nkv * cap * hd, rng), bf16), v(Normal(nkv * cap * hd, rng), bf16);  // positions < start: cached
    Buf out(std::vector<float>(T * nh * hd), bf16);
    std::vector<float> cos(T * hd), sin(T * hd);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < hd; ++j) {
        const double angle = (start + t) * std::pow(10000.0, -2.0 * (j % (hd / 2)) / hd);
        cos[t * hd + j] = static_cast<float>(std::cos(angle));
        sin[t * hd + j] = static_cast<float>(std::sin(angle));
      }
    }
    AttendArgs a;
    a.heads = nh, a.kv_heads = nkv, a.head_dim = hd, a.start = start, a.T = T, a.bf16 = bf16;
    a.qkv = qkv.data(), a.cos = cos.data(), a.sin = sin.data(), a.k = k.data(), a.v = v.data();
    a.head_stride = cap * hd, a.pos_stride = hd, a.out = out.data();
    WriteNewKv(a);
    AttendHeads(a, 0, 2);  // two calls, as two threads would split the heads
    AttendHeads(a, 2, nh);
    auto rope = [&](int64_t t, int64_t off, std::vector<double>& r) {
      r.resize(hd);
      for (int64_t j = 0; j < hd / 2; ++j) {
        const double x1 = qkv.at(t * width + off + j), x2 = qkv.at(t * width + off + j + hd / 2);
        r[j] = x1 * cos[t * hd + j] - x2 * sin[t * hd + j];
        r[j + hd / 2] = x2 * cos[t * hd + j + hd / 2] + x1 * sin[t * hd + j + hd / 2];
      }
    };
    const double tol = bf16 ? 3e-2 : 1e-5;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t g = 0; g < nkv; ++g) {  // the new key went in rotated, the value as it came
        std::vector<double> kr;
        rope(t, (nh + g) * hd, kr);
        for (int64_t j = 0; j < hd; ++j) {
          EXPECT_NEAR(k.at(g * cap * hd + (start + t) * hd + j), kr[j], tol * (std::fabs(kr[j]) + 1e-3));
          EXPECT_EQ(v.at(g * cap * hd + (start + t) * hd + j), qkv.at(t * width + (nh + nkv + g) * hd + j));
        }
      }
      for (int64_t h = 0; h < nh; ++h) {
        const int64_t g = h / (nh / nkv), S = start + t + 1;  // causal: keys up to its own position
        std::vector<double> q;
        rope(t, h * hd, q);
        std::vector<double> p(S);
        double most = -1e300, sum = 0;
        for (int64_t s = 0; s < S; ++s) {
          double dot = 0;
          for (int64_t j = 0; j < hd; ++j) dot += q[j] * k.at(g * cap * hd + s * hd + j);
          p[s] = dot / std::sqrt(double(hd));
          most = std::max(most, p[s]);
        }
        for (auto& x : p) sum += x = std::exp(x - most);
        for (int64_t j = 0; j < hd; ++j) {
          double want = 0;
          for (int64_t s = 0; s < S; ++s) want += p[s] / sum * v.at(g * cap * hd + s * hd + j);
          EXPECT_NEAR(out.at(t * nh * hd + h * hd + j), want, tol * (std::fabs(want) + 1e-2)) << t << " " << h << " " << j;
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata
