#include "node/kv/kv_swap.h"

#include <unistd.h>

#include <atomic>
#include <chrono>

#include "base/escape.h"
#include "storage/checksum.h"

namespace strata {
namespace {

uint64_t NowMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string SessionName(uint64_t session) { return "session " + std::to_string(session); }

}  // namespace

Result<std::unique_ptr<KvSwapSpace>> KvSwapSpace::Open(Env& env, MemoryAccountant& memory,
                                                       const KvSwapOptions& options, std::string* note) {
  if (options.page_bytes == 0) return Status::Error("a swap space needs a page size");
  PageIoOptions io_options;
  io_options.page_bytes = RoundUpToBlock(options.page_bytes);
  io_options.buffers = 1;  // pages are read and written in place, not through the engine's buffers
  io_options.queue_depth = 32;
  // Unlinked once open, it disappears with the process however that ends.
  auto io = OpenScratchPageIo(env, options.dir, "strata-kv", io_options, options.thread_pool_io, note);
  if (!io.ok()) return Status::Error("cannot open a swap file in " + EscapeText(options.dir) + ": " + io.status().message());
  return std::unique_ptr<KvSwapSpace>(new KvSwapSpace(memory, std::move(io.value()), options.page_bytes));
}

KvSwapSpace::KvSwapSpace(MemoryAccountant& memory, std::unique_ptr<PageIo> io, size_t page_bytes)
    : memory_(memory), io_(std::move(io)), page_bytes_(page_bytes) {}

KvSwapSpace::~KvSwapSpace() {
  io_.reset();  // finishes every submitted read (their callbacks touch sessions_) and joins
}

Status KvSwapSpace::SwapOut(uint64_t session, const std::vector<const uint8_t*>& pages) {
  const uint64_t alloc = page_alloc_bytes();
  Swapped record;
  {
    MutexLock lock(&mu_);
    if (sessions_.count(session)) return Status::Error(SessionName(session) + " is already on disk");
    auto disk = memory_.Charge(MemoryTier::kNvme, alloc * pages.size(),
                               "swap space for " + std::to_string(pages.size()) + " KV pages of " + SessionName(session));
    if (!disk.ok()) return disk.status();
    record.disk = std::move(disk.value());
    for (size_t i = 0; i < pages.size(); ++i) {
      if (!free_slots_.empty()) {
        record.slots.push_back(free_slots_.back());
        free_slots_.pop_back();
      } else {
        record.slots.push_back(next_slot_++);
      }
    }
  }
  std::vector<PageIo::Op> ops;
  for (size_t i = 0; i < pages.size(); ++i) {
    record.checksums.push_back(Checksum64(pages[i], alloc));
    ops.push_back(PageIo::Op{true, record.slots[i] * alloc, 0, const_cast<uint8_t*>(pages[i])});
  }
  const uint64_t t0 = NowMicros();
  std::vector<Status> results = RunPageIo(*io_, std::move(ops));
  const uint64_t micros = NowMicros() - t0;
  MutexLock lock(&mu_);
  for (const Status& st : results) {
    if (st.ok()) continue;
    for (uint64_t slot : record.slots) free_slots_.push_back(slot);
    ++stats_.failures;
    return Status::Error("swapping out the KV of " + SessionName(session) + " failed: " + st.message());
  }
  stats_.pages_out += pages.size();
  stats_.bytes_out += alloc * pages.size();
  stats_.write_micros += micros;
  ++stats_.sessions_on_disk;
  sessions_.emplace(session, std::move(record));
  return Status::Ok();
}

bool KvSwapSpace::OnDisk(uint64_t session) const {
  MutexLock lock(&mu_);
  return sessions_.count(session) > 0;
}

uint64_t KvSwapSpace::BytesToBringBack(uint64_t session) const {
  MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.state != State::kOnDisk) return 0;
  return it->second.slots.size() * page_alloc_bytes();
}

bool KvSwapSpace::StartRead(uint64_t session, Swapped& s, std::string* error) {
  const uint64_t alloc = page_alloc_bytes();
  std::vector<PageMemory> memory;
  std::vector<PageIo::Op> ops;
  for (uint64_t slot : s.slots) {
    auto charge = memory_.Charge(MemoryTier::kRam, alloc, "a KV page of " + SessionName(session) + " read back from NVMe");
    if (!charge.ok()) {
      *error = charge.status().message();
      return false;  // `memory` and its charges go
    }
    PageMemory page{AllocateAligned(alloc), std::move(charge.value())};
    if (!page.bytes) {
      *error = "out of memory for a KV page of " + SessionName(session);
      return false;
    }
    ops.push_back(PageIo::Op{false, slot * alloc, 0, page.bytes.get()});
    memory.push_back(std::move(page));
  }
  s.memory = std::move(memory);
  s.state = State::kReading;
  const uint64_t t0 = NowMicros();
  io_->Submit(std::move(ops), [this, session, t0](std::vector<Status> results) {
    FinishRead(session, std::move(results), t0);
  });
  return true;
}

void KvSwapSpace::FinishRead(uint64_t session, std::vector<Status> results, uint64_t started_us) {
  Swapped* s = nullptr;
  {
    MutexLock lock(&mu_);
    s = &sessions_.at(session);  // a record being read is never erased (Drop and Take wait)
  }
  // Verified outside the lock: nobody else touches a record while it reads.
  std::string error;
  for (size_t i = 0; i < results.size() && error.empty(); ++i) {
    if (!results[i].ok()) {
      error = results[i].message();
    } else if (Checksum64(s->memory[i].bytes.get(), page_alloc_bytes()) != s->checksums[i]) {
      error = "KV page " + std::to_string(i) + " (slot " + std::to_string(s->slots[i]) +
              ") came back from disk corrupted: its checksum does not match";
    }
  }
  {
    MutexLock lock(&mu_);
    stats_.read_micros += NowMicros() - started_us;
    if (error.empty()) {
      s->state = State::kInRam;
    } else {
      s->state = State::kFailed;
      s->error = error;
      s->memory.clear();
    }
  }
  read_done_.SignalAll();
}

void KvSwapSpace::Prefetch(uint64_t session) {
  MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.state != State::kOnDisk) return;
  std::string error;
  StartRead(session, it->second, &error);  // RAM short: Take makes room and reads
}

Result<std::vector<PageMemory>> KvSwapSpace::Take(uint64_t session) {
  MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return Status::Error(SessionName(session) + " has no KV on disk");
  Swapped& s = it->second;
  if (s.state == State::kOnDisk) {
    ++stats_.prefetch_misses;
    std::string error;
    if (!StartRead(session, s, &error)) return Status::Error(error);
  } else {
    ++stats_.prefetch_hits;
  }
  while (s.state == State::kReading) read_done_.Wait(&mu_);
  for (uint64_t slot : s.slots) free_slots_.push_back(slot);
  --stats_.sessions_on_disk;
  if (s.state == State::kFailed) {
    const std::string error = s.error;
    ++stats_.failures;
    sessions_.erase(it);
    return Status::Error("the KV of " + SessionName(session) + " could not be brought back from NVMe: " + error);
  }
  std::vector<PageMemory> memory = std::move(s.memory);
  stats_.pages_in += memory.size();
  stats_.bytes_in += memory.size() * page_alloc_bytes();
  sessions_.erase(it);
  return memory;
}

void KvSwapSpace::Drop(uint64_t session) {
  MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  while (it->second.state == State::kReading) read_done_.Wait(&mu_);
  for (uint64_t slot : it->second.slots) free_slots_.push_back(slot);
  --stats_.sessions_on_disk;
  sessions_.erase(it);
}

void KvSwapSpace::CountAccess(bool in_ram) {
  MutexLock lock(&mu_);
  ++(in_ram ? stats_.ram_hits : stats_.ram_misses);
}

SwapStats KvSwapSpace::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace strata
