#pragma once
// The node's RPC face: the bootstrap Node (hello) and the Stage it hands out.
// Everything here lives on the node's one KJ event-loop thread; math is sent
// to the ComputeThread, so a long forward never delays another call.
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstdint>
#include <string>

#include "strata.capnp.h"

namespace strata {

struct NodeOptions {
  std::string name;
  int threads = 1;
  uint64_t memory_budget = 0;     // bytes for weights + KV cache (hard limit)
  std::string device = "cpu";
  uint32_t rpc_timeout_ms = 120000;   // a forward to the next stage
  uint32_t connect_timeout_ms = 10000;
};

class NodeState;

// Creates the bootstrap capability of a node. The returned client keeps the
// node's state (compute thread, shard, sessions) alive.
wire::Node::Client MakeNodeServer(const NodeOptions& options, kj::Timer& timer, kj::Network& network);

}  // namespace strata
