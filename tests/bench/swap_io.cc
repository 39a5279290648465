// strata-swapbench: what the swap I/O engine (storage/page_io) moves, in
// GB/s: a sequential write and read of a file in fixed-size pages through
// io_uring at a given queue depth, and plain O_DIRECT pread at queue depth 1
// for contrast. scripts/bench/swap_io_bench.sh sets it against fio in the
// same run. Prints JSON.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/splitmix.h"
#include "storage/page_io.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  uint64_t mib = 2048, page_kib = 256;
  uint32_t depth = 32;
  CLI::App app("Writes then reads PATH in K-KiB pages through io_uring at queue depth D, then reads it\n"
               "with O_DIRECT pread at queue depth 1; prints GB/s as JSON. PATH is removed.", "strata-swapbench");
  app.option_defaults()->always_capture_default();
  app.add_option("--file", path, "the file to write and read (removed after)")->required();
  app.add_option("--mib", mib, "file size in MiB")->check(CLI::Range(uint64_t{1}, uint64_t{1} << 24));
  app.add_option("--page-kib", page_kib, "page size in KiB")->check(CLI::Range(uint64_t{4}, uint64_t{1} << 20));
  app.add_option("--depth", depth, "io_uring queue depth")->check(CLI::Range(1u, 4096u));
  CLI11_PARSE(app, argc, argv);
  strata::PageIoOptions o;
  o.page_bytes = page_kib << 10;
  o.file_bytes = mib << 20;
  o.queue_depth = depth;
  o.buffers = depth * 2;
  auto io = strata::OpenUringPageIo(path, o);
  if (!io.ok()) { std::fprintf(stderr, "strata-swapbench: %s\n", io.status().message().c_str()); return 1; }
  const uint64_t pages = o.file_bytes / o.page_bytes;
  // Incompressible bytes, as fio writes: a virtual disk must not get an easy ride.
  strata::SplitMix64 random{1};
  for (uint32_t b = 0; b < o.buffers; ++b) {
    auto* words = reinterpret_cast<uint64_t*>(io.value()->buffer(b));
    for (size_t i = 0; i < o.page_bytes / 8; ++i) words[i] = random.Next();
  }
  double rate[2] = {0, 0};  // write, read
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<strata::PageIo::Op> ops;
    for (uint64_t p = 0; p < pages; ++p) ops.push_back({pass == 0, p * o.page_bytes, static_cast<uint32_t>(p % o.buffers)});
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& st : strata::RunPageIo(*io.value(), ops)) {
      if (!st.ok()) { std::fprintf(stderr, "strata-swapbench: %s\n", st.message().c_str()); return 1; }
    }
    rate[pass] = static_cast<double>(o.file_bytes) / Seconds(t0) / 1e9;
  }
  io.value().reset();
  // Plain pread, one page at a time.
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  void* buf = std::aligned_alloc(4096, o.page_bytes);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t p = 0; fd >= 0 && p < pages; ++p) {
    if (::pread(fd, buf, o.page_bytes, static_cast<off_t>(p * o.page_bytes)) != static_cast<ssize_t>(o.page_bytes)) {
      std::fprintf(stderr, "strata-swapbench: pread failed\n");
      return 1;
    }
  }
  const double pread_rate = static_cast<double>(o.file_bytes) / Seconds(t0) / 1e9;
  std::free(buf);
  if (fd >= 0) ::close(fd);
  ::unlink(path.c_str());
  std::printf("{\"engine\": \"io_uring\", \"page_kib\": %llu, \"depth\": %u, \"mib\": %llu, "
              "\"write_gb_per_s\": %.3f, \"read_gb_per_s\": %.3f, \"pread_qd1_read_gb_per_s\": %.3f}\n",
              static_cast<unsigned long long>(page_kib), depth, static_cast<unsigned long long>(mib), rate[0], rate[1],
              pread_rate);
  return 0;
}
