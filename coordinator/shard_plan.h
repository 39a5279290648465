#pragma once
// ShardPlan: which node owns which contiguous range of layers. Each node gets
// a share of the model's bytes in proportion to its free memory, at least one
// layer, and never more bytes than it has free (invariant 4).
// Pure logic; thread-compatible.
#include <cstdint>
#include <string>
#include <vector>

#include "storage/status.h"

namespace strata {

struct ModelCosts {
  std::vector<uint64_t> layer_bytes;  // [n_layers], in the compute dtype
  uint64_t embed_bytes = 0;           // held by the first stage
  uint64_t head_bytes = 0;            // final norm + LM head, held by the last stage
};

struct NodeCapacity {
  std::string name;
  std::string address;
  uint64_t free_bytes = 0;
  uint64_t nvme_free_bytes = 0;  // the node's NVMe tier: layers beyond its RAM stream from there
};

struct StageAssignment {
  size_t node = 0;            // index into the NodeCapacity list
  int64_t first_layer = 0;
  int64_t end_layer = 0;      // exclusive
  uint64_t bytes = 0;
};

struct ShardPlan {
  std::vector<StageAssignment> stages;  // in pipeline order, covering [0, n_layers)

  std::string Describe(const std::vector<NodeCapacity>& nodes) const;  // one line per stage
};

Result<ShardPlan> PlanShards(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes);
// PlanShards on RAM; when the model does not fit there and nodes have an
// NVMe tier, again counting it too (those nodes stream the layers their RAM
// cannot hold), with *note saying so.
Result<ShardPlan> PlanShardsWithNvme(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes,
                                     std::string* note);

}  // namespace strata
