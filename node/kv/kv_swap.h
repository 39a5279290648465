#pragma once
// KvSwapSpace: where a shard's KV pages go when RAM is short — slots of one
// swap file on NVMe, written and read through storage/page_io (io_uring with
// O_DIRECT, or the pread pool where io_uring is refused).
//
// A session is swapped out whole: its pages are written, each with a
// checksum kept here, and the caller then frees their RAM. Bringing it back
// reads every page into fresh RAM charged to the RAM tier, verifies each
// checksum, and hands the memory over. The read may start early: Prefetch,
// called when the session's next request reaches the node, starts it on the
// I/O thread, so that by the time the compute thread asks (Take) the pages
// are in or on their way. Every slot is charged to the NVMe tier; a full
// tier, a full disk, EIO, a short read or a bad checksum fails only the
// session concerned, with an error that says which.
//
// Thread-safe: mu_ guards sessions_, free_slots_, next_slot_ and stats_.
// SwapOut and Take block their caller (the compute thread) until the disk
// answers; completions are reaped on the PageIo's own I/O thread.
#include "base/mutex.h"
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "node/kv/memory_accountant.h"
#include "storage/env.h"
#include "storage/page_io.h"

namespace strata {

struct SwapStats {
  uint64_t pages_out = 0, pages_in = 0;
  uint64_t bytes_out = 0, bytes_in = 0;
  uint64_t write_micros = 0, read_micros = 0;  // disk time of completed bursts
  uint64_t prefetch_hits = 0;    // a Take found its read already started or done
  uint64_t prefetch_misses = 0;  // a Take had to start the read itself
  uint64_t failures = 0;         // bursts that failed (disk error or checksum)
  uint64_t sessions_on_disk = 0;
  uint64_t ram_hits = 0;         // steps whose KV was in RAM
  uint64_t ram_misses = 0;       // steps whose KV had to come back from NVMe
};

// A page's memory, back in RAM and charged there.
struct PageMemory {
  AlignedBytes bytes;   // page_alloc_bytes(), 4096-aligned
  MemoryCharge charge;  // in the RAM tier
};

struct KvSwapOptions {
  std::string dir;              // the swap file goes here (removed at once: nothing is left behind)
  size_t page_bytes = 0;        // bytes of one page that matter
  bool thread_pool_io = false;  // the pread pool through `env` even where io_uring works (tests)
};

class KvSwapSpace {
 public:
  // `note` gets one line when io_uring is refused and the pool serves instead.
  static Result<std::unique_ptr<KvSwapSpace>> Open(Env& env, MemoryAccountant& memory, const KvSwapOptions& options,
                                                   std::string* note);
  ~KvSwapSpace();

  size_t page_bytes() const { return page_bytes_; }
  size_t page_alloc_bytes() const { return io_->page_bytes(); }  // page_bytes rounded up to 4096
  const char* io_kind() const { return io_->kind(); }

  // Writes `pages` (each page_alloc_bytes, 4096-aligned, unchanged until this
  // returns) as `session`'s swapped KV. On failure nothing is kept here and
  // the pages are still the caller's to use.
  Status SwapOut(uint64_t session, const std::vector<const uint8_t*>& pages);
  bool OnDisk(uint64_t session) const;
  // RAM that Take will still have to charge for `session`: zero when a
  // prefetch has already charged it.
  uint64_t BytesToBringBack(uint64_t session) const;
  // Starts reading `session`'s pages back if they are on disk and RAM has
  // room for them; otherwise does nothing (Take will). Any thread.
  void Prefetch(uint64_t session);
  // `session`'s pages, verified and in RAM, in the order they were written;
  // waits for a read in flight. On a failure the session's swapped KV is
  // gone, and the error names the session and the cause.
  Result<std::vector<PageMemory>> Take(uint64_t session);
  // Forgets `session` (it closed): frees its slots once any read is done.
  void Drop(uint64_t session);
  SwapStats stats() const;
  // A step found its session's KV in RAM (hit) or on NVMe (miss).
  void CountAccess(bool in_ram);

 private:
  enum class State { kOnDisk, kReading, kInRam, kFailed };
  struct Swapped {
    std::vector<uint64_t> slots;
    std::vector<uint64_t> checksums;
    MemoryCharge disk;                // the slots, in the NVMe tier
    State state = State::kOnDisk;
    std::vector<PageMemory> memory;   // while reading and after
    std::string error;                // when kFailed
  };
  KvSwapSpace(MemoryAccountant& memory, std::unique_ptr<PageIo> io, size_t page_bytes);
  // Charges RAM and submits the reads. False when RAM is short.
  bool StartRead(uint64_t session, Swapped& s, std::string* error) REQUIRES(mu_);
  void FinishRead(uint64_t session, std::vector<Status> results, uint64_t started_us);

  MemoryAccountant& memory_;
  std::unique_ptr<PageIo> io_;
  const size_t page_bytes_;
  mutable Mutex mu_;
  CondVar read_done_;  // under mu_
  std::map<uint64_t, Swapped> sessions_ GUARDED_BY(mu_);
  std::vector<uint64_t> free_slots_ GUARDED_BY(mu_);
  uint64_t next_slot_ GUARDED_BY(mu_) = 0;  // slots [0, next_slot_) exist in the file
  SwapStats stats_ GUARDED_BY(mu_);
};

}  // namespace strata
