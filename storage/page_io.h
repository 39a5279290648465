#pragma once
// PageIo: batched reads and writes of fixed-size pages of one swap file,
// done on an I/O thread of its own so that neither the event loop nor the
// compute thread ever waits on the disk. A caller fills one of the engine's
// page buffers, submits a batch of ops, and is called back (on the I/O
// thread) with one Status per op. Two implementations:
// - io_uring: O_DIRECT, page buffers aligned and registered with the ring
//   (read_fixed / write_fixed), submissions batched, up to queue_depth in
//   flight;
// - a pread/pwrite thread pool through an Env: where io_uring is not
//   permitted (EPERM or ENOSYS in some containers), and in tests, where a
//   FaultInjectionEnv puts ENOSPC, EIO and short reads into this path.
// A short read or write is an error for its op, never silently accepted.
//
// Thread-safe: Submit may be called from any thread; a buffer belongs to
// whoever submitted it until its callback runs.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/env.h"

namespace strata {

// Memory for direct I/O: 4096-aligned, freed with free().
struct AlignedFree {
  void operator()(uint8_t* p) const;
};
using AlignedBytes = std::unique_ptr<uint8_t, AlignedFree>;
// `n` rounded up to a multiple of 4096, zero-filled past what callers write;
// null when memory is exhausted.
AlignedBytes AllocateAligned(size_t n);
inline size_t RoundUpToBlock(size_t n) { return (n + 4095) / 4096 * 4096; }

struct PageIoOptions {
  size_t page_bytes = 256u << 10;  // a multiple of 4096 (O_DIRECT)
  uint64_t file_bytes = 0;         // reserved up front (fallocate): a full disk fails at open
  uint32_t buffers = 64;           // page buffers the engine owns
  uint32_t queue_depth = 32;       // ops in flight at once
};

class PageIo {
 public:
  struct Op {
    bool write = false;
    uint64_t offset = 0;   // a multiple of page_bytes
    uint32_t buffer = 0;   // index of one of the engine's buffers
    // Or the caller's own memory: 4096-aligned, page_bytes long, the caller's
    // until `done` runs. Pages read straight into the memory that will hold
    // them, with no copy through a staging buffer.
    uint8_t* data = nullptr;
  };
  using Done = std::function<void(std::vector<Status>)>;

  virtual ~PageIo() = default;
  virtual uint8_t* buffer(uint32_t index) = 0;  // page_bytes, 4096-aligned
  virtual uint32_t buffer_count() const = 0;
  virtual size_t page_bytes() const = 0;
  // Queues the ops; `done` runs on the I/O thread once all have finished.
  virtual void Submit(std::vector<Op> ops, Done done) = 0;
  virtual const char* kind() const = 0;  // "io_uring" | "pread"
};

Result<std::unique_ptr<PageIo>> OpenUringPageIo(const std::string& path, const PageIoOptions& options);
Result<std::unique_ptr<PageIo>> OpenEnvPageIo(Env& env, const std::string& path, const PageIoOptions& options,
                                              int threads = 4);
// io_uring where the kernel allows it, else the thread pool; *note says why
// it fell back (for the caller's one log line), or stays empty.
Result<std::unique_ptr<PageIo>> OpenPageIo(Env& env, const std::string& path, const PageIoOptions& options,
                                           std::string* note);

// A scratch file of pages in `dir` that is the node's own: a random name
// ("PREFIX-<16 hex>.bin"), created exclusively through `env` (a link or a
// file planted there is refused, never written through), opened, then
// unlinked at once so nothing of it outlives the process. `thread_pool`:
// the Env's pool rather than io_uring (fault tests).
Result<std::unique_ptr<PageIo>> OpenScratchPageIo(Env& env, const std::string& dir, const std::string& prefix,
                                                  const PageIoOptions& options, bool thread_pool, std::string* note);

// Submits and waits: for tools, benchmarks and tests, never the event loop.
std::vector<Status> RunPageIo(PageIo& io, std::vector<PageIo::Op> ops);

}  // namespace strata
