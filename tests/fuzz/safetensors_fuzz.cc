// libFuzzer: the safetensors header parser, on the real file path (the input
// becomes an in-memory file that SafetensorsFile::Open maps).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "storage/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("safetensors-fuzz", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0) return 0;
  if (size > 0 && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  auto file = strata::SafetensorsFile::Open("/proc/self/fd/" + std::to_string(fd));
  if (file.ok()) {
    // Every view must lie inside the file.
    for (const auto& [name, view] : file.value()->tensors()) {
      if (view.nbytes > size) __builtin_trap();
      volatile uint8_t sink = view.nbytes ? view.data[view.nbytes - 1] : 0;
      (void)sink;
    }
  }
  return 0;
}
