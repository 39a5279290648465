// Sampling: greedy, temperature, top-k, top-p; seeded runs repeat exactly.
#include "node/sampler.h"

#include <gtest/gtest.h>

#include <map>

namespace strata {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};

TEST(SamplerTest, GreedyPicksFirstMaximum) {
  Sampler s(SamplingOptions{});
  EXPECT_EQ(s.Sample(kLogits), 1);
}

TEST(SamplerTest, SameSeedSameSequence) {
  SamplingOptions o{1.0f, 0, 1.0f, 1234};
  Sampler a(o), b(o);
  std::vector<int32_t> x, y;
  for (int i = 0; i < 200; ++i) { x.push_back(a.Sample(kLogits)); y.push_back(b.Sample(kLogits)); }
  EXPECT_EQ(x, y);
  Sampler c(SamplingOptions{1.0f, 0, 1.0f, 99});
  std::vector<int32_t> z;
  for (int i = 0; i < 200; ++i) z.push_back(c.Sample(kLogits));
  EXPECT_NE(x, z);
}

TEST(SamplerTest, TopKRestrictsCandidates) {
  Sampler s(SamplingOptions{5.0f, 2, 1.0f, 7});
  for (int i = 0; i < 500; ++i) {
    const int32_t t = s.Sample(kLogits);
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(SamplerTest, TopPKeepsTheNucleus) {
  // Probabilities at T=1: token 0 dominates, so top_p=0.5 keeps only it.
  const std::vector<float> peaked = {5.0f, 1.0f, 1.0f, 0.0f};
  Sampler s(SamplingOptions{1.0f, 0, 0.5f, 3});
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.Sample(peaked), 0);
}

TEST(SamplerTest, TemperatureFollowsTheDistribution) {
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
  Sampler s(SamplingOptions{1.0f, 0, 1.0f, 11});
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += s.Sample(logits) == 1;
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.02);
}

}  // namespace
}  // namespace strata
