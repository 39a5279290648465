// strata-gemv-roof: what batching can gain on this CPU. Times the decode
// kernel over one weight matrix of the 1.1B shape ([5632, 2048] BF16) for
// 1 activation row and for batches of B rows, on the calling thread, and
// prints per-row time and the ideal speedup of a batch of B over B single
// rows: the limit that a server's throughput at concurrency B is measured
// against. Rows are split across --threads threads (default: every core),
// as the node splits them (OpenMP). Single rows are bound by memory bandwidth; batches by the dot
// throughput of the cores (AVX512-BF16).
// usage: strata-gemv-roof [--rows R] [--cols C] [--threads T]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include <omp.h>
#include <vector>

#include "node/engine/bf16_gemv.h"

namespace {

double Best(int reps, const std::function<void()>& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// f(begin, end) over [0, rows) split across `threads` OpenMP threads, as
// the node's at::parallel_for splits them (a pool that persists between
// calls: spawning threads per call would cost more than a single row).
void Split(int threads, int64_t rows, const std::function<void(int64_t, int64_t)>& f) {
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t per = (rows + n - 1) / n;
    const int64_t begin = std::min(rows, t * per), end = std::min(rows, begin + per);
    if (begin < end) f(begin, end);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 5632, cols = 2048;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("usage: strata-gemv-roof [--rows R] [--cols C] [--threads T]\n"
                  "Times the BF16 decode kernel for batches of 1..64 rows; prints JSON.\n");
      return 0;
    }
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) rows = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--cols") && i + 1 < argc) cols = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "strata-gemv-roof: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (!strata::Bf16GemvAvailable()) {
    std::fprintf(stderr, "strata-gemv-roof: this CPU has no AVX512-BF16\n");
    return 1;
  }
  if (rows <= 0 || cols <= 0 || cols % 32 != 0) {
    std::fprintf(stderr, "strata-gemv-roof: --cols must be a positive multiple of 32\n");
    return 2;
  }
  // Several matrices, so the single-row case reads from memory, not cache.
  const int kCopies = 8;
  std::mt19937 rng(1);
  std::vector<std::vector<uint16_t>> w(kCopies, std::vector<uint16_t>(static_cast<size_t>(rows * cols)));
  for (auto& m : w)
    for (auto& v : m) v = static_cast<uint16_t>(0x3c00 + (rng() & 0x3ff));
  std::vector<uint16_t> x(static_cast<size_t>(64 * cols), 0x3f80), y(static_cast<size_t>(64 * rows));
  int copy = 0;
  const double one = Best(20, [&]() {
    const uint16_t* m = w[copy++ % kCopies].data();
    Split(threads, rows, [&](int64_t b, int64_t e) { strata::Bf16GemvRows(m, x.data(), nullptr, y.data(), cols, b, e); });
  });
  std::printf("{\"threads\": %d, \"rows\": %lld, \"cols\": %lld, \"single_row_ms\": %.3f, \"single_row_gbps\": %.1f, \"batches\": [",
              threads, static_cast<long long>(rows), static_cast<long long>(cols), one * 1e3, rows * cols * 2 / one / 1e9);
  const int sizes[] = {4, 8, 16, 32, 64};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; ++k) {
    const int b = sizes[k];
    const double t = Best(10, [&]() {
      const uint16_t* m = w[copy++ % kCopies].data();
      Split(threads, rows, [&](int64_t r0, int64_t r1) {
        strata::Bf16GemvBatchRows(m, x.data(), b, nullptr, y.data(), rows, cols, r0, r1);
      });
    });
    std::printf("%s{\"batch\": %d, \"ms\": %.3f, \"gmac_per_s\": %.1f, \"ideal_speedup\": %.2f}", k ? ", " : "", b,
                t * 1e3, rows * cols * b / t / 1e9, one * b / t);
  }
  std::printf("]}\n");
  return 0;
}
