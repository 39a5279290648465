#pragma once
// LayerCache: one layer's keys and values for one session as attention
// reads them, in the compute dtype. The KvCache gathers a layer's pages into
// one and scatters the new positions back; the engine's LayerForward writes
// and attends over it.
#include <torch/torch.h>

namespace strata {

struct LayerCache {
  torch::Tensor k, v;  // [kv_heads, capacity, head_dim], compute dtype
};

}  // namespace strata
