// Sampling: greedy, temperature, top-k, top-p; seeded runs repeat exactly,
// and a draw depends on (seed, position) only.
#include "node/engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace strata {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};

TEST(SamplerTest, GreedyPicksFirstMaximum) {
  Sampler s(SamplingOptions{});
  EXPECT_EQ(s.Sample(kLogits, 0), 1);
}

TEST(SamplerTest, SameSeedSameSequence) {
  SamplingOptions o{1.0f, 0, 1.0f, 1234};
  Sampler a(o), b(o);
  std::vector<int32_t> x, y;
  for (int i = 0; i < 200; ++i) {
    x.push_back(a.Sample(kLogits, static_cast<uint64_t>(i)));
    y.push_back(b.Sample(kLogits, static_cast<uint64_t>(i)));
  }
  EXPECT_EQ(x, y);
  Sampler c(SamplingOptions{1.0f, 0, 1.0f, 99});
  std::vector<int32_t> z;
  for (int i = 0; i < 200; ++i) z.push_back(c.Sample(kLogits, static_cast<uint64_t>(i)));
  EXPECT_NE(x, z);
}

TEST(SamplerTest, ADrawDependsOnSeedAndPositionOnly) {
  Sampler s(SamplingOptions{1.0f, 0, 1.0f, 5});
  // Whatever was drawn before (other requests, other positions), position 7
  // of seed 5 draws the same.
  const int32_t alone = s.Sample(kLogits, 7);
  for (int i = 0; i < 50; ++i) (void)s.Sample(kLogits, static_cast<uint64_t>(100 + i));
  EXPECT_EQ(s.Sample(kLogits, 7), alone);
  // Neighbouring positions and seeds are not correlated: about half the
  // uniforms of consecutive positions fall on either side of each other.
  int above = 0;
  for (uint64_t p = 0; p < 2000; ++p) above += Sampler::Uniform(5, p + 1) > Sampler::Uniform(5, p);
  EXPECT_NEAR(above / 2000.0, 0.5, 0.05);
  int seeds_above = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) seeds_above += Sampler::Uniform(seed + 1, 3) > Sampler::Uniform(seed, 3);
  EXPECT_NEAR(seeds_above / 2000.0, 0.5, 0.05);
}

TEST(SamplerTest, TopKRestrictsCandidates) {
  Sampler s(SamplingOptions{5.0f, 2, 1.0f, 7});
  for (int i = 0; i < 500; ++i) {
    const int32_t t = s.Sample(kLogits, static_cast<uint64_t>(i));
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(SamplerTest, TopPKeepsTheNucleus) {
  // Probabilities at T=1: token 0 dominates, so top_p=0.5 keeps only it.
  const std::vector<float> peaked = {5.0f, 1.0f, 1.0f, 0.0f};
  Sampler s(SamplingOptions{1.0f, 0, 0.5f, 3});
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.Sample(peaked, static_cast<uint64_t>(i)), 0);
}

TEST(SamplerTest, TemperatureFollowsTheDistribution) {
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
  Sampler s(SamplingOptions{1.0f, 0, 1.0f, 11});
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += s.Sample(logits, static_cast<uint64_t>(i)) == 1;
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.02);
}

// Without top-k or top-p nothing is sorted (the fast path); with a top-k
// that cuts nothing the sorted path runs. Both follow the distribution.
TEST(SamplerTest, UnsortedAndSortedPathsAgreeOnTheDistribution) {
  const std::vector<float> logits = {std::log(6.0f), 0.0f, std::log(3.0f)};  // p = 0.6, 0.1, 0.3
  Sampler fast(SamplingOptions{1.0f, 0, 1.0f, 5}), sorted(SamplingOptions{1.0f, 3, 1.0f, 5});
  const int n = 30000;
  std::vector<int> a(3), b(3);
  for (int i = 0; i < n; ++i) {
    ++a[static_cast<size_t>(fast.Sample(logits, static_cast<uint64_t>(i)))];
    ++b[static_cast<size_t>(sorted.Sample(logits, static_cast<uint64_t>(i)))];
  }
  const double p[3] = {0.6, 0.1, 0.3};
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(static_cast<double>(a[k]) / n, p[k], 0.015) << "unsorted, token " << k;
    EXPECT_NEAR(static_cast<double>(b[k]) / n, p[k], 0.015) << "sorted, token " << k;
  }
}

}  // namespace
}  // namespace strata
