#pragma once
// KvCache: the keys and values one session has cached for this node's
// layers, and which positions of them are valid. They live in fixed-size
// pages from the node's KvPagePool, taken as tokens arrive (not at open) and
// given back when the session closes or rewinds. A step gathers one layer's
// pages into the pool's scratch, LayerForward writes the new positions there
// and attends over them, and the new positions go back into the pages.
//
// Not thread-safe: the compute thread owns every KvCache.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "node/kv/kv_page_pool.h"
#include "node/kv/layer_cache.h"

namespace strata {

class KvCache {
 public:
  KvCache(KvPagePool& pool, int64_t capacity) : pool_(pool), capacity_(capacity) {}
  ~KvCache();  // gives its pages back
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }  // positions [0, length) hold valid keys/values
  // Where its pages are: RAM (the pool's tier), or written to NVMe by the
  // KvStore, which then calls DropPages and later AdoptPages.
  bool on_disk() const { return on_disk_; }
  size_t page_count() const { return pages_.size(); }
  // Each page's bytes, for the swap space (CPU pages only).
  std::vector<const uint8_t*> PageBytes() const;
  void DropPages();                                      // they are on disk now
  void AdoptPages(std::vector<KvPagePool::Page> pages);  // back from disk, in order
  // Its KV could not be brought back: every later step is refused, naming why.
  void Lose(const std::string& why);

  // Whether positions [start, start + n) may be computed next: they must
  // follow the cached ones (start <= length; an earlier start overwrites)
  // and fit the capacity. Checked before any work.
  Status CheckStep(int64_t start, int64_t n) const;
  // Takes the pages that positions [0, end) need; refuses, naming the tier
  // and its budget, when the tier is full.
  Status Reserve(int64_t end);
  // `layer`'s keys and values of [0, start) in the scratch, ready for
  // LayerForward to add positions from `start` on.
  Result<LayerCache> Gather(int64_t layer, int64_t start);
  // Writes positions [start, end) of `scratch` back into `layer`'s pages.
  void Scatter(int64_t layer, const LayerCache& scratch, int64_t start, int64_t end);
  // After a step at [start, end): positions from end on are no longer valid,
  // and pages past them go back to the pool.
  void Commit(int64_t end);

 private:
  KvPagePool& pool_;                       // borrowed: the shard's
  const int64_t capacity_;
  int64_t length_ = 0;
  bool on_disk_ = false;                   // invariant: on_disk_ implies pages_ is empty
  std::string lost_;                       // why its KV is gone, or empty
  std::vector<KvPagePool::Page> pages_;    // page i holds positions [i*P, (i+1)*P)
};

}  // namespace strata
