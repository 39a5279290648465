#include "node/kv/kv_store.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "base/escape.h"

namespace strata {
namespace {

std::string Hex(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

double MillisSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<std::unique_ptr<KvStore>> KvStore::Create(const KvStoreOptions& o) {
  auto policy = MakeEvictionPolicy(o.policy);
  if (!policy.ok()) return policy.status();
  std::shared_ptr<KvSwapSpace> swap;
  if (!o.swap_dir.empty()) {
    if (!o.options.device().is_cpu()) {
      return Status::Error("swapping KV pages to NVMe is implemented for CPU nodes only; drop --swap-dir on " +
                           o.options.device().str());
    }
    if (o.env == nullptr) return Status::Error("a swap directory needs an Env");
    KvPagePool probe(*o.memory, o.tier, o.layers, o.kv_heads, o.head_dim, o.options, o.page_tokens, o.int8);
    KvSwapOptions swap_options;
    swap_options.dir = o.swap_dir;
    swap_options.page_bytes = probe.page_alloc_bytes();
    swap_options.thread_pool_io = o.thread_pool_io;
    std::string note;
    auto opened = KvSwapSpace::Open(*o.env, *o.memory, swap_options, &note);
    if (!opened.ok()) return opened.status();
    if (!note.empty()) spdlog::warn("KV swap: {}", note);
    swap = std::move(opened.value());
    spdlog::info("KV swap in {} through {}, pages of {} KiB, policy {}", EscapeText(o.swap_dir), swap->io_kind(),
                 swap->page_alloc_bytes() >> 10, policy.value()->name());
  }
  return std::unique_ptr<KvStore>(new KvStore(o, std::move(swap), std::move(policy.value())));
}

KvStore::KvStore(const KvStoreOptions& o, std::shared_ptr<KvSwapSpace> swap, std::unique_ptr<EvictionPolicy> policy)
    : memory_(*o.memory),
      tier_(o.tier),
      pool_(*o.memory, o.tier, o.layers, o.kv_heads, o.head_dim, o.options, o.page_tokens, o.int8),
      swap_(std::move(swap)),
      policy_(std::move(policy)) {}

KvStore::~KvStore() {
  sessions_.clear();  // their pages go back to the pool before it goes
}

Status KvStore::Open(uint64_t id, int64_t capacity) {
  if (sessions_.count(id)) return Status::Error("session " + std::to_string(id) + " is already open");
  sessions_.emplace(std::piecewise_construct, std::forward_as_tuple(id), std::forward_as_tuple(pool_, capacity));
  policy_->Touch(id);
  return Status::Ok();
}

void KvStore::Close(uint64_t id) {
  if (swap_) swap_->Drop(id);
  policy_->Remove(id);
  sessions_.erase(id);
}

Result<int64_t> KvStore::Length(uint64_t id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return Status::Error("unknown session " + std::to_string(id));
  return it->second.length();
}

bool KvStore::OnDisk(uint64_t id) const {
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.on_disk();
}

Result<KvCache*> KvStore::Acquire(uint64_t id, int64_t start, int64_t n) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return Status::Error("unknown session " + std::to_string(id));
  KvCache& kv = it->second;
  Status st = kv.CheckStep(start, n);
  if (!st.ok()) return st;
  if (swap_) swap_->CountAccess(!kv.on_disk());
  if (kv.on_disk()) {
    st = BringBack(id, kv);
    if (!st.ok()) return st;
  }
  policy_->Touch(id);
  std::string why;
  while (true) {
    st = kv.Reserve(start + n);
    if (st.ok()) {
      auto scratch = pool_.ScratchFor(kv.capacity());
      if (scratch.ok()) return &kv;
      st = scratch.status();
    }
    pool_.ReleaseFree();
    if (!swap_ || !EvictOne(id, &why)) break;
  }
  if (!why.empty()) return Status::Error(st.message() + "; " + why);
  return st;
}

Status KvStore::BringBack(uint64_t id, KvCache& kv) {
  const auto t0 = std::chrono::steady_clock::now();
  Status st = MakeRoom(swap_->BytesToBringBack(id), id);
  if (!st.ok()) return Status::Error("cannot bring session " + std::to_string(id) + "'s KV back from NVMe: " + st.message());
  auto memory = swap_->Take(id);
  if (!memory.ok()) {
    spdlog::error("session={} {}", Hex(id), memory.status().message());
    kv.Lose(memory.status().message());
    return memory.status();
  }
  std::vector<KvPagePool::Page> pages;
  for (auto& m : memory.value()) pages.push_back(pool_.Adopt(std::move(m)));
  const size_t count = pages.size();
  kv.AdoptPages(std::move(pages));
  spdlog::info("session={} swap in: {} KV pages ({} KiB) back from NVMe in {:.2f} ms", Hex(id), count,
               (count * pool_.page_alloc_bytes()) >> 10, MillisSince(t0));
  return Status::Ok();
}

Status KvStore::MakeRoom(uint64_t bytes, uint64_t for_id) {
  std::string why;
  while (memory_.free(tier_) < bytes) {
    pool_.ReleaseFree();
    if (memory_.free(tier_) >= bytes) break;
    if (!swap_ || !EvictOne(for_id, &why)) {
      return Status::Error(FormatBytes(bytes) + " of KV pages need room but the node's " + MemoryTierName(tier_) +
                           " budget is " + FormatBytes(memory_.budget(tier_)) + " (" +
                           FormatBytes(memory_.used(tier_)) + " in use)" + (why.empty() ? "" : "; " + why));
    }
  }
  return Status::Ok();
}

bool KvStore::EvictOne(uint64_t for_id, std::string* why) {
  while (true) {
    uint64_t victim = 0;
    if (!policy_->Victim(for_id, &victim)) {
      if (why->empty()) *why = "no other session's KV is left in RAM to swap out";
      return false;
    }
    auto it = sessions_.find(victim);
    if (it == sessions_.end() || it->second.page_count() == 0) {
      policy_->Remove(victim);  // nothing of it to free: look further
      continue;
    }
    Status st = SwapOut(victim, it->second, for_id);
    if (!st.ok()) *why = st.message();
    return st.ok();
  }
}

Status KvStore::SwapOut(uint64_t id, KvCache& kv, uint64_t for_id) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t count = kv.page_count();
  Status st = swap_->SwapOut(id, kv.PageBytes());
  if (!st.ok()) {
    // A full disk fails every attempt until something frees room: one line a second.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_failure_log_ > std::chrono::seconds(1)) {
      last_failure_log_ = now;
      spdlog::error("session={} swap out failed: {}", Hex(id), st.message());
    }
    return st;
  }
  kv.DropPages();
  pool_.ReleaseFree();
  policy_->Remove(id);
  spdlog::info("session={} swap out: {} KV pages ({} KiB) to NVMe in {:.2f} ms, {} (policy {})", Hex(id), count,
               (count * pool_.page_alloc_bytes()) >> 10, MillisSince(t0),
               for_id == id ? "parked while idle" : "making room for session=" + Hex(for_id), policy_->name());
  return Status::Ok();
}

Status KvStore::Park(uint64_t id) {
  auto it = sessions_.find(id);
  if (!swap_ || it == sessions_.end() || it->second.on_disk() || it->second.page_count() == 0) return Status::Ok();
  return SwapOut(id, it->second, id);
}

}  // namespace strata
