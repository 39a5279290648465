// strata-membw: the machine's memory read bandwidth, the limit that decode
// speed is measured against (base/bandwidth_probe: sixteen AVX2 accumulators
// per thread over a buffer far larger than the caches). Prints the best of
// several passes in GB/s, as JSON.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/bandwidth_probe.h"

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
  const double best = strata::MemoryReadBandwidth(mib, threads, passes);
  std::printf("{\"read_gb_per_s\": %.3f, \"threads\": %d, \"buffer_mib\": %zu}\n", best, threads, mib);
  return best > 0 ? 0 : 1;
}
