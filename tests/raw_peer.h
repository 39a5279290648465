#pragma once
// Test helpers that speak Cap'n Proto to a real strata-node: a raw
// connection (for hostile handshakes and messages) and the real,
// authenticated one (protocol/peer_link), both on a caller-owned event loop.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <string>

#include "protocol/peer_link.h"
#include "strata.capnp.h"

namespace strata::testing {

// A bare connection: only the bootstrap Node, no hello yet.
class RawPeer {
 public:
  RawPeer(kj::AsyncIoContext& io, const std::string& address);
  wire::Node::Client& node() { return node_; }

 private:
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<capnp::TwoPartyClient> client_;
  wire::Node::Client node_ = nullptr;
};

// The real handshake with `secret` (empty: none); throws kj::Exception.
kj::Own<PeerLink> Connect(kj::AsyncIoContext& io, const std::string& address, const std::string& secret,
                          wire::PeerRole role = wire::PeerRole::COORDINATOR);

// The description of what f() throws, or "" when it does not throw.
std::string ErrorOf(kj::Function<void()> f);

}  // namespace strata::testing
