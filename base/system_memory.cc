#include "base/system_memory.h"

#include <fstream>
#include <string>

namespace strata {

uint64_t AvailableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  while (in >> key) {
    if (key == "MemAvailable:") {
      in >> kb;
      return kb * 1024;
    }
    in.ignore(256, '\n');
  }
  return 0;
}

uint64_t ResidentBytesOf(int pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/status") : "/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      uint64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace strata
