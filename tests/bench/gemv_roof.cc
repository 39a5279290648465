// strata-gemv-roof: what the kernels reach on this CPU, and what batching
// can gain. Times the kernel of one weight type (node/engine/matmul) over
// one matrix of the 1.1B shape ([5632, 2048] by default) for 1 activation
// row and for batches of B rows, and prints the single row's weight read
// rate (GB/s: decode is bound by memory bandwidth) and each batch's ideal
// speedup over B single rows: the limit that a server's throughput at
// concurrency B is measured against. Rows are split across --threads
// threads (default: every core) as the node splits them (OpenMP).
// usage: strata-gemv-roof [--type T] [--kernels CAP] [--rows R] [--cols C] [--threads T]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include <omp.h>
#include <vector>

#include "node/engine/matmul.h"
#include "storage/quants.h"
#include "storage/dtype.h"

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
  std::string type_name = "bf16", cap = "auto";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("usage: strata-gemv-roof [--type f32|bf16|q8_0|q4_0|q4_k|q5_k|q6_k] [--kernels auto|avx512|avx2|scalar]\n"
                  "                        [--rows R] [--cols C] [--threads T]\n"
                  "Times one weight type's kernel for batches of 1..64 rows; prints JSON.\n");
      return 0;
    }
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) rows = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--cols") && i + 1 < argc) cols = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--type") && i + 1 < argc) type_name = argv[++i];
    else if (!std::strcmp(argv[i], "--kernels") && i + 1 < argc) cap = argv[++i];
    else {
      std::fprintf(stderr, "strata-gemv-roof: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  strata::WeightType type;
  if (!strata::ParseWeightType(type_name, &type)) {
    std::fprintf(stderr, "strata-gemv-roof: unknown --type %s\n", type_name.c_str());
    return 2;
  }
  strata::Kernels kernels;
  if (!strata::Kernels::Choose(strata::CpuFeatures::Probe(), cap, &kernels)) {
    std::fprintf(stderr, "strata-gemv-roof: unknown --kernels %s\n", cap.c_str());
    return 2;
  }
  if (rows <= 0 || cols <= 0 || cols % strata::BlockElements(type) != 0) {
    std::fprintf(stderr, "strata-gemv-roof: --cols must be a positive multiple of %lld for %s\n",
                 static_cast<long long>(strata::BlockElements(type)), type_name.c_str());
    return 2;
  }
  const strata::KernelPath& path = kernels.For(type);
  // Several matrices, so the single-row case reads from memory, not cache.
  const int kCopies = 8;
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  const size_t row_bytes = strata::RowBytes(type, cols);
  std::vector<std::vector<uint8_t>> w(kCopies, std::vector<uint8_t>(row_bytes * static_cast<size_t>(rows)));
  std::vector<float> row(static_cast<size_t>(cols));
  for (auto& m : w) {
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = dist(rng);
      strata::QuantizeRow(type, row.data(), cols, m.data() + row_bytes * static_cast<size_t>(r));
    }
  }
  std::vector<float> xf(static_cast<size_t>(64 * cols));
  for (auto& v : xf) v = dist(rng);
  std::vector<uint16_t> xb(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) xb[i] = strata::FloatToBf16(xf[i]);
  const bool bf16 = type == strata::WeightType::kBF16;
  std::vector<float> y(static_cast<size_t>(64 * rows));
  // What a Linear call does: prepare the activation rows once, split the weight rows.
  auto run = [&](const uint8_t* m, int64_t n) {
    const strata::InputRows in{bf16 ? static_cast<const void*>(xb.data()) : xf.data(), bf16, n, cols};
    std::vector<uint8_t> storage;
    const strata::ActRows act = strata::PrepareActivations(path.form, in, &storage);
    const strata::WeightMatrix wm{type, m, rows, cols};
    Split(threads, rows, [&](int64_t r0, int64_t r1) { path.fn(wm, act, r0, r1, y.data(), rows); });
  };
  int copy = 0;
  const double one = Best(20, [&]() { run(w[copy++ % kCopies].data(), 1); });
  const double bytes = static_cast<double>(row_bytes) * rows;
  std::printf("{\"type\": \"%s\", \"path\": \"%s\", \"threads\": %d, \"rows\": %lld, \"cols\": %lld, "
              "\"single_row_ms\": %.3f, \"single_row_gbps\": %.2f, \"batches\": [",
              type_name.c_str(), path.name, threads, static_cast<long long>(rows), static_cast<long long>(cols), one * 1e3,
              bytes / one / 1e9);
  const int sizes[] = {4, 8, 16, 32, 64};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; ++k) {
    const int b = sizes[k];
    const double t = Best(10, [&]() { run(w[copy++ % kCopies].data(), b); });
    std::printf("%s{\"batch\": %d, \"ms\": %.3f, \"gmac_per_s\": %.1f, \"ideal_speedup\": %.2f}", k ? ", " : "", b,
                t * 1e3, rows * cols * b / t / 1e9, one * b / t);
  }
  std::printf("]}\n");
  return 0;
}
