#include "node/server/rpc_listener.h"

#include "protocol/forwarding_stream.h"

#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/escape.h"
#include "protocol/cluster_tls.h"

namespace strata {
namespace {

// Reads through this stream count against a budget until the connection is
// authenticated: a stranger cannot make the node buffer a 64 MiB frame.
class GuardedStream final : public ForwardingStream {
 public:
  GuardedStream(kj::Own<kj::AsyncIoStream> inner, kj::Own<ConnectionState> state, uint64_t budget)
      : ForwardingStream(kj::mv(inner)), state_(kj::mv(state)), budget_(budget) {}

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
    if (!state_->authenticated) {
      if (used_ >= budget_) {
        state_->CutOff();
        return KJ_EXCEPTION(DISCONNECTED, "peer sent more than the pre-hello budget before an authenticated hello");
      }
      max_bytes = static_cast<size_t>(std::min<uint64_t>(max_bytes, budget_ - used_));
      min_bytes = std::min(min_bytes, max_bytes);  // a short read then ends the message: the peer is cut off
    }
    const size_t wanted = min_bytes;
    return inner_->tryRead(buffer, min_bytes, max_bytes).then([this, wanted](size_t n) {
      if (!state_->authenticated) {
        used_ += n;
        if (used_ >= budget_ && n >= wanted) state_->CutOff();  // nothing more will be read
      }
      return n;
    });
  }

 private:
  kj::Own<ConnectionState> state_;
  const uint64_t budget_;
  uint64_t used_ = 0;
};

}  // namespace

// One served connection; members are destroyed in reverse order, the RPC
// system before the network before the stream.
class RpcListener::Connection {
 public:
  Connection(kj::Own<kj::AsyncIoStream> stream, kj::Own<ConnectionState> state, const ListenerLimits& limits,
             wire::Node::Client bootstrap)
      : stream_(kj::heap<GuardedStream>(kj::mv(stream), kj::addRef(*state), limits.pre_auth_bytes)),
        network_(*stream_, capnp::rpc::twoparty::Side::SERVER, ReaderOptions(limits)),
        rpc_(capnp::makeRpcServer(network_, kj::mv(bootstrap))) {
    rpc_.setFlowLimit(limits.flow_limit_bytes / sizeof(capnp::word));
  }
  kj::Promise<void> onDisconnect() { return network_.onDisconnect(); }

 private:
  static capnp::ReaderOptions ReaderOptions(const ListenerLimits& limits) {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = limits.max_message_bytes / sizeof(capnp::word);
    return options;
  }
  kj::Own<GuardedStream> stream_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

RpcListener::RpcListener(kj::ConnectionReceiver& receiver, kj::Timer& timer, ClusterTls* tls,
                         const ListenerLimits& limits, NodeServer& server)
    : receiver_(receiver), timer_(timer), tls_(tls), limits_(limits), server_(server),
      gate_(timer, GateLimits{limits.max_connections, limits.max_per_peer}, "node",
            [this](kj::Own<kj::AsyncIoStream> stream, const std::string& peer) { return Greet(kj::mv(stream), peer); }) {
  gate_.SetEvictor([this]() { return EvictOldestStranger(); });
}

RpcListener::~RpcListener() = default;

kj::Promise<void> RpcListener::Run() { return gate_.Run(receiver_); }

// The node is full: the connection waiting longest for its hello goes, so
// silent strangers from many addresses cannot keep a member out until their
// hello deadline.
bool RpcListener::EvictOldestStranger() {
  while (!strangers_.empty()) {
    kj::Own<ConnectionState> oldest = kj::mv(strangers_.front());
    strangers_.pop_front();
    if (oldest->authenticated || oldest->cut()) continue;
    spdlog::info("closed a connection from {} to make room: no authenticated hello yet, and the node is full",
                 oldest->peer);
    oldest->CutOff(/*evicted=*/true);
    return true;
  }
  return false;
}

kj::Promise<void> RpcListener::Admit(kj::Own<kj::AsyncIoStream> stream) { return gate_.Admit(kj::mv(stream)); }

// An admitted connection: TLS (if any), then an authenticated hello within
// the deadline and the pre-hello byte budget, then RPC.
kj::Promise<void> RpcListener::Greet(kj::Own<kj::AsyncIoStream> stream, const std::string& peer) {
  auto state = kj::refcounted<ConnectionState>(peer);
  if (strangers_.size() >= 2 * static_cast<size_t>(limits_.max_connections)) {  // drop the settled ones
    std::deque<kj::Own<ConnectionState>> waiting;
    for (auto& s : strangers_) {
      if (!s->authenticated && !s->cut()) waiting.push_back(kj::mv(s));
    }
    strangers_ = kj::mv(waiting);
  }
  strangers_.push_back(kj::addRef(*state));
  kj::Promise<kj::Own<kj::AsyncIoStream>> ready =
      tls_ != nullptr ? tls_->context().wrapServer(kj::mv(stream))
                      : kj::Promise<kj::Own<kj::AsyncIoStream>>(kj::mv(stream));
  auto served = ready.then([this, state = kj::addRef(*state)](kj::Own<kj::AsyncIoStream> s) mutable {
    return Serve(kj::mv(s), kj::mv(state));
  });
  const uint32_t timeout_ms = limits_.hello_timeout_ms;
  auto deadline = timer_.afterDelay(timeout_ms * kj::MILLISECONDS)
                      .then([state = kj::addRef(*state), timeout_ms]() -> kj::Promise<void> {
                        if (state->authenticated) return kj::NEVER_DONE;
                        spdlog::info("closed a connection from {}: no authenticated hello within {} ms", state->peer,
                                     timeout_ms);
                        return kj::READY_NOW;
                      });
  const uint64_t budget = limits_.pre_auth_bytes;
  auto cut_off = state->OnCutOff().then([state = kj::addRef(*state), budget]() {
    if (state->evicted) return;  // logged where it was chosen
    spdlog::info("closed a connection from {}: it sent over {} bytes before an authenticated hello", state->peer, budget);
  });
  return served.exclusiveJoin(kj::mv(deadline)).exclusiveJoin(kj::mv(cut_off));
}

kj::Promise<void> RpcListener::Serve(kj::Own<kj::AsyncIoStream> stream, kj::Own<ConnectionState> state) {
  auto bootstrap = server_.Bootstrap(kj::addRef(*state));
  auto connection = kj::heap<Connection>(kj::mv(stream), kj::mv(state), limits_, kj::mv(bootstrap));
  return connection->onDisconnect().attach(kj::mv(connection));
}

}  // namespace strata
