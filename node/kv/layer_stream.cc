#include "node/kv/layer_stream.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>

#include "base/escape.h"

namespace strata {
namespace {

constexpr size_t kHugePage = 2u << 20;

uint64_t MicrosSince(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

void LayerStream::SlotMemory::operator()(uint8_t* p) const { std::free(p); }

Result<std::unique_ptr<LayerStream>> LayerStream::Open(Env& env, MemoryAccountant& memory, MemoryTier tier,
                                                       const LayerStreamOptions& o, std::string* note) {
  if (o.layer_bytes == 0 || o.layers <= 0 || o.slots < 1 || o.chunk_bytes == 0 || o.chunk_bytes % 4096 != 0) {
    return Status::Error("a layer stream needs layers, a layer size, slots and a chunk of whole 4 KiB blocks");
  }
  const uint64_t slot_bytes = (o.layer_bytes + o.chunk_bytes - 1) / o.chunk_bytes * o.chunk_bytes;
  auto file = memory.Charge(MemoryTier::kNvme, slot_bytes * static_cast<uint64_t>(o.layers),
                            std::to_string(o.layers) + " streamed layers on NVMe");
  if (!file.ok()) return file.status();
  PageIoOptions io_options;
  io_options.page_bytes = o.chunk_bytes;
  io_options.buffers = 1;  // layers go straight into the slots
  io_options.queue_depth = 32;
  auto io = OpenScratchPageIo(env, o.dir, "strata-layers", io_options, o.thread_pool_io, note);
  if (!io.ok()) return Status::Error("cannot open a layer file in " + EscapeText(o.dir) + ": " + io.status().message());
  std::unique_ptr<LayerStream> stream(new LayerStream(std::move(io.value()), slot_bytes, o.chunk_bytes));
  stream->file_ = std::move(file.value());
  for (int s = 0; s < o.slots; ++s) {
    auto charge = memory.Charge(tier, slot_bytes, "a streamed layer's slot");
    if (!charge.ok()) return charge.status();
    // Huge pages: the forward streams through the whole slot per token.
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, (slot_bytes + kHugePage - 1) / kHugePage * kHugePage));
    if (p == nullptr) return Status::Error("out of memory for a streamed layer's slot");
    ::madvise(p, slot_bytes, MADV_HUGEPAGE);
    Slot slot;
    slot.memory.reset(p);
    slot.charge = std::move(charge.value());
    stream->slots_.push_back(std::move(slot));
  }
  return stream;
}

LayerStream::LayerStream(std::unique_ptr<PageIo> io, uint64_t slot_bytes, uint64_t chunk_bytes)
    : io_(std::move(io)), slot_bytes_(slot_bytes), chunk_bytes_(chunk_bytes) {}

LayerStream::~LayerStream() {
  io_.reset();  // finishes reads in flight (their callbacks touch slots_) and joins
}

std::vector<PageIo::Op> LayerStream::Ops(int64_t index, int s, bool write) {
  std::vector<PageIo::Op> ops;
  uint8_t* base = slot(s);
  for (uint64_t at = 0; at < slot_bytes_; at += chunk_bytes_) {
    ops.push_back(PageIo::Op{write, static_cast<uint64_t>(index) * slot_bytes_ + at, 0, base + at});
  }
  return ops;
}

Status LayerStream::Store(int64_t index, int s) {
  for (const Status& st : RunPageIo(*io_, Ops(index, s, true))) {
    if (!st.ok()) return Status::Error("writing streamed layer " + std::to_string(index) + " failed: " + st.message());
  }
  return Status::Ok();
}

void LayerStream::Fetch(int64_t index, int s) {
  Slot& slot = slots_[static_cast<size_t>(s)];
  if (slot.layer >= 0) {
    Status previous = Wait(s);  // the slot's memory must be free before it is overwritten
    (void)previous;
  }
  slot.layer = index;
  {
    MutexLock lock(&mu_);
    slot.state = State::kReading;
    slot.result = Status::Ok();
  }
  const uint64_t bytes = slot_bytes_;
  io_->Submit(Ops(index, s, false), [this, s, index, bytes](std::vector<Status> results) {
    MutexLock lock(&mu_);
    Slot& done = slots_[static_cast<size_t>(s)];
    done.state = State::kReady;
    for (const Status& st : results) {
      if (!st.ok()) {
        done.result = Status::Error("reading streamed layer " + std::to_string(index) + " failed: " + st.message());
        break;
      }
    }
    stats_.bytes_read += bytes;
    ++stats_.reads;
    ready_.SignalAll();
  });
}

Status LayerStream::Wait(int s) {
  Slot& slot = slots_[static_cast<size_t>(s)];
  const auto t0 = std::chrono::steady_clock::now();
  MutexLock lock(&mu_);
  while (slot.state == State::kReading) ready_.Wait(&mu_);
  stats_.wait_micros += MicrosSince(t0);
  if (!slot.result.ok()) {
    Status failed = slot.result;
    slot.state = State::kEmpty;
    slot.layer = -1;
    return failed;
  }
  return Status::Ok();
}

LayerStreamStats LayerStream::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace strata
