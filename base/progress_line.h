#pragma once
// One line of a transfer's progress, as the CLI draws it:
// "local-0 [#######.......]  52%   12.3/23.6 MiB  41.0 MiB/s  ETA 0.3 s"
#include <cstdint>
#include <string>

namespace strata {

std::string ProgressLine(const std::string& name, uint64_t done, uint64_t total, double seconds);

}  // namespace strata
