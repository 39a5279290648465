#pragma once
// ShardPlan: which node owns which contiguous range of layers.
//
// With every node's measured memory bandwidth (decode reads each weight once
// a token, so a stage's time per token is its bytes over its bandwidth), the
// split minimises the slowest stage's expected time per token, each node
// bounded by its free memory; nodes that would not help are left out, each
// with its reason. Without measurements, each node gets a share of the bytes
// in proportion to its free memory. Either way every stage has at least one
// layer and never more bytes than its node has free (invariant 4).
// Pure logic; thread-compatible.
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace strata {

struct ModelCosts {
  std::vector<uint64_t> layer_bytes;  // [n_layers], in the compute dtype, KV included: what a stage must hold
  std::vector<uint64_t> layer_read_bytes;  // [n_layers] weights: what a decode step reads (empty: layer_bytes)
  uint64_t embed_bytes = 0;           // held by the first stage
  uint64_t head_bytes = 0;            // final norm + LM head, held by the last stage
};

struct NodeCapacity {
  std::string name;
  std::string address;
  uint64_t free_bytes = 0;
  uint64_t nvme_free_bytes = 0;  // the node's NVMe tier: layers beyond its RAM stream from there
  double bandwidth_gbps = 0;     // measured memory read bandwidth (0: unknown)
  double compute_gflops = 0;     // measured f32 matmul speed (shown; decode is bound by bandwidth)
};

struct StageAssignment {
  size_t node = 0;            // index into the NodeCapacity list
  int64_t first_layer = 0;
  int64_t end_layer = 0;      // exclusive
  uint64_t bytes = 0;
  double ms_per_token = 0;    // expected decode time of this stage (0: unknown)
};

struct LeftOut {
  size_t node = 0;
  std::string why;
};

struct ShardPlan {
  std::vector<StageAssignment> stages;  // in pipeline order, covering [0, n_layers)
  std::vector<LeftOut> left_out;        // nodes given no layers, and why
  double slowest_ms = 0;                // the slowest stage's time per token (0: unknown)
  double tokens_per_s = 0;              // one stream's expected decode rate (0: unknown)
  std::string basis;                    // what the split follows, for the table

  std::string Describe(const std::vector<NodeCapacity>& nodes) const;  // one line per stage
  // The table `strata plan` prints: node, address, layers, bytes, ms/token;
  // the nodes left out and why; the expected tokens/s.
  std::string Table(const std::vector<NodeCapacity>& nodes) const;
};

// The time per token a hop adds on a LAN: a decode step crosses every
// stage boundary once (hidden states of one token).
inline constexpr double kHopMs = 0.3;

Result<ShardPlan> PlanShards(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes);
// The speed-aware split when every node has a measured bandwidth; else PlanShards.
Result<ShardPlan> PlanShardsBySpeed(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes);
// PlanShards on RAM; when the model does not fit there and nodes have an
// NVMe tier, again counting it too (those nodes stream the layers their RAM
// cannot hold), with *note saying so.
Result<ShardPlan> PlanShardsWithNvme(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes,
                                     std::string* note);

}  // namespace strata
