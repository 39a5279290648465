#pragma once
// KvPagePool: fixed-size KV pages of one shard, charged to one memory tier.
// A page holds K and V of `page_tokens` consecutive positions across all of
// the shard's layers — [layers, 2, kv_heads, page_tokens, head_dim] in the
// compute dtype — and is at least kMinPageBytes, so that one page is one
// efficient NVMe I/O when pages come to be swapped. Every page is the same
// size: a freed page is reused as it is (no per-token allocation, no
// fragmentation); the pool keeps at most kMaxFreePages spare and releases the
// rest to the tier.
//
// The pool also owns the attention scratch that a step gathers a layer's
// pages into: [layers, kv_heads, length, head_dim] for K and for V, one per
// length in use (not per session): a session's capacity rounded up to a
// power of two. It remembers which session's positions
// each layer of it holds, so a session decoding alone gathers nothing: only
// its new positions are written back to its pages.
//
// Not thread-safe: the compute thread owns the pool.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <vector>

#include "node/kv/kv_swap.h"
#include "node/kv/memory_accountant.h"
#include "storage/page_io.h"

namespace strata {

inline constexpr uint64_t kMinPageBytes = 256u << 10;
inline constexpr int64_t kInt8Group = 32;  // channels that share one int8 scale

class KvPagePool {
 public:
  struct Page {
    AlignedBytes memory;  // on the CPU: what `data` views (page_alloc_bytes, so it can go to disk as it is)
    torch::Tensor data;   // [layers, 2, kv_heads, page_tokens, head_dim], compute dtype or int8
    torch::Tensor scales; // int8 pages: [layers, 2, kv_heads, page_tokens, groups] f32, after data
    MemoryCharge charge;  // its bytes in the tier
  };

  // page_tokens = 0 picks the fewest tokens that make a page kMinPageBytes.
  // `options` is the compute dtype and device (the scratch's); int8 pages
  // hold each value as int8 with an f32 scale per token, head and group of
  // kInt8Group channels (see kv_cache.cc for why per token).
  KvPagePool(MemoryAccountant& memory, MemoryTier tier, int64_t layers, int64_t kv_heads, int64_t head_dim,
             const torch::TensorOptions& options, int64_t page_tokens = 0, bool int8 = false);

  bool int8() const { return int8_; }
  int64_t group() const { return group_; }  // channels per int8 scale

  int64_t page_tokens() const { return page_tokens_; }
  uint64_t page_bytes() const { return page_bytes_; }
  uint64_t bytes_per_token() const { return bytes_per_token_; }
  // What a page costs its tier: page_bytes rounded up to 4096 on the CPU,
  // whose pages are aligned for direct I/O.
  uint64_t page_alloc_bytes() const { return page_alloc_bytes_; }
  bool on_cpu() const { return options_.device().is_cpu(); }

  // A page from the free list, or a new one charged to the tier; refuses
  // with the accountant's error when the tier is full.
  Result<Page> Take();
  void Give(Page page);
  // Releases the spare pages to the tier (memory is short).
  void ReleaseFree() { free_.clear(); }
  // A page whose memory came back from disk (CPU pools only).
  Page Adopt(PageMemory memory) const;

  // The attention scratch of sessions of `capacity` positions (shared by
  // every capacity with the same power-of-two bucket). Charged to
  // the tier too. `valid[l]` says whose positions [0, n) layer l holds.
  struct Holder {
    const void* owner = nullptr;  // the KvCache whose positions these are
    int64_t positions = 0;
  };
  struct Scratch {
    torch::Tensor k, v;           // [layers, kv_heads, capacity, head_dim]
    std::vector<Holder> valid;    // [layers]
    MemoryCharge charge;
  };
  Result<Scratch*> ScratchFor(int64_t session_capacity);
  // The scratch length of a session of `session_capacity` positions.
  static int64_t ScratchLength(int64_t session_capacity);
  // Forgets `owner` in every scratch (it closed, or rewound to `keep` positions).
  void Forget(const void* owner, int64_t keep = 0);

 private:
  static constexpr size_t kMaxFreePages = 16;
  MemoryAccountant& memory_;
  const MemoryTier tier_;
  const int64_t layers_, kv_heads_, head_dim_;
  const torch::TensorOptions options_;
  const bool int8_;
  int64_t group_ = 0, groups_ = 0;          // int8: channels per scale, scales per head
  uint64_t bytes_per_token_ = 0;
  int64_t page_tokens_ = 0;
  uint64_t page_bytes_ = 0;
  uint64_t page_alloc_bytes_ = 0;
  std::vector<Page> free_;
  static constexpr size_t kMaxScratches = 4;
  std::map<int64_t, Scratch> scratch_;  // by length (a power of two)
};

}  // namespace strata
