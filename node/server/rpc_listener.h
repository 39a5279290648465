#pragma once
// RpcListener: the node's front door. It accepts connections and gives each
// its own Cap'n Proto RPC system whose bootstrap is a fresh Node from
// NodeServer, and keeps strangers from exhausting the node:
// - at most max_connections at once, and max_per_peer from one IP address;
// - a connection that has not completed an authenticated hello within
//   hello_timeout_ms is closed, and may send at most pre_auth_bytes before;
// - once authenticated, at most flow_limit_bytes of calls in flight and
//   messages of at most max_message_bytes;
// - an accept() that fails (EMFILE: out of file descriptors) pauses
//   accepting for a moment and is logged, rate-limited; the node lives on.
// The accept loop and the connection caps are protocol/connection_gate's.
// With TLS, the handshake happens inside the same hello deadline.
//
// Not thread-safe: runs on the node's event-loop thread.
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "node/server/node_server.h"
#include "protocol/connection_gate.h"

namespace strata {

struct ListenerLimits {
  uint32_t max_connections = 256;
  uint32_t max_per_peer = 32;
  uint32_t hello_timeout_ms = 10000;
  uint64_t pre_auth_bytes = 64 << 10;
  uint64_t flow_limit_bytes = 256ull << 20;
  uint64_t max_message_bytes = 64ull << 20;
};

class RpcListener {
 public:
  RpcListener(kj::ConnectionReceiver& receiver, kj::Timer& timer, ClusterTls* tls, const ListenerLimits& limits,
              NodeServer& server);
  ~RpcListener();

  // Accepts until the promise is dropped; never rejects.
  kj::Promise<void> Run();

  // Serves one connection that was accepted elsewhere (Run() calls it; the
  // RPC fuzzer feeds it an in-process pipe). Resolves when it closes.
  kj::Promise<void> Admit(kj::Own<kj::AsyncIoStream> stream);

 private:
  class Connection;
  kj::Promise<void> Greet(kj::Own<kj::AsyncIoStream> stream, const std::string& peer);
  bool EvictOldestStranger();
  kj::Promise<void> Serve(kj::Own<kj::AsyncIoStream> stream, kj::Own<ConnectionState> state);

  kj::ConnectionReceiver& receiver_;
  kj::Timer& timer_;
  ClusterTls* tls_;  // borrowed; null: plain TCP
  ListenerLimits limits_;
  NodeServer& server_;
  std::deque<kj::Own<ConnectionState>> strangers_;  // in arrival order; some may have proved themselves since
  ConnectionGate gate_;  // last: its connections use the members above
};

}  // namespace strata
