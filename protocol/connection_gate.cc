#include "protocol/connection_gate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "base/escape.h"

namespace strata {

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

void ConnectionGate::ErrorHandler::taskFailed(kj::Exception&& e) {
  spdlog::debug("connection ended: {}", EscapeText(e.getDescription().cStr(), 200));
}

ConnectionGate::ConnectionGate(kj::Timer& timer, GateLimits limits, std::string door, Serve serve)
    : timer_(timer), limits_(limits), door_(std::move(door)), serve_(kj::mv(serve)), connections_(error_handler_) {}

kj::Promise<void> ConnectionGate::Run(kj::ConnectionReceiver& receiver) {
  // evalNow: kj's accept() may throw before it returns a promise (EMFILE).
  return kj::evalNow([&receiver]() { return receiver.accept(); })
      .then(
          [this, &receiver](kj::Own<kj::AsyncIoStream> stream) {
            connections_.add(Admit(kj::mv(stream)));
            return Run(receiver);
          },
          [this, &receiver](kj::Exception&& e) {
            // EMFILE and friends: the pending connection waits in the backlog
            // until connections close and free descriptors.
            if (log_.ShouldLog("accept")) {
              spdlog::warn("{}: accept failed ({}); pausing new connections for 250 ms ({} open)", door_,
                           EscapeText(e.getDescription().cStr(), 160), open_);
            }
            return timer_.afterDelay(250 * kj::MILLISECONDS).then([this, &receiver]() { return Run(receiver); });
          });
}

kj::Promise<void> ConnectionGate::Admit(kj::Own<kj::AsyncIoStream> stream) {
  const std::string peer = PeerIp(*stream);
  uint32_t& from_peer = per_peer_[peer];
  bool full = open_ >= limits_.max_connections;
  if (full && from_peer < limits_.max_per_peer) {
    KJ_IF_MAYBE(evict, evict_) { full = !(*evict)(); }  // its slot frees as it closes, a turn later
  }
  if (full || from_peer >= limits_.max_per_peer) {
    if (from_peer == 0) per_peer_.erase(peer);
    ++refused_;
    if (log_.ShouldLog("full " + peer)) {
      spdlog::warn("{}: refused a connection from {}: {} open of {}, {} from that address of {}", door_, peer, open_,
                   limits_.max_connections, from_peer, limits_.max_per_peer);
    }
    return kj::READY_NOW;  // dropping the stream closes it
  }
  ++open_;
  ++from_peer;
  return kj::evalNow([&]() { return serve_(kj::mv(stream), peer); })
      .attach(kj::defer([this, peer]() { Release(peer); }));
}

void ConnectionGate::Release(const std::string& peer) {
  --open_;
  auto it = per_peer_.find(peer);
  if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
}

}  // namespace strata
