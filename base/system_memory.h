#pragma once
// What the operating system says about memory: default budgets, resident size.
#include <cstdint>

namespace strata {

// MemAvailable from /proc/meminfo in bytes; 0 when it cannot be read.
uint64_t AvailableMemoryBytes();
// VmRSS of process `pid` (0: this process) in bytes; 0 when it is gone.
uint64_t ResidentBytesOf(int pid = 0);

}  // namespace strata
