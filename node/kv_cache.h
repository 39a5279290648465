#pragma once
// KvCache: the keys and values one session has cached for this node's
// layers, and which positions of them are valid. The engine asks it for the
// block of one layer that LayerForward writes new positions into and attends
// over; it owns the rule that a step must follow what is cached.
//
// Today one block per session, allocated for its whole capacity at open.
// The paged, tiered store of issue 7 changes what is inside, not this
// interface's callers.
//
// Not thread-safe: the compute thread owns every KvCache.
#include <torch/torch.h>

#include <cstdint>

#include "node/llama_layers.h"
#include "storage/status.h"

namespace strata {

class KvCache {
 public:
  // Room for `capacity` positions of `layers` layers, zeroed.
  KvCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity, const torch::TensorOptions& options);

  // Bytes one position costs across the layers: K and V.
  static uint64_t BytesPerToken(int64_t layers, int64_t kv_heads, int64_t head_dim, size_t element_size);

  int64_t capacity() const { return k_.size(2); }
  int64_t length() const { return length_; }  // positions [0, length) hold valid keys/values

  // Whether positions [start, start + n) may be computed next: they must
  // follow the cached ones (start <= length; an earlier start overwrites)
  // and fit the capacity. Checked before any work.
  Status CheckStep(int64_t start, int64_t n) const;
  // The block of `layer` for LayerForward: [kv_heads, capacity, head_dim].
  LayerCache Layer(int64_t layer);
  // After a step at [start, end): positions from end on are no longer valid.
  void Commit(int64_t end) { length_ = end; }

 private:
  torch::Tensor k_, v_;  // [layers, kv_heads, capacity, head_dim], compute dtype
  int64_t length_ = 0;
};

}  // namespace strata
