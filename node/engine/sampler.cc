#include "node/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/splitmix.h"

namespace strata {

double Sampler::Uniform(uint64_t seed, uint64_t position) {
  // SplitMix64 of the pair: every (seed, position) gets its own well-mixed
  // word, the same on every platform.
  uint64_t z = seed ^ (position * kSplitMixGamma) ^ 0xd1b54a32d192ed03ull;
  for (int round = 0; round < 2; ++round) z = SplitMixMix(z + kSplitMixGamma);
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::SampleFull(const std::vector<float>& logits, uint64_t position) const {
  // Nothing is cut, so no order is needed: the softmax in vocabulary order,
  // in double, and one draw against it. (A sort of the whole vocabulary per
  // token was a tenth of a batched decode's time.)
  const size_t n = logits.size();
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(n);
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    probs[i] = std::exp((logits[i] - top) / options_.temperature);
    total += probs[i];
  }
  const double u = Uniform(options_.seed, position) * total;
  double acc = 0.0;
  size_t last = 0;  // the last candidate with any mass, should rounding leave u past the end
  for (size_t i = 0; i < n; ++i) {
    acc += probs[i];
    if (probs[i] > 0.0) last = i;
    if (u < acc) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last);
}

int32_t Sampler::Sample(const std::vector<float>& logits, uint64_t position) const {
  const int32_t n = static_cast<int32_t>(logits.size());
  if (n == 0) return 0;
  if (options_.temperature <= 0.0f || options_.top_k == 1) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  if (options_.top_k == 0 && options_.top_p >= 1.0f) return SampleFull(logits, position);
  // Candidates sorted by logit (ties by index, so the order is deterministic).
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const uint32_t k = options_.top_k == 0 ? static_cast<uint32_t>(n) : std::min<uint32_t>(options_.top_k, n);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  // The comparator is a total order, so both sorts give the same candidates
  // in the same order; a full sort is ~3x faster than a heap's partial sort
  // when most of the vocabulary is kept (top_k off).
  if (static_cast<uint64_t>(k) * 2 >= static_cast<uint64_t>(n)) {
    std::sort(order.begin(), order.end(), by_logit);
  } else {
    std::partial_sort(order.begin(), order.begin() + k, order.end(), by_logit);
  }
  order.resize(k);
  // Softmax over the candidates at the given temperature, in double.
  std::vector<double> probs(k);
  const double top = logits[order[0]];
  double total = 0.0;
  for (uint32_t i = 0; i < k; ++i) {
    probs[i] = std::exp((logits[order[i]] - top) / options_.temperature);
    total += probs[i];
  }
  // Nucleus: keep the smallest prefix whose mass reaches top_p.
  uint32_t keep = k;
  if (options_.top_p < 1.0f) {
    double mass = 0.0;
    for (uint32_t i = 0; i < k; ++i) {
      mass += probs[i] / total;
      if (mass >= options_.top_p) { keep = i + 1; break; }
    }
  }
  double kept = 0.0;
  for (uint32_t i = 0; i < keep; ++i) kept += probs[i];
  const double u = Uniform(options_.seed, position) * kept;
  double acc = 0.0;
  for (uint32_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

}  // namespace strata
