#include "node/kv_cache.h"

#include <string>

namespace strata {

KvCache::KvCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity,
                 const torch::TensorOptions& options)
    : k_(torch::zeros({layers, kv_heads, capacity, head_dim}, options)),
      v_(torch::zeros({layers, kv_heads, capacity, head_dim}, options)) {}

uint64_t KvCache::BytesPerToken(int64_t layers, int64_t kv_heads, int64_t head_dim, size_t element_size) {
  return 2 * static_cast<uint64_t>(layers) * static_cast<uint64_t>(kv_heads) * static_cast<uint64_t>(head_dim) *
         element_size;
}

Status KvCache::CheckStep(int64_t start, int64_t n) const {
  if (n <= 0 || start < 0 || start > length_ || start + n > capacity()) {
    return Status::Error("positions [" + std::to_string(start) + ", " + std::to_string(start + n) +
                         ") do not follow the session's " + std::to_string(length_) +
                         " cached tokens within its capacity " + std::to_string(capacity()));
  }
  return Status::Ok();
}

LayerCache KvCache::Layer(int64_t layer) { return LayerCache{k_[layer], v_[layer]}; }

}  // namespace strata
