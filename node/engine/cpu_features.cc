#include "node/engine/cpu_features.h"

#include <cpuid.h>

#include <cstdint>

namespace strata {
namespace {

bool Bit(uint32_t reg, int bit) { return (reg >> bit) & 1u; }

uint64_t Xgetbv() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

}  // namespace

CpuFeatures CpuFeatures::Probe() {
  CpuFeatures f;
  uint32_t a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = Bit(c, 27);
  const uint64_t xcr0 = osxsave ? Xgetbv() : 0;
  const bool ymm_saved = (xcr0 & 0x6) == 0x6;           // SSE and AVX state
  const bool zmm_saved = ymm_saved && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM0-15 upper, ZMM16-31
  const bool tiles_saved = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
  const bool avx = ymm_saved && Bit(c, 28);
  f.fma = avx && Bit(c, 12);
  f.f16c = avx && Bit(c, 29);

  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = avx && Bit(b, 5);
  f.avx512f = zmm_saved && Bit(b, 16);
  f.avx512bw = f.avx512f && Bit(b, 30);
  f.avx512vl = f.avx512f && Bit(b, 31);
  f.avx512vnni = f.avx512f && Bit(c, 11);
  f.amx_bf16 = tiles_saved && Bit(d, 22);
  f.amx_tile = tiles_saved && Bit(d, 24);
  f.amx_int8 = tiles_saved && Bit(d, 25);

  __cpuid_count(7, 1, a, b, c, d);
  f.avx_vnni = f.avx2 && Bit(a, 4);
  f.avx512bf16 = f.avx512f && Bit(a, 5);
  return f;
}

std::string CpuFeatures::ToString() const {
  const std::pair<bool, const char*> named[] = {
      {avx2, "avx2"},         {fma, "fma"},           {f16c, "f16c"},
      {avx512f, "avx512f"},   {avx512bw, "avx512bw"}, {avx512vl, "avx512vl"},
      {avx512vnni, "avx512vnni"}, {avx512bf16, "avx512bf16"}, {avx_vnni, "avxvnni"},
      {amx_tile, "amx-tile"}, {amx_int8, "amx-int8"}, {amx_bf16, "amx-bf16"}};
  std::string out;
  for (const auto& [present, name] : named) {
    if (!present) continue;
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out.empty() ? "baseline" : out;
}

}  // namespace strata
