#pragma once
// LayerStream: the layers of a shard that do not fit the node's RAM budget.
// At load they are written, in the compute dtype and in the exact layout the
// forward reads, to a file of their own on NVMe; at every forward each is
// read back through storage/page_io (io_uring, O_DIRECT, 1 MiB ops at queue
// depth 32) into one of a ring of slots, layer l+1 while layer l computes.
// This is what prima.cpp does with mmap and page-cache prefetch, with the
// I/O explicit and budgeted: the slots are charged to the RAM tier and the
// file to the NVMe tier, and nothing is left to the page cache.
//
// Thread-safety: the compute thread calls everything; a read's completion
// arrives on the PageIo's I/O thread and is handed over under mu_, which
// guards slots_[*].state and slots_[*].result.
#include "base/mutex.h"
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "node/kv/memory_accountant.h"
#include "storage/env.h"
#include "storage/page_io.h"

namespace strata {

struct LayerStreamOptions {
  std::string dir;                 // where the layer file goes (unlinked at once)
  uint64_t layer_bytes = 0;        // bytes of one layer in its slot layout
  int64_t layers = 0;              // how many layers the file holds
  int slots = 2;                   // the ring
  uint64_t chunk_bytes = 1u << 20; // one read op
  bool thread_pool_io = false;     // the Env's pread pool instead of io_uring (tests)
};

struct LayerStreamStats {
  uint64_t bytes_read = 0;
  uint64_t wait_micros = 0;   // time the compute thread waited for a layer
  uint64_t reads = 0;         // layers read
};

class LayerStream {
 public:
  static Result<std::unique_ptr<LayerStream>> Open(Env& env, MemoryAccountant& memory, MemoryTier tier,
                                                   const LayerStreamOptions& options, std::string* note);
  ~LayerStream();

  uint64_t slot_bytes() const { return slot_bytes_; }  // layer_bytes rounded up to whole chunks
  int slots() const { return static_cast<int>(slots_.size()); }
  uint8_t* slot(int s) { return slots_[static_cast<size_t>(s)].memory.get(); }
  const char* io_kind() const { return io_->kind(); }

  // Load time: writes slot `s` as layer `index` of the file, and waits.
  Status Store(int64_t index, int s);
  // The layer slot `s` holds or is reading (-1: none).
  int64_t layer_in(int s) const { return slots_[static_cast<size_t>(s)].layer; }
  // Starts reading layer `index` into slot `s`, after any read in flight there.
  void Fetch(int64_t index, int s);
  // Waits until slot `s` holds its layer; the read's error otherwise (the
  // slot then holds nothing).
  Status Wait(int s);
  LayerStreamStats stats() const;

 private:
  enum class State { kEmpty, kReading, kReady };
  struct SlotMemory {
    void operator()(uint8_t* p) const;
  };
  struct Slot {
    std::unique_ptr<uint8_t, SlotMemory> memory;
    MemoryCharge charge;
    int64_t layer = -1;           // compute thread only
    State state = State::kEmpty;  // guarded by mu_
    Status result;                // guarded by mu_
  };
  LayerStream(std::unique_ptr<PageIo> io, uint64_t slot_bytes, uint64_t chunk_bytes);
  std::vector<PageIo::Op> Ops(int64_t index, int s, bool write);

  std::unique_ptr<PageIo> io_;
  const uint64_t slot_bytes_, chunk_bytes_;
  MemoryCharge file_;             // the layer file, in the NVMe tier
  std::vector<Slot> slots_;
  mutable Mutex mu_;
  CondVar ready_;  // under mu_
  LayerStreamStats stats_ GUARDED_BY(mu_);
};

}  // namespace strata
