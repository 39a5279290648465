#pragma once
// The node's RPC face. A stranger reaching the port gets the bootstrap Node,
// which answers only `challenge` and `hello`; a hello that proves the
// cluster secret returns Control (to a coordinator) or Upstream (to the
// previous stage). Control opens Sessions. Everything here lives on the
// node's one KJ event-loop thread; math is sent to the ComputeThread, so a
// long forward never delays another call.
#include <kj/async-io.h>
#include <kj/refcount.h>
#include <kj/timer.h>

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/peer_auth.h"
#include "storage/env.h"
#include "strata.capnp.h"
#include "node/server/step_quota.h"
#include "protocol/cluster_tls.h"
#include "protocol/coordinator_key.h"

namespace strata {

class ClusterTls;
struct NodeCalibration;  // node/server/calibration.h

struct NodeOptions {
  std::string name;
  int threads = 1;
  uint64_t memory_budget = 0;     // RAM tier: weights + KV pages + buffers (hard limit)
  uint64_t gpu_memory_budget = 0; // device tier on CUDA (0: memory_budget)
  std::string device = "cpu";
  uint32_t rpc_timeout_ms = 120000;   // a forward to the next stage
  uint32_t connect_timeout_ms = 10000;
  uint32_t max_sessions = 256;        // open sessions on this node
  uint32_t max_batch = 32;            // decode steps of different sessions in one forward
  QuotaLimits queue;                  // steps taken but not yet run (node/server/step_quota)
  ClusterSecret secret;               // empty: no secret (loopback or --insecure)
  ClusterTls* tls = nullptr;          // borrowed from main(); null: plain TCP
  TlsFiles tls_files;                 // its files: a --tls node fetches shards over https with them
  // Set (borrowed from main()): a coordinator's hello must be signed with
  // the matching key (protocol/coordinator_key); the secret alone makes a
  // member, which gets only the upstream link.
  const CoordinatorPub* coordinator_pub = nullptr;
  // The NVMe tier: KV pages of the least valuable sessions go to a swap file
  // in swap_dir when RAM is short (empty: no NVMe tier), up to swap_budget.
  std::string swap_dir;
  uint64_t swap_budget = 0;
  std::string kv_policy = "adaptive";  // lru | lfu | adaptive
  bool kv_int8 = false;                // KV pages in int8 (--kv-dtype int8)
  uint32_t session_ttl_s = 3600;       // a kept session nobody uses is closed after this
  Env* env = nullptr;                  // borrowed from main(): the filesystem
  // Measured by main() on a thread of its own once the node listens, with
  // its compute threads: what the coordinator's planner splits layers by.
  // 0 until measured (a plan then splits by memory). Borrowed from main().
  const struct NodeCalibration* calibration = nullptr;
  // Where shards fetched from a coordinator's model server are kept, and
  // how much of the disk they may take (0: no limit).
  std::string cache_dir;
  uint64_t cache_limit = 0;
  // The directories a coordinator may name in loadShard (real paths). Any
  // other model comes through the cache, fetched and verified.
  std::vector<std::string> model_roots;
};

// What the listener knows of one connection. The bootstrap Node of that
// connection marks it authenticated after a good hello, which lifts the
// listener's pre-hello limits. Event-loop thread only.
class ConnectionState final : public kj::Refcounted {
 public:
  explicit ConnectionState(std::string peer_address) : peer(kj::mv(peer_address)) {
    auto paf = kj::newPromiseAndFulfiller<void>();
    cut_off_ = kj::mv(paf.fulfiller);
    on_cut_off_ = kj::mv(paf.promise);
  }
  const std::string peer;       // the remote IP, for logs and per-peer limits
  bool authenticated = false;

  // Asks the listener to close the connection now: a stranger over its
  // byte budget, or (`evicted`) the oldest without a hello when the node is full.
  void CutOff(bool evicted = false) {
    if (!cut_off_->isWaiting()) return;
    this->evicted = evicted;
    cut_off_->fulfill();
  }
  bool cut() { return !cut_off_->isWaiting(); }
  bool evicted = false;
  // Resolves on CutOff(); the listener takes it once.
  kj::Promise<void> OnCutOff() { return kj::mv(on_cut_off_); }

 private:
  kj::Own<kj::PromiseFulfiller<void>> cut_off_;
  kj::Promise<void> on_cut_off_ = nullptr;
};

class NodeState;

// Owns the node's state (compute thread, shard, sessions, next link) and
// makes one bootstrap capability per connection. Event-loop thread only.
class NodeServer {
 public:
  NodeServer(const NodeOptions& options, kj::Timer& timer, kj::Network& network);
  ~NodeServer();
  wire::Node::Client Bootstrap(kj::Own<ConnectionState> connection);
  const Bytes& node_id() const;  // random per process: what the node's beacons carry
  // The node's /metrics page (Prometheus text): its info, and the compute
  // time and idle fraction of its stage since it started.
  std::string MetricsText() const;

 private:
  kj::Own<NodeState> state_;
};

}  // namespace strata
