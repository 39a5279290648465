#pragma once
// KvStore: the KV caches of every session on one shard, and the tiers they
// live in. It owns the shard's KvPagePool (pages in RAM, or device memory on
// CUDA), the KvSwapSpace on NVMe when the node has a swap directory, and the
// EvictionPolicy that picks whose pages sink when RAM is short.
//
// Invariants:
// - A session being computed has all its pages in RAM (Acquire brings them
//   back, bit-exact and checksum-verified, before returning it).
// - The policy holds exactly the sessions whose pages are in RAM; a session
//   on disk is never a victim.
// - No tier's charge exceeds its budget: room is made by swapping out whole
//   sessions, least valuable first, never by over-committing.
//
// Not thread-safe: the compute thread owns it — except Prefetch and
// swap_stats, which any thread may call (the swap space locks itself).
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "node/kv/eviction_policy.h"
#include "node/kv/kv_cache.h"
#include "node/kv/kv_page_pool.h"
#include "node/kv/kv_swap.h"
#include "storage/env.h"

namespace strata {

struct KvStoreOptions {
  MemoryAccountant* memory = nullptr;  // borrowed
  MemoryTier tier = MemoryTier::kRam;
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  torch::TensorOptions options;        // pages' dtype and device
  int64_t page_tokens = 0;             // 0: the fewest that make a 256 KiB page
  std::string swap_dir;                // empty: no NVMe tier
  Env* env = nullptr;                  // for the swap file (borrowed)
  bool thread_pool_io = false;         // the Env's pread pool instead of io_uring (fault tests)
  std::string policy = "adaptive";     // lru | lfu | adaptive
  bool int8 = false;                   // pages hold int8 values with per-token, per-group scales
};

class KvStore {
 public:
  static Result<std::unique_ptr<KvStore>> Create(const KvStoreOptions& options);
  ~KvStore();

  uint64_t bytes_per_token() const { return pool_.bytes_per_token(); }
  bool has_swap() const { return swap_ != nullptr; }
  // The swap space, shared so that the event loop may Prefetch through it.
  std::shared_ptr<KvSwapSpace> swap() const { return swap_; }

  Status Open(uint64_t id, int64_t capacity);
  void Close(uint64_t id);
  size_t count() const { return sessions_.size(); }

  // `id`'s cache, ready for a step at [start, start + n): its pages in RAM
  // and taken up to start + n, the attention scratch charged. Others may be
  // swapped out to make the room.
  Result<KvCache*> Acquire(uint64_t id, int64_t start, int64_t n);
  // Writes `id`'s pages to NVMe now and frees their RAM (a kept session
  // that nobody is using). Without a swap space it does nothing.
  Status Park(uint64_t id);
  bool OnDisk(uint64_t id) const;
  Result<int64_t> Length(uint64_t id) const;  // positions cached

 private:
  KvStore(const KvStoreOptions& options, std::shared_ptr<KvSwapSpace> swap,
          std::unique_ptr<EvictionPolicy> policy);
  Status BringBack(uint64_t id, KvCache& kv);
  Status MakeRoom(uint64_t bytes, uint64_t for_id);
  // Swaps out the policy's victim; false (and *why) when there is none or it fails.
  bool EvictOne(uint64_t for_id, std::string* why);
  Status SwapOut(uint64_t id, KvCache& kv, uint64_t for_id);

  MemoryAccountant& memory_;
  const MemoryTier tier_;
  KvPagePool pool_;
  std::shared_ptr<KvSwapSpace> swap_;           // null without a swap directory
  std::unique_ptr<EvictionPolicy> policy_;
  std::map<uint64_t, KvCache> sessions_;        // by session id; destroyed before pool_
  std::chrono::steady_clock::time_point last_failure_log_{};
};

}  // namespace strata
