// strata-membw: the machine's memory read bandwidth, the limit that decode
// speed is measured against (base/bandwidth_probe: sixteen AVX2 accumulators
// per thread over a buffer far larger than the caches). Prints the best of
// several passes in GB/s, as JSON.
#include <CLI/CLI.hpp>

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
  CLI::App app("Measures memory read bandwidth (GB/s) with N threads over an N-MiB buffer.", "strata-membw");
  app.option_defaults()->always_capture_default();
  app.add_option("--mib", mib, "buffer size in MiB")->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--threads", threads, "reading threads")->check(CLI::Range(1, 1024));
  app.add_option("--passes", passes, "passes; the best is printed")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  const double best = strata::MemoryReadBandwidth(mib, threads, passes);
  std::printf("{\"read_gb_per_s\": %.3f, \"threads\": %d, \"buffer_mib\": %zu}\n", best, threads, mib);
  return best > 0 ? 0 : 1;
}
