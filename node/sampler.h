#pragma once
// Token sampling at the last stage: greedy, temperature, top-k, top-p, with a
// per-session seeded generator so a seeded run is reproducible.
// Not thread-safe: one Sampler per session, used by the compute thread.
#include <cstdint>
#include <random>
#include <vector>

namespace strata {

struct SamplingOptions {
  float temperature = 0.0f;  // <= 0: greedy
  uint32_t top_k = 0;        // 0: off
  float top_p = 1.0f;        // >= 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

  // logits: [vocab]. Greedy picks the lowest index among equal maxima.
  int32_t Sample(const std::vector<float>& logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace strata
