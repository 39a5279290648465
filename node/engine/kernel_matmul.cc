#include "node/engine/kernel_matmul.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#include "node/engine/matmul.h"
#include "storage/dtype.h"

namespace strata {
namespace {

// Activation rows one pass over the weights takes: a longer prompt chunk
// goes in pieces of this many, each reading every weight row once; each
// part's path says how many it takes best (KernelPath::rows_per_pass).
int64_t RowsPerPass(const Kernels& kernels, const std::vector<KernelRows>& parts) {
  int64_t rows = kMaxPassRows;
  for (const KernelRows& p : parts) rows = std::min(rows, kernels.For(p.type).rows_per_pass);
  return rows;
}

// Rows up to this many columns are short: 16 of them fit a few KiB.
constexpr int64_t kShortRow = 256;

// A thread's share is at least this many bytes x rows: below that, waking
// the other threads costs more than they save (a small model's matrices
// run on one).
constexpr double kMinThreadWork = 256.0 * 1024;

// Row boundaries [0, ..., rows] that give each of `pieces` pieces an even
// share of the weight bytes: the parts of one matrix may differ in type
// (a Q6_K attn_v beside Q4_K q and k), and an even split of rows would
// leave one thread waiting on the other.
std::vector<int64_t> SplitByBytes(const std::vector<KernelRows>& parts, int64_t rows, int64_t cols, int pieces) {
  pieces = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(pieces, rows)));
  double total = 0;
  for (const KernelRows& p : parts) total += static_cast<double>(p.rows) * RowBytes(p.type, cols);
  std::vector<int64_t> bounds{0};
  double before = 0;  // bytes of the parts wholly before p
  for (const KernelRows& p : parts) {
    const double row_bytes = static_cast<double>(RowBytes(p.type, cols));
    while (static_cast<int>(bounds.size()) < pieces) {
      const double want = total * static_cast<double>(bounds.size()) / pieces - before;
      const int64_t r = static_cast<int64_t>(want / row_bytes + 0.5);
      if (r >= p.rows) break;
      bounds.push_back(std::max(bounds.back(), p.row0 + r));
    }
    before += static_cast<double>(p.rows) * row_bytes;
  }
  while (static_cast<int>(bounds.size()) < pieces) bounds.push_back(rows);
  bounds.push_back(rows);
  return bounds;
}

int ThreadsFor(const std::vector<KernelRows>& parts, int64_t cols, int64_t n) {
  double work = 0;
  for (const KernelRows& p : parts) work += static_cast<double>(p.rows) * RowBytes(p.type, cols);
  work *= static_cast<double>(std::min(n, kMaxKernelRows));
  return static_cast<int>(std::clamp<double>(work / kMinThreadWork, 1, at::get_num_threads()));
}

// Pieces of a matrix per thread, taken in turn as each thread is free: the
// cores of one machine need not run at one speed (a VM's vCPUs beside
// other tenants, a laptop's efficiency cores), and with one even share
// each the fast thread waited on the slow one. Measured on the AMD EPYC
// VM, a Q4_K_M 128-token prefill: one CPU idle 7% of it while the other
// finished its share. Pieces stay large enough that each keeps its rows'
// streams (RowStreams) and tiles whole.
constexpr int kPiecesPerThread = 4;
constexpr int64_t kMinPieceRows = 64;

int PiecesFor(int threads, int64_t rows) {
  if (threads <= 1) return 1;
  return static_cast<int>(std::clamp<int64_t>(rows / kMinPieceRows, threads, int64_t{threads} * kPiecesPerThread));
}

// The calling thread's f32 dots, reused from call to call.
float* DotScratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

// A prompt chunk's activation rows on the pool, eight or more a thread.
void PromptRows(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  if (n < 16) return body(0, n);
  at::parallel_for(0, n, 8, [&](int64_t b0, int64_t b1) { body(b0, b1); });
}

// The dots of one activation row's weight rows [begin, end) into y: plus
// the bias, rounded to BF16 and then added to the residual (BF16), or
// added to it (f32), or left in place (f32, dots = y). Each case is its
// own loop without branches, so that the compiler vectorises it (as one
// loop with its cases inside, it had been 3% of a BF16 prefill).
struct Finish {
  const float* bias;
  bool bf16;
  const void* residual;
  void* y;

  void Rows(float* dots, int64_t at, int64_t begin, int64_t end) const {
    if (bias != nullptr) {
      for (int64_t r = begin; r < end; ++r) dots[r] += bias[r];
    }
    if (bf16) {
      auto* to = static_cast<uint16_t*>(y) + at;
      if (residual == nullptr) {
        for (int64_t r = begin; r < end; ++r) to[r] = FloatToBf16(dots[r]);
      } else {
        const auto* res = static_cast<const uint16_t*>(residual) + at;
        for (int64_t r = begin; r < end; ++r) to[r] = FloatToBf16(Bf16ToFloat(res[r]) + Bf16ToFloat(FloatToBf16(dots[r])));
      }
    } else if (residual != nullptr) {
      auto* to = static_cast<float*>(y) + at;
      const auto* res = static_cast<const float*>(residual) + at;
      for (int64_t r = begin; r < end; ++r) to[r] = res[r] + dots[r];
    }
  }
};

}  // namespace

void KernelMatmul(const void* x, bool bf16, int64_t n, int64_t cols, const std::vector<KernelRows>& parts,
                  int64_t rows, const float* bias, const void* residual, void* y) {
  // The dots in f32: straight into an f32 y with nothing to add to it, else
  // into scratch, rounded (and added to the residual) after.
  const bool direct = !bf16 && residual == nullptr;
  float* dp = direct ? static_cast<float*>(y) : DotScratch(static_cast<size_t>(n * rows));
  const Kernels& kernels = ActiveKernels();
  const int threads = ThreadsFor(parts, cols, n);
  const std::vector<int64_t> bounds = SplitByBytes(parts, rows, cols, PiecesFor(threads, rows));
  const int64_t pieces = static_cast<int64_t>(bounds.size()) - 1;
  const size_t elem = bf16 ? 2 : 4;
  const int64_t per_pass = RowsPerPass(kernels, parts);
  for (int64_t b0 = 0; b0 < n; b0 += per_pass) {
    const int64_t m = std::min(per_pass, n - b0);
    const InputRows in{static_cast<const uint8_t*>(x) + static_cast<size_t>(b0 * cols) * elem, bf16, m, cols};
    // The activation rows in each form the parts read.
    std::vector<uint8_t> storage[kActForms];
    ActRows act[kActForms];
    bool have[kActForms] = {};
    for (const KernelRows& p : parts) {
      const int f = static_cast<int>(kernels.For(p.type).form);
      if (!have[f]) act[f] = PrepareActivations(kernels.For(p.type).form, in, &storage[f], PromptRows), have[f] = true;
    }
    float* out = dp + b0 * rows;
    std::atomic<int64_t> next_piece{0};
    at::parallel_for(0, std::min<int64_t>(threads, pieces), 1, [&](int64_t, int64_t) {
      for (int64_t t; (t = next_piece.fetch_add(1, std::memory_order_relaxed)) < pieces;) {
        const int64_t begin = bounds[static_cast<size_t>(t)], end = bounds[static_cast<size_t>(t) + 1];
        for (const KernelRows& p : parts) {
          const int64_t lo = std::max(begin, p.row0), hi = std::min(end, p.row0 + p.rows);
          if (lo >= hi) continue;
          const KernelPath& path = kernels.For(p.type);
          const WeightMatrix mat{p.type, p.data, p.rows, cols};
          // Short rows against one activation row: several rows' dots at
          // once, with fn's bits (a small model's decode).
          const MatFn fn = m == 1 && cols <= kShortRow && path.many_rows != nullptr ? path.many_rows : path.fn;
          fn(mat, act[static_cast<int>(path.form)], lo - p.row0, hi - p.row0, out + p.row0, rows);
        }
        if (direct && bias == nullptr) continue;  // the dots are y
        const Finish f{bias, bf16, residual, y};
        for (int64_t i = 0; i < m; ++i) f.Rows(out + i * rows, (b0 + i) * rows, begin, end);
      }
    });
  }
}

}  // namespace strata
