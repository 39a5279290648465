#pragma once
// What the operating system says about memory, for default budgets.
#include <cstdint>

namespace strata {

// MemAvailable from /proc/meminfo in bytes; 0 when it cannot be read.
uint64_t AvailableMemoryBytes();

}  // namespace strata
