#include "node/engine/matmul.h"

#include <cstring>

#include "storage/dtype.h"
#include "storage/quants.h"

namespace strata {
namespace {

// An f32 copy of row b of x (bf16 widened exactly).
void InputRowF32(const InputRows& x, int64_t b, float* out) {
  if (!x.bf16) {
    std::memcpy(out, static_cast<const float*>(x.data) + b * x.cols, static_cast<size_t>(x.cols) * 4);
    return;
  }
  const auto* in = static_cast<const uint16_t*>(x.data) + b * x.cols;
  for (int64_t i = 0; i < x.cols; ++i) out[i] = Bf16ToFloat(in[i]);
}

size_t FormRowBytes(ActForm form, int64_t cols) {
  switch (form) {
    case ActForm::kF32: return static_cast<size_t>(cols) * 4;
    case ActForm::kBF16: return static_cast<size_t>(cols) * 2;
    case ActForm::kQ8_0: return static_cast<size_t>(cols / kQK8_0) * sizeof(ActQ8_0);
    case ActForm::kQ8_K: return static_cast<size_t>(cols / kQKK) * sizeof(ActQ8_K);
    case ActForm::kQ8_0Pairs: return static_cast<size_t>((cols / kQK8_0 + 1) / 2) * sizeof(ActQ8_0Pair);
    case ActForm::kBF16Tiles: return static_cast<size_t>((cols + 31) / 32) * 64;
    case ActForm::kQ8_KTiles: return static_cast<size_t>(cols / kQKK) * sizeof(ActQ8_K);  // the rows; the tiles follow
  }
  return 0;
}

// The activation quantizers: AVX2 where the CPU has it (the same bits).
struct ActQuantizers {
  void (*q8_0)(const float*, int64_t, ActQ8_0*) = QuantizeActQ8_0;
  void (*q8_k)(const float*, int64_t, ActQ8_K*) = QuantizeActQ8_K;
};
const ActQuantizers& Quantizers() {
  static const ActQuantizers chosen = [] {
    ActQuantizers q;
    if (CpuFeatures::Probe().avx2) q = ActQuantizers{kernels::QuantizeActQ8_0Avx2, kernels::QuantizeActQ8_KAvx2};
    return q;
  }();
  return chosen;
}

// Q8_0 blocks quantized as QuantizeActQ8_0 does, in pairs (ActQ8_0Pair).
void PairActQ8_0(const float* x, int64_t cols, ActQ8_0Pair* out) {
  const int64_t blocks = cols / kQK8_0;
  std::vector<ActQ8_0> q(static_cast<size_t>(blocks));
  Quantizers().q8_0(x, cols, q.data());
  for (int64_t p = 0; p < (blocks + 1) / 2; ++p) {
    ActQ8_0Pair& o = out[p];
    std::memset(&o, 0, sizeof o);
    for (int h = 0; h < 2 && 2 * p + h < blocks; ++h) {
      const ActQ8_0& b = q[static_cast<size_t>(2 * p + h)];
      std::memcpy(o.qs + kQK8_0 * h, b.qs, kQK8_0);
      for (int l = 0; l < 8; ++l) o.d[8 * h + l] = b.d;
      for (int l = 0; l < 8; ++l) {
        const int8_t* four = b.qs + 4 * l;
        o.fix[8 * h + l] = -128 * (four[0] + four[1] + four[2] + four[3]);
      }
    }
  }
}

// Activation row b of x in `form` at dst (row: scratch of x.cols floats).
void PrepareRow(ActForm form, const InputRows& x, int64_t b, float* row, uint8_t* dst) {
  InputRowF32(x, b, row);
  switch (form) {
    case ActForm::kF32: std::memcpy(dst, row, static_cast<size_t>(x.cols) * 4); break;
    case ActForm::kBF16:
      for (int64_t i = 0; i < x.cols; ++i) {
        const uint16_t v = FloatToBf16(row[i]);
        std::memcpy(dst + 2 * i, &v, 2);
      }
      break;
    case ActForm::kQ8_0: Quantizers().q8_0(row, x.cols, reinterpret_cast<ActQ8_0*>(dst)); break;
    case ActForm::kQ8_K:
    case ActForm::kQ8_KTiles: Quantizers().q8_k(row, x.cols, reinterpret_cast<ActQ8_K*>(dst)); break;
    case ActForm::kQ8_0Pairs: PairActQ8_0(row, x.cols, reinterpret_cast<ActQ8_0Pair*>(dst)); break;
    case ActForm::kBF16Tiles: break;  // PrepareActivations packs the bf16 rows
  }
}

Kernels& Active() {
  static Kernels active = [] {
    Kernels k;
    Kernels::Choose(CpuFeatures::Probe(), "auto", &k);
    return k;
  }();
  return active;
}

}  // namespace

ActRows PrepareActivations(ActForm form, const InputRows& x, std::vector<uint8_t>* storage, const ParallelRows& parallel) {
  ActRows a;
  a.form = form;
  a.n = x.n;
  a.cols = x.cols;
  a.row_bytes = FormRowBytes(form, x.cols);
  if ((form == ActForm::kF32 && !x.bf16) || (form == ActForm::kBF16 && x.bf16)) {
    a.data = static_cast<const uint8_t*>(x.data);
    return a;
  }
  if (form == ActForm::kBF16Tiles) {  // the bf16 rows (in place where x is bf16), packed
    std::vector<uint8_t> rounded;
    const ActRows rows = PrepareActivations(ActForm::kBF16, x, &rounded, parallel);
    storage->resize(a.row_bytes * static_cast<size_t>(x.n));
    kernels::PackBf16Tiles(reinterpret_cast<const uint16_t*>(rows.data), x.n, x.cols, storage->data());
    a.data = storage->data();
    return a;
  }
  storage->resize(form == ActForm::kQ8_KTiles ? kernels::Q8KTilesBytes(x.n, x.cols) : a.row_bytes * static_cast<size_t>(x.n));
  const auto rows = [&](int64_t b0, int64_t b1) {
    std::vector<float> row(static_cast<size_t>(x.cols));
    for (int64_t b = b0; b < b1; ++b) PrepareRow(form, x, b, row.data(), storage->data() + a.row_bytes * static_cast<size_t>(b));
  };
  if (parallel) {
    parallel(x.n, rows);
  } else {
    rows(0, x.n);
  }
  if (form == ActForm::kQ8_KTiles) {  // the rows, then their tiles
    kernels::PackQ8KTiles(reinterpret_cast<const ActQ8_K*>(storage->data()), x.n, x.cols, storage->data());
  }
  a.data = storage->data();
  return a;
}

std::vector<KernelPath> KernelPaths(WeightType type, const CpuFeatures& cpu) {
  std::vector<KernelPath> out;
  kernels::AddScalarPaths(type, &out);
  kernels::AddAvx2Paths(type, cpu, &out);
  kernels::AddAvx512Paths(type, cpu, &out);
  kernels::AddAvx512QuantPaths(type, cpu, &out);
  kernels::AddAmxPaths(type, cpu, &out);
  return out;
}

bool Kernels::Choose(const CpuFeatures& cpu, const std::string& cap, Kernels* out) {
  int max_level;
  if (cap == "auto" || cap == "amx") {
    max_level = 3;
  } else if (cap == "avx512") {
    max_level = 2;
  } else if (cap == "avx2") {
    max_level = 1;
  } else if (cap == "scalar") {
    max_level = 0;
  } else {
    return false;
  }
  for (int t = 0; t < kWeightTypes; ++t) {
    for (const KernelPath& p : KernelPaths(static_cast<WeightType>(t), cpu)) {
      if (p.level > max_level) continue;
      out->paths_[t] = p;  // later paths are better
      if (p.form == ActForm::kF32) out->f32_rows_[t] = p;
    }
  }
  return true;
}

std::string Kernels::Describe() const {
  std::string out;
  for (int t = 0; t < kWeightTypes; ++t) {
    if (!out.empty()) out += ' ';
    out += std::string(WeightTypeName(static_cast<WeightType>(t))) + ":" + paths_[t].name;
  }
  return out;
}

const Kernels& ActiveKernels() { return Active(); }

bool SelectKernels(const std::string& cap) { return Kernels::Choose(CpuFeatures::Probe(), cap, &Active()); }

void MatRows(const KernelPath& path, const WeightMatrix& w, const InputRows& x, int64_t r0, int64_t r1, float* out,
             int64_t out_stride) {
  std::vector<uint8_t> storage;
  const ActRows a = PrepareActivations(path.form, x, &storage);
  path.fn(w, a, r0, r1, out, out_stride);
}

}  // namespace strata
