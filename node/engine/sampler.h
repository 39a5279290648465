#pragma once
// Token sampling at the last stage: greedy, temperature, top-k, top-p. The
// randomness of a draw is a function of (seed, position) alone, not a stream
// shared across steps: a seeded request gives the same tokens whatever other
// requests share its batch, however its prompt was chunked, and whether or
// not it was resumed.
// Thread-safe: no mutable state.
#include <cstdint>
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
  explicit Sampler(const SamplingOptions& options) : options_(options) {}

  // logits: [vocab], for the token at `position` of the sequence. Greedy
  // picks the lowest index among equal maxima.
  int32_t Sample(const std::vector<float>& logits, uint64_t position) const;

  // The draw for (seed, position): 53 uniform bits in [0, 1).
  static double Uniform(uint64_t seed, uint64_t position);

 private:
  // Sample without top-k or top-p: no sort needed.
  int32_t SampleFull(const std::vector<float>& logits, uint64_t position) const;
  SamplingOptions options_;
};

}  // namespace strata
