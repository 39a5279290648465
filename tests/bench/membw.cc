// strata-membw: the machine's memory read bandwidth, the limit that decode
// speed is measured against. Every thread streams its slice of a buffer far
// larger than the caches through sixteen independent AVX2 accumulators: with
// eight, the add latency still throttles a core's loads and the figure read
// about 12% low here (52 vs 59 GB/s), inflating every efficiency divided by it.
// Prints the best of several passes in GB/s, as JSON.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

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

int main(int argc, char** argv) {
  size_t mib = 2048;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int passes = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help") {
      std::printf("usage: strata-membw [--mib N] [--threads N] [--passes N]\n"
                  "Measures memory read bandwidth (GB/s) with N threads over an N-MiB buffer.\n");
      return 0;
    }
    if (i + 1 >= argc) { std::fprintf(stderr, "strata-membw: %s needs a value\n", a.c_str()); return 2; }
    if (a == "--mib") mib = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--threads") threads = std::atoi(argv[++i]);
    else if (a == "--passes") passes = std::atoi(argv[++i]);
    else { std::fprintf(stderr, "strata-membw: unknown option %s\n", a.c_str()); return 2; }
  }
  const size_t n = mib * (1u << 20) / sizeof(float);
  float* buf = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  // Each thread first-touches its own slice (NUMA-local pages).
  std::vector<std::thread> pool;
  const size_t slice = (n / threads) & ~size_t{127};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([=]() { for (size_t i = t * slice; i < (t + 1) * slice; ++i) buf[i] = 1.0f; });
  }
  for (auto& th : pool) th.join();
  double best = 0;
  volatile float sink = 0;
  for (int pass = 0; pass < passes; ++pass) {
    pool.clear();
    std::vector<float> sums(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t]() { sums[t] = SumSlice(buf + t * slice, slice); });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (float x : sums) sink = sink + x;
    best = std::max(best, static_cast<double>(slice) * threads * sizeof(float) / s / 1e9);
  }
  std::printf("{\"read_gb_per_s\": %.3f, \"threads\": %d, \"buffer_mib\": %zu}\n", best, threads, mib);
  std::free(buf);
  return 0;
}
