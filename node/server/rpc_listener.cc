#include "node/server/rpc_listener.h"

#include "protocol/forwarding_stream.h"

#include <arpa/inet.h>
#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

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

std::string PeerIp(kj::AsyncIoStream& stream) {
  struct sockaddr_storage addr = {};
  kj::uint len = sizeof addr;
  std::string out = "unknown";
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { stream.getpeername(reinterpret_cast<sockaddr*>(&addr), &len); })) {
    return out;
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof text);
    out = text;
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, text, sizeof text);
    out = text;
  }
  return out;
}

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

void RpcListener::ErrorHandler::taskFailed(kj::Exception&& e) {
  spdlog::debug("connection ended: {}", EscapeText(e.getDescription().cStr()));
}

RpcListener::RpcListener(kj::ConnectionReceiver& receiver, kj::Timer& timer, ClusterTls* tls,
                         const ListenerLimits& limits, NodeServer& server)
    : receiver_(receiver), timer_(timer), tls_(tls), limits_(limits), server_(server), connections_(error_handler_) {}

RpcListener::~RpcListener() = default;

kj::Promise<void> RpcListener::Run() {
  // evalNow: kj's accept() may throw before it returns a promise (EMFILE).
  return kj::evalNow([this]() { return receiver_.accept(); }).then(
      [this](kj::Own<kj::AsyncIoStream> stream) {
        connections_.add(Admit(kj::mv(stream)));
        return Run();
      },
      [this](kj::Exception&& e) {
        // EMFILE and friends: the pending connection waits in the backlog
        // until idle connections time out and free descriptors.
        if (log_.ShouldLog("accept")) {
          spdlog::warn("accept failed ({}); pausing new connections for 250 ms ({} open)",
                       EscapeText(e.getDescription().cStr(), 160), open_);
        }
        return timer_.afterDelay(250 * kj::MILLISECONDS).then([this]() { return Run(); });
      });
}

kj::Promise<void> RpcListener::Admit(kj::Own<kj::AsyncIoStream> stream) {
  const std::string peer = PeerIp(*stream);
  uint32_t& from_peer = per_peer_[peer];
  if (open_ >= limits_.max_connections || from_peer >= limits_.max_per_peer) {
    if (from_peer == 0) per_peer_.erase(peer);
    if (log_.ShouldLog("full " + peer)) {
      spdlog::warn("refused a connection from {}: {} open of {}, {} from that address of {}", peer, open_,
                   limits_.max_connections, from_peer, limits_.max_per_peer);
    }
    return kj::READY_NOW;  // dropping the stream closes it
  }
  ++open_;
  ++from_peer;
  auto state = kj::refcounted<ConnectionState>(peer);
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
  auto cut_off = state->OnCutOff().then([peer, budget]() {
    spdlog::info("closed a connection from {}: it sent over {} bytes before an authenticated hello", peer, budget);
  });
  return served.exclusiveJoin(kj::mv(deadline))
      .exclusiveJoin(kj::mv(cut_off))
      .attach(kj::defer([this, peer]() { Release(peer); }));
}

kj::Promise<void> RpcListener::Serve(kj::Own<kj::AsyncIoStream> stream, kj::Own<ConnectionState> state) {
  auto bootstrap = server_.Bootstrap(kj::addRef(*state));
  auto connection = kj::heap<Connection>(kj::mv(stream), kj::mv(state), limits_, kj::mv(bootstrap));
  return connection->onDisconnect().attach(kj::mv(connection));
}

void RpcListener::Release(const std::string& peer) {
  --open_;
  auto it = per_peer_.find(peer);
  if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
}

}  // namespace strata
