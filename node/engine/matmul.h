#pragma once
// The one kernel interface: a weight matrix times a few activation rows,
// whatever the weight's type. out[b, r] = dot(weight row r, activation row b).
//
// Every type has a scalar reference path and vector paths (AVX2, AVX-512,
// VNNI, AVX512-BF16), each built with its own target attributes and chosen
// at run time from the CPU probe (node/engine/cpu_features). Each path has
// one fixed order of summation per dot: a dot's bits depend on its weight
// row and its activation row only, never on the other rows of the batch or
// on the row range a thread takes. That is what keeps batched decode and
// 1-node vs N-node logits bit-identical.
//
// Quantized weights are computed in their blocks: the activation rows are
// quantized per block (Q8_0 for Q8_0/Q4_0, Q8_K for the K formats) and each
// block's dot is an integer dot product, scaled once.
//
// Thread-safe: pure functions; callers split weight rows across threads.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "node/engine/cpu_features.h"
#include "node/engine/weight_format.h"

namespace strata {

struct ActQ8_K;  // storage/quant_blocks.h

// The most positions a batched step may carry.
inline constexpr int64_t kMaxKernelRows = 64;
// The most activation rows any path takes in one call (KernelPath::rows_per_pass).
inline constexpr int64_t kMaxPassRows = 256;

// A weight matrix [rows, cols] as stored (borrowed bytes).
struct WeightMatrix {
  WeightType type = WeightType::kF32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes() const { return RowBytes(type, cols); }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
};

// The compute dtype's activation rows [n, cols], f32 or bf16 (borrowed).
struct InputRows {
  const void* data = nullptr;
  bool bf16 = false;
  int64_t n = 0;
  int64_t cols = 0;
};

// Activation rows in the form one kernel path reads them.
// kBF16Tiles: bf16 rows packed as AMX B tiles; kQ8_KTiles: Q8_K rows, then
// the same packed as AMX B tiles per sub-block (node/engine/matmul_amx.cc).
enum class ActForm : uint8_t { kF32, kBF16, kQ8_0, kQ8_K, kQ8_0Pairs, kBF16Tiles, kQ8_KTiles };
inline constexpr int kActForms = 7;
struct ActRows {
  ActForm form = ActForm::kF32;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  int64_t n = 0;
  int64_t cols = 0;
  const uint8_t* row(int64_t b) const { return data + static_cast<size_t>(b) * row_bytes; }
};

// Runs body over [0, n) in ranges, perhaps on several threads at once (the
// engine passes its pool; this library has none of its own).
using ParallelRows = std::function<void(int64_t n, const std::function<void(int64_t, int64_t)>& body)>;

// x in `form`: in place where it already is, else converted (quantized)
// into *storage, its rows in the ranges `parallel` gives (default: all on
// the caller). A row's bytes are its own: the same in any split.
ActRows PrepareActivations(ActForm form, const InputRows& x, std::vector<uint8_t>* storage,
                           const ParallelRows& parallel = nullptr);

// out[b * out_stride + r] for weight rows r in [r0, r1) and every activation row b.
using MatFn = void (*)(const WeightMatrix& w, const ActRows& x, int64_t r0, int64_t r1, float* out,
                       int64_t out_stride);

struct KernelPath {
  const char* name = "";      // "scalar", "avx2", "avx2-vnni", "avx512", "avx512-bf16", "avx512-vnni", "amx-bf16"
  WeightType type = WeightType::kF32;
  ActForm form = ActForm::kF32;
  MatFn fn = nullptr;
  // fn's bits for one activation row against many short rows (attention's
  // keys), several rows at a time; null where fn is as fast.
  MatFn many_rows = nullptr;
  int level = 0;              // 0 scalar, 1 AVX2, 2 AVX-512, 3 AMX (what --kernels caps)
  // Activation rows a call should take at most: the float GEMMs and the AMX
  // BF16 tiles pack their rows block by block and take a 128-token prompt
  // in one pass (measured ~10-15% faster than two); the quantized tiles
  // walk every activation row per weight row, so theirs stay in L2 at 64.
  int64_t rows_per_pass = 64;
};

// Every path built for `type` that `cpu` can run, scalar first, best last.
std::vector<KernelPath> KernelPaths(WeightType type, const CpuFeatures& cpu);

// The path each weight type runs on in this process.
class Kernels {
 public:
  // The best path per type on `cpu` at or below `cap`: "auto" (no cap),
  // "amx", "avx512", "avx2" or "scalar". False for an unknown cap.
  static bool Choose(const CpuFeatures& cpu, const std::string& cap, Kernels* out);
  const KernelPath& For(WeightType type) const { return paths_[static_cast<int>(type)]; }
  // The best path for `type` that reads f32 activation rows (F32 and BF16
  // weights: attention's dots with f32 queries).
  const KernelPath& ForF32Rows(WeightType type) const { return f32_rows_[static_cast<int>(type)]; }
  std::string Describe() const;  // "f32:avx512 bf16:avx512-bf16 q8_0:avx2-vnni ..."

 private:
  KernelPath paths_[kWeightTypes];
  KernelPath f32_rows_[kWeightTypes];
};

// The process's kernels: chosen once at start (main), before any compute
// thread runs; "auto" on this CPU until then.
const Kernels& ActiveKernels();
bool SelectKernels(const std::string& cap);  // false: unknown cap; the selection stays

// out[b * out_stride + r] = dot(w row r, x row b) for r in [r0, r1) through `path`.
void MatRows(const KernelPath& path, const WeightMatrix& w, const InputRows& x, int64_t r0, int64_t r1,
             float* out, int64_t out_stride);

// The per-ISA tables (matmul_scalar.cc, matmul_avx2.cc, matmul_avx512.cc, matmul_quant_avx512.cc,
// matmul_amx.cc).
namespace kernels {
void AddScalarPaths(WeightType type, std::vector<KernelPath>* out);
void AddAvx2Paths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out);
void AddAvx512Paths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out);
void AddAvx512QuantPaths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out);
void AddAmxPaths(WeightType type, const CpuFeatures& cpu, std::vector<KernelPath>* out);
// The avx512-vnni path's function for Q4_K, Q5_K and Q6_K (ActForm::kQ8_K rows).
MatFn Avx512KQuantMat(WeightType type);
// n Q8_K rows [n, cols / 256] as ActForm::kQ8_KTiles (matmul_amx.cc), into out (Q8KTilesBytes):
// the rows at out already; their tiles after them, where n is enough rows for the tiles to be read.
size_t Q8KTilesBytes(int64_t n, int64_t cols);
void PackQ8KTiles(const ActQ8_K* rows, int64_t n, int64_t cols, uint8_t* out);
// Brings bytes [at, end) toward L2 a few lines per Step, spread over a
// GEMM block's steps: the next block's weights arrive while this one
// computes, and its pack reads them from cache. Measured on the AVX-512
// Xeon: the pack had taken 14% of a 128-row F32 GEMM's time, from DRAM.
// Over only the last `within` of the steps: lines fetched earlier are gone
// from L2 again when the block's activation rows are more than L2 holds.
// One GEMM call's, on its thread.
class LinePrefetch {
 public:
  LinePrefetch(const uint8_t* at, const uint8_t* end, int64_t steps, int64_t within = INT64_MAX)
      : at_(at),
        end_(end),
        wait_(std::max<int64_t>(0, steps - within)),
        per_step_(Lines(end - at, std::max<int64_t>(std::min(steps, within), 1))) {}
  void Step() {
    if (wait_ > 0) {
      --wait_;
      return;
    }
    for (int64_t i = 0; i < per_step_ && at_ < end_; ++i, at_ += 64) __builtin_prefetch(at_, 0, 2);
  }

 private:
  static int64_t Lines(int64_t bytes, int64_t steps) { return (bytes + 64 * steps - 1) / (64 * steps); }
  const uint8_t* at_;
  const uint8_t* const end_;
  int64_t wait_;
  const int64_t per_step_;
};

// A thread's weight rows [r0, r1) as kRowStreams stretches read side by
// side: step j takes row j of each stretch, and a tile computes the rows
// of a step together. One row after another is one stream of addresses,
// and the L2 prefetcher follows it a 4 KiB page at a time; four streams
// pages apart keep four pages coming. Measured on the AVX-512 Xeon, 2
// threads: a [45056, 2048] Q4_K matrix from DRAM 12.3 GB/s one row at a
// time, 10.8 four adjacent rows at a time, 21.8 four stretches; Q4_K_M
// decode 24 -> 29, Q8_0 14.4 -> 20.7 tok/s. Asking for the row eight ahead
// on top of the streams was slower (Q4_K_M 21.7 tok/s): the prefetcher does
// better alone. A dot's bits do not depend on which rows it is computed beside.
inline constexpr int kRowStreams = 4;
struct RowStreams {
  int64_t r0, r1, per;
  RowStreams(int64_t begin, int64_t end) : r0(begin), r1(end), per((end - begin + kRowStreams - 1) / kRowStreams) {}
  int64_t steps() const { return per; }
  // Step j's rows into rows[] (1..kRowStreams of them); returns how many.
  int Rows(int64_t j, int64_t* rows) const {
    int m = 0;
    for (int s = 0; s < kRowStreams && r0 + s * per + j < r1; ++s) rows[m++] = r0 + s * per + j;
    return m;
  }
};
// QuantizeActQ8_0 / QuantizeActQ8_K (storage/quants.h) on AVX2, their bits
// for every input (act_quant_avx2.cc); PrepareActivations calls them where
// the CPU has AVX2.
void QuantizeActQ8_0Avx2(const float* x, int64_t cols, ActQ8_0* out);
void QuantizeActQ8_KAvx2(const float* x, int64_t cols, ActQ8_K* out);
// n bf16 rows [n, cols] as ActForm::kBF16Tiles: n * ceil(cols / 32) * 64 bytes.
void PackBf16Tiles(const uint16_t* x, int64_t n, int64_t cols, uint8_t* out);
}  // namespace kernels

}  // namespace strata
