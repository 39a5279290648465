#pragma once
// SplitMix64 (Steele, Lea and Flood, 2014), Strata's one PRNG: test models'
// weights, the trainer's batches and seeded sampling. Tiny, fast, and the
// same stream on every platform, so a seed means the same thing everywhere.
// Thread-compatible: one SplitMix64 per thread.
#include <cstdint>

namespace strata {

inline constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;

// The output function: a well-mixed word from any 64 bits.
inline uint64_t SplitMixMix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct SplitMix64 {
  uint64_t state;
  uint64_t Next() { return SplitMixMix(state += kSplitMixGamma); }
  // In (0, 1): 53 random bits, centred in their interval.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
};

}  // namespace strata
