// strata-gemv-roof: what the kernels reach on this CPU, and what batching
// can gain. Times the kernel of one weight type (node/engine/matmul) over
// one matrix of the 1.1B shape ([5632, 2048] by default) for 1 activation
// row and for batches of B rows, and prints the single row's weight read
// rate (GB/s: decode is bound by memory bandwidth) and each batch's ideal
// speedup over B single rows: the limit that a server's throughput at
// concurrency B is measured against. Rows are split across --threads
// threads (default: every core) as the node splits them (OpenMP).
// With --peak it prints instead the CPU's f32 FMA peak (GFLOP/s on
// --threads threads, registers only, the widest vectors the CPU has): what
// prefill, a matrix-matrix product, is measured against.
#include <CLI/CLI.hpp>
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include <omp.h>
#include <sys/mman.h>
#include <vector>

#include "node/engine/cpu_target.h"
#include "node/engine/matmul.h"
#include "storage/dtype.h"
#include "storage/quants.h"

namespace {

constexpr int kMaxBatch = 256;  // the float GEMM's pass (kMaxPassRows)

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

// FMAs on 12 independent accumulators (enough to cover the FMA latency on
// two ports), `iters` times; returns a value so the loop is not dropped.
STRATA_TARGET_BEGIN("avx512f,fma")
float FmaLoop512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t n = 0; n < iters; ++n)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  for (int i = 1; i < 12; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  return _mm512_reduce_add_ps(acc[0]);
}
STRATA_TARGET_END
STRATA_TARGET_BEGIN("avx2,fma")
float FmaLoop256(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t n = 0; n < iters; ++n)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  for (int i = 1; i < 12; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, acc[0]);
  return lanes[0];
}
STRATA_TARGET_END

int PrintPeak(int threads) {
  const strata::CpuFeatures cpu = strata::CpuFeatures::Probe();
  const bool wide = cpu.avx512f && cpu.fma;
  if (!wide && !(cpu.avx2 && cpu.fma)) {
    std::printf("{\"isa\": \"none\", \"threads\": %d, \"gflops\": null}\n", threads);
    return 0;
  }
  const int lanes = wide ? 16 : 8;
  const int64_t iters = 20000000;
  volatile float sink = 0;
  const double t = Best(3, [&]() {
#pragma omp parallel num_threads(threads)
    { sink = sink + (wide ? FmaLoop512(iters) : FmaLoop256(iters)); }
  });
  const double flops = 2.0 * 12 * lanes * static_cast<double>(iters) * threads;
  std::printf("{\"isa\": \"%s\", \"threads\": %d, \"gflops\": %.1f}\n", wide ? "avx512" : "avx2", threads,
              flops / t / 1e9);
  return 0;
}

struct Flags {
  int64_t rows = 5632, cols = 2048;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string type_name = "bf16", cap = "auto";
  bool peak = false;
  int single_reps = 0;  // 0: every batch size, the single row best of 20
};

void AddFlags(CLI::App& app, Flags* f) {
  app.option_defaults()->always_capture_default();
  app.add_option("--type", f->type_name, "f32 | bf16 | q8_0 | q4_0 | q4_k | q5_k | q6_k");
  app.add_option("--kernels", f->cap, "auto | amx | avx512 | avx2 | scalar");
  app.add_option("--rows", f->rows, "weight rows")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--cols", f->cols, "weight columns")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--threads", f->threads, "threads the rows are split over")->check(CLI::Range(1, 1024));
  app.add_flag("--peak", f->peak, "the CPU's f32 FMA peak on --threads threads instead");
  app.add_option("--single-reps", f->single_reps, "the single row only, best of N runs (to profile a decode kernel)")
      ->check(CLI::Range(1, 1 << 20));
}

// kCopies random matrices of one weight type, on huge pages as a node's
// weights are (node/engine/llama_shard), so the single-row case reads memory.
constexpr int kCopies = 8;
struct Matrices {
  std::vector<std::unique_ptr<uint8_t, decltype(&std::free)>> owned;
  std::vector<uint8_t*> w;
};

bool MakeMatrices(strata::WeightType type, int64_t rows, int64_t cols, std::mt19937& rng, Matrices* out) {
  std::normal_distribution<float> dist(0.0f, 0.05f);
  const size_t row_bytes = strata::RowBytes(type, cols);
  const size_t mat_bytes = row_bytes * static_cast<size_t>(rows);
  const size_t alloc_bytes = (mat_bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int c = 0; c < kCopies; ++c) {
    auto* m = static_cast<uint8_t*>(std::aligned_alloc(2u << 20, alloc_bytes));
    if (m == nullptr) {
      std::fprintf(stderr, "strata-gemv-roof: out of memory for %zu bytes\n", alloc_bytes);
      return false;
    }
    out->owned.emplace_back(m, &std::free);
    out->w.push_back(m);
    ::madvise(m, alloc_bytes, MADV_HUGEPAGE);
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = dist(rng);
      strata::QuantizeRow(type, row.data(), cols, m + row_bytes * static_cast<size_t>(r));
    }
  }
  return true;
}

// Times the single row and each batch size; prints one JSON object.
void TimeBatches(const Flags& f, strata::WeightType type, const strata::KernelPath& path, const Matrices& m,
                 std::mt19937& rng) {
  const int64_t rows = f.rows, cols = f.cols;
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> xf(static_cast<size_t>(kMaxBatch * cols));  // [kMaxBatch, cols]
  for (auto& v : xf) v = dist(rng);
  std::vector<uint16_t> xb(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) xb[i] = strata::FloatToBf16(xf[i]);
  const bool bf16 = type == strata::WeightType::kBF16;
  std::vector<float> y(static_cast<size_t>(kMaxBatch * rows));  // [kMaxBatch, rows]
  // What a Linear call does: prepare the activation rows once, split the weight rows.
  auto run = [&](const uint8_t* w, int64_t n) {
    const strata::InputRows in{bf16 ? static_cast<const void*>(xb.data()) : xf.data(), bf16, n, cols};
    std::vector<uint8_t> storage;
    const strata::ActRows act = strata::PrepareActivations(path.form, in, &storage);
    const strata::WeightMatrix wm{type, w, rows, cols};
    Split(f.threads, rows, [&](int64_t r0, int64_t r1) { path.fn(wm, act, r0, r1, y.data(), rows); });
  };
  int copy = 0;
  const double one = Best(f.single_reps > 0 ? f.single_reps : 20, [&]() { run(m.w[copy++ % kCopies], 1); });
  const double bytes = static_cast<double>(strata::RowBytes(type, cols)) * rows;
  std::printf("{\"type\": \"%s\", \"path\": \"%s\", \"threads\": %d, \"rows\": %lld, \"cols\": %lld, "
              "\"single_row_ms\": %.3f, \"single_row_gbps\": %.2f, \"batches\": [",
              f.type_name.c_str(), path.name, f.threads, static_cast<long long>(rows), static_cast<long long>(cols),
              one * 1e3, bytes / one / 1e9);
  const int sizes[] = {4, 8, 16, 32, 64, 128, kMaxBatch};
  for (size_t k = 0; f.single_reps == 0 && k < sizeof sizes / sizeof sizes[0]; ++k) {
    const int b = sizes[k];
    const double t = Best(10, [&]() { run(m.w[copy++ % kCopies], b); });
    std::printf("%s{\"batch\": %d, \"ms\": %.3f, \"gmac_per_s\": %.1f, \"ideal_speedup\": %.2f}", k ? ", " : "", b,
                t * 1e3, rows * cols * b / t / 1e9, one * b / t);
  }
  std::printf("]}\n");
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app("Times one weight type's kernel for batches of 1..256 rows; prints JSON.", "strata-gemv-roof");
  AddFlags(app, &f);
  CLI11_PARSE(app, argc, argv);
  if (f.peak) return PrintPeak(f.threads);
  strata::WeightType type;
  if (!strata::ParseWeightType(f.type_name, &type)) {
    std::fprintf(stderr, "strata-gemv-roof: unknown --type %s\n", f.type_name.c_str());
    return 2;
  }
  strata::Kernels kernels;
  if (!strata::Kernels::Choose(strata::CpuFeatures::Probe(), f.cap, &kernels)) {
    std::fprintf(stderr, "strata-gemv-roof: unknown --kernels %s\n", f.cap.c_str());
    return 2;
  }
  if (f.cols % strata::BlockElements(type) != 0) {
    std::fprintf(stderr, "strata-gemv-roof: --cols must be a positive multiple of %lld for %s\n",
                 static_cast<long long>(strata::BlockElements(type)), f.type_name.c_str());
    return 2;
  }
  std::mt19937 rng(1);
  Matrices m;
  if (!MakeMatrices(type, f.rows, f.cols, rng, &m)) return 1;
  TimeBatches(f, type, kernels.For(type), m, rng);
  return 0;
}
