#pragma once
// PeerLink: one authenticated RPC connection to a strata-node, opened the one
// way every Strata process opens it (connect, hello, version check). The
// coordinator uses it to reach its nodes and a node uses it to reach the
// next stage, so how peers prove themselves lives in this one place.
//
// Not thread-safe: a PeerLink and its promises belong to the event-loop
// thread that created them.
#include <kj/async-io.h>
#include <kj/timer.h>
#include <capnp/rpc-twoparty.h>

#include <cstdint>
#include <string>

#include "strata.capnp.h"

namespace strata {

struct PeerLink {
  std::string address;                  // HOST:PORT as dialled
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
  wire::Stage::Client stage = nullptr;  // what the hello granted
  // The node's info as it answered hello (a copy that outlives the response).
  kj::Own<capnp::MallocMessageBuilder> info_message;
  wire::NodeInfo::Reader info();
};

// Connects to `address` and says hello as `self_name`. The promise fails
// with a message naming the address when the peer cannot be reached, speaks
// another protocol version, or refuses, and after timeout_ms in any case.
kj::Promise<kj::Own<PeerLink>> ConnectPeer(kj::Network& network, kj::Timer& timer, const std::string& address,
                                          const std::string& self_name, uint32_t timeout_ms);

}  // namespace strata
