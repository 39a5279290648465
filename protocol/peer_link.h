#pragma once
// PeerLink: one authenticated RPC connection to a strata-node, opened the one
// way every Strata process opens it. The coordinator uses it to reach its
// nodes and a node uses it to reach the next stage, so how peers prove
// themselves lives in this one place:
//   connect (TCP, then TLS with the cluster CA when configured)
//   -> challenge: the node proves the cluster secret (protocol/peer_auth.h)
//   -> hello: this side proves it, and receives the capability of its role.
//
// Not thread-safe: a PeerLink and its promises belong to the event-loop
// thread that created them. Refcounted so that a call in flight keeps the
// connection it was sent on alive after the link is replaced.
#include <kj/async-io.h>
#include <kj/refcount.h>
#include <kj/timer.h>
#include <capnp/rpc-twoparty.h>

#include <cstdint>
#include <string>

#include "protocol/peer_auth.h"
#include "strata.capnp.h"

namespace strata {

class ClusterTls;
class CoordinatorKey;

// How this process proves itself; both fields are borrowed and may be null.
struct LinkSecurity {
  const ClusterSecret* secret = nullptr;  // null or empty: no secret (insecure mode)
  ClusterTls* tls = nullptr;              // null: plain TCP
  const CoordinatorKey* coordinator_key = nullptr;  // set: a coordinator's hello is signed with it
};

class PeerLink final : public kj::Refcounted {
 public:
  std::string address;                         // HOST:PORT as dialled
  Bytes node_id;                               // the node's random instance id
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
  wire::Control::Client control = nullptr;     // role coordinator
  wire::Upstream::Client upstream = nullptr;   // role stage
  kj::Own<capnp::MallocMessageBuilder> info_message;  // hello's NodeInfo, copied

  wire::NodeInfo::Reader info();
};

// A TCP HOST:PORT and nothing else: no Unix sockets, no paths, no port 0.
bool IsTcpAddress(const std::string& address);

// Connects to `address` and says hello as `self_name` in `role`. Fails with
// one line naming the address when the peer cannot be reached, speaks another
// protocol version, does not prove the cluster secret, or refuses ours; and
// after timeout_ms in any case.
kj::Promise<kj::Own<PeerLink>> ConnectPeer(kj::Network& network, kj::Timer& timer, const std::string& address,
                                          const LinkSecurity& security, wire::PeerRole role,
                                          const std::string& self_name, uint32_t timeout_ms);

}  // namespace strata
