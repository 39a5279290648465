#pragma once
// Test helpers that speak Cap'n Proto to a real strata-node: a raw
// connection (for hostile handshakes and messages) and the real,
// authenticated one (protocol/peer_link), both on a caller-owned event loop.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <deque>
#include <map>
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
// A sink that hands each report to whoever waits for its position; a report
// that comes before anyone waits is kept for the next waiter. Event-loop
// thread only.
class AwaitingSink final : public wire::StepSink::Server {
 public:
  // The token of the next report for `start`, or its failure as a kj::Exception.
  kj::Promise<uint32_t> Next(uint32_t start);

 protected:
  kj::Promise<void> done(DoneContext context) override;
  kj::Promise<void> failed(FailedContext context) override;

 private:
  struct Report {
    uint32_t token = 0;
    std::string failure;  // empty: done
  };
  void Deliver(uint32_t start, Report report);
  std::map<uint32_t, std::deque<kj::Own<kj::PromiseFulfiller<uint32_t>>>> waiting_;
  std::map<uint32_t, std::deque<Report>> arrived_;
};

// An AwaitingSink set on sessions (Session.setSink, each over its own link);
// `client` keeps it alive as long as the test holds this.
struct SinkOnStages {
  AwaitingSink* sink = nullptr;
  wire::StepSink::Client client = nullptr;
};
kj::Promise<SinkOnStages> SetSinkAsync(const std::vector<wire::Session::Client*>& stages);
SinkOnStages SetSink(kj::AsyncIoContext& io, const std::vector<wire::Session::Client*>& stages);

// A step the way a coordinator runs one (Session.submit, the only step
// protocol): a fresh AwaitingSink on `first` and on the sessions of the
// later stages (`later`, in pipeline order), the step `fill` writes
// submitted to `first`, and the token sampled for it from the stage that
// reports it. Rejects with submit's refusal or the failure a stage reports;
// after 60 s, with a timeout.
kj::Promise<uint32_t> SubmitAsync(kj::AsyncIoContext& io, wire::Session::Client& first,
                                  kj::Function<void(wire::Step::Builder)> fill,
                                  std::vector<wire::Session::Client*> later = {});
// Token ids at [start, start + n), sampled; waits for the token.
uint32_t SubmitTokens(kj::AsyncIoContext& io, wire::Session::Client& first, uint32_t start,
                      const std::vector<uint32_t>& tokens, std::vector<wire::Session::Client*> later = {});

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
