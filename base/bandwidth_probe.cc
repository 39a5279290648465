#include "base/bandwidth_probe.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

namespace strata {
namespace {

__attribute__((target("avx2"))) float SumSlice(const float* p, size_t n) {
  __m256 acc[16];
  for (auto& a : acc) a = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    for (int k = 0; k < 16; ++k) acc[k] = _mm256_add_ps(acc[k], _mm256_load_ps(p + i + 8 * k));
  }
  __m256 total = acc[0];
  for (int k = 1; k < 16; ++k) total = _mm256_add_ps(total, acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  float s = 0;
  for (float x : lanes) s += x;
  for (; i < n; ++i) s += p[i];
  return s;
}

}  // namespace

double MemoryReadBandwidth(size_t mib, int threads, int passes, int spread_ms) {
  threads = std::max(1, threads);
  const size_t n = mib * (1u << 20) / sizeof(float);
  float* buf = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  if (buf == nullptr) return 0;
  // Each thread first-touches its own slice (NUMA-local pages).
  const size_t slice = (n / static_cast<size_t>(threads)) & ~size_t{127};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([=]() { for (size_t i = t * slice; i < (t + 1) * slice; ++i) buf[i] = 1.0f; });
  }
  for (auto& th : pool) th.join();
  double best = 0;
  volatile float sink = 0;
  for (int pass = 0; pass < passes; ++pass) {
    // Spread the passes out a little: nodes started together on one machine
    // would otherwise all measure while the others do, and all read low.
    if (pass > 0 && spread_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::rand() % spread_ms));
    }
    pool.clear();
    std::vector<float> sums(static_cast<size_t>(threads));
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t]() { sums[t] = SumSlice(buf + t * slice, slice); });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (float x : sums) sink = sink + x;
    best = std::max(best, static_cast<double>(slice) * threads * sizeof(float) / s / 1e9);
  }
  std::free(buf);
  return best;
}

}  // namespace strata
