#pragma once
// What the CPU can do, probed once with cpuid (and xgetbv: the OS must save
// the wide registers too). The kernels choose their path from it at run
// time; a node logs it at start and reports it in its NodeInfo.
//
// Thread-safe: plain values; Probe() has no side effects.
#include <string>

namespace strata {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avx_vnni = false;   // the 256-bit VEX VNNI of CPUs without AVX-512
  bool amx_tile = false;
  bool amx_int8 = false;
  bool amx_bf16 = false;

  static CpuFeatures Probe();
  // "avx2 fma f16c avx512f avx512bw ..." for each feature present ("baseline" for none).
  std::string ToString() const;
};

}  // namespace strata
