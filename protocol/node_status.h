#pragma once
// NodeStatus: what a node reports about itself (wire::NodeInfo), read in
// one place (ReadNodeInfo: every peer string escaped and bounded) and
// rendered as Prometheus text in one place (NodeMetricsText), for the
// node's own /metrics and for `strata serve`'s. Plain values; no locking.
#include <cstdint>
#include <string>
#include <vector>

#include "strata.capnp.h"

namespace strata {

// What a node says about itself, as the coordinator keeps it: every string
// a peer's, escaped and bounded.
struct NodeStatus {
  std::string name;
  std::string address;
  uint64_t free_bytes = 0;
  uint32_t threads = 0;
  std::string device;
  bool shard_loaded = false;
  uint32_t first_layer = 0, end_layer = 0;
  uint32_t active_sessions = 0;
  uint64_t shard_bytes = 0;
  uint64_t resident_bytes = 0;
  bool secured = false, tls = false;  // checks a cluster secret; speaks TLS
  struct Tier {
    std::string name;                 // "device" | "ram" | "nvme"
    uint64_t used = 0, budget = 0;
  };
  std::vector<Tier> tiers;            // every tier with a budget
  struct Swap {
    uint64_t pages_out = 0, pages_in = 0, bytes_out = 0, bytes_in = 0;
    uint64_t write_micros = 0, read_micros = 0, prefetch_hits = 0, prefetch_misses = 0;
    uint64_t failures = 0, sessions_on_disk = 0, ram_hits = 0, ram_misses = 0;
  } swap;                             // the NVMe tier's traffic
  uint32_t kept_sessions = 0;
  double compute_gflops = 0, bandwidth_gbps = 0;  // measured at the node's start (0: not yet)
  uint64_t steps = 0, batches = 0, batch_rows = 0;  // forwards; batch_rows / batches: the mean batch
  uint64_t compute_micros = 0, uptime_micros = 0;   // busy time, and time since the node started
  std::string cpu_features, kernels;                // the node's CPU probe and its kernel paths
};

NodeStatus ReadNodeInfo(wire::NodeInfo::Reader info, const std::string& address);

// One node's samples: `labels` are its Prometheus labels, already escaped
// (`node="a"`, or `stage="0",node="a"`); a node that is not up has only
// strata:node_up.
struct NodeMetricsRow {
  std::string labels;
  bool up = true;
  NodeStatus status;
};
std::string NodeMetricsText(const std::vector<NodeMetricsRow>& rows);

}  // namespace strata
