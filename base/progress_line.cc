#include "base/progress_line.h"

#include <cstdio>

namespace strata {

// "local-0 [#######.......]  52%   12.3/23.6 MiB  41.0 MiB/s  ETA 0.3 s"
std::string ProgressLine(const std::string& name, uint64_t done, uint64_t total, double seconds) {
  char line[200];
  const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  std::string bar(20, '.');
  for (int i = 0; i < static_cast<int>(fraction * 20); ++i) bar[static_cast<size_t>(i)] = '#';
  const double rate = seconds > 0 ? done / seconds : 0;
  const double eta = rate > 0 && total > done ? (total - done) / rate : 0;
  std::snprintf(line, sizeof line, "%-16s [%s] %3.0f%% %8.1f/%.1f MiB %7.1f MiB/s  ETA %.1f s", name.c_str(),
                bar.c_str(), 100 * fraction, done / 1048576.0, total / 1048576.0, rate / 1048576.0, eta);
  return line;
}


}  // namespace strata
