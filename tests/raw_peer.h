#pragma once
// Test helpers that speak Cap'n Proto to a real strata-node: a raw
// connection (for hostile handshakes and messages) and the real,
// authenticated one (protocol/peer_link), both on a caller-owned event loop.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <string>
#include <utility>
#include <vector>

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

// Loads [first, end) of the model in `model` (a directory under the node's
// --models-dir).
void Load(kj::AsyncIoContext& io, PeerLink& link, const std::string& model, uint32_t first, uint32_t end);
// Makes the node stage `index` of `count` (the last stage when next is empty).
void SetNext(kj::AsyncIoContext& io, PeerLink& link, const std::string& next, uint32_t index, uint32_t count);

struct Opened {
  wire::Session::Client session = nullptr;
  Bytes ticket;
};
// Opens a greedy session (top_p 1, temperature 0).
Opened Open(kj::AsyncIoContext& io, PeerLink& link, uint32_t capacity, const Bytes& downstream = {});
// Session.forward of token ids with sampling; the sampled token.
uint32_t ForwardTokens(kj::AsyncIoContext& io, wire::Session::Client& session, uint32_t start,
                       const std::vector<uint32_t>& tokens);

// A sink that records what the stages report about submitted steps.
class RecordingSink final : public wire::StepSink::Server {
 public:
  std::vector<std::pair<uint32_t, uint32_t>> results;  // (start, token)
  std::vector<std::string> failures;

 protected:
  kj::Promise<void> done(DoneContext context) override;
  kj::Promise<void> failed(FailedContext context) override;
};

}  // namespace strata::testing
