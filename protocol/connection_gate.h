#pragma once
// ConnectionGate: the accept loop every front door of Strata shares (the
// node's RPC listener, the API server, the model server), with the limits
// that keep strangers from exhausting the process:
// - at most max_connections served at once and max_per_peer from one IP
//   address; a connection over either is closed at once, and logged;
// - an accept() that fails (EMFILE: out of file descriptors) pauses
//   accepting for 250 ms, logged and rate-limited; the process lives on and
//   the waiting connection is taken once descriptors are free again.
// What a connection is served with, and its own deadlines, are the door's.
//
// Not thread-safe: runs on one event loop's thread.
#include <kj/async-io.h>
#include <kj/function.h>
#include <kj/timer.h>

#include <cstdint>
#include <map>
#include <string>

#include "base/rate_limited_log.h"

namespace strata {

struct GateLimits {
  uint32_t max_connections = 256;
  uint32_t max_per_peer = 32;
};

// The remote IP address of a connection, or "unknown".
std::string PeerIp(kj::AsyncIoStream& stream);

class ConnectionGate {
 public:
  // Serves one admitted connection; resolves (or fails) when it is done.
  using Serve = kj::Function<kj::Promise<void>(kj::Own<kj::AsyncIoStream> stream, const std::string& peer)>;

  // `door` names it in the logs ("API", "model server").
  ConnectionGate(kj::Timer& timer, GateLimits limits, std::string door, Serve serve);

  // Accepts from `receiver` until the promise is dropped; never rejects.
  // Every connection it serves is cancelled with the gate.
  kj::Promise<void> Run(kj::ConnectionReceiver& receiver);
  // Serves one connection accepted elsewhere (within the limits, as Run
  // does); resolves when it closes.
  kj::Promise<void> Admit(kj::Own<kj::AsyncIoStream> stream);

  // When every connection is taken: `evict` may close one that matters less
  // (the node's: the oldest that has not proved the secret) and return true,
  // and the newcomer is let in; false: the newcomer is refused.
  void SetEvictor(kj::Function<bool()> evict) { evict_ = kj::mv(evict); }

  uint32_t open() const { return open_; }
  uint64_t refused() const { return refused_; }  // over a limit, since the start

 private:
  void Release(const std::string& peer);

  struct ErrorHandler final : kj::TaskSet::ErrorHandler {
    void taskFailed(kj::Exception&& e) override;
  };

  kj::Timer& timer_;
  const GateLimits limits_;
  const std::string door_;
  Serve serve_;
  kj::Maybe<kj::Function<bool()>> evict_;
  uint32_t open_ = 0;                         // connections being served
  uint64_t refused_ = 0;
  std::map<std::string, uint32_t> per_peer_;  // open connections per remote IP
  RateLimitedLog log_;
  ErrorHandler error_handler_;
  kj::TaskSet connections_;                   // one task per connection Run admitted
};

}  // namespace strata
