#pragma once
// NodeMetricsServer: a node's own Prometheus endpoint (`strata-node
// --metrics HOST:PORT`), kj-http on the node's event loop: GET /metrics
// answers NodeServer::MetricsText(); nothing else is served. It shows counts
// and sizes only, never model or session contents, and binds where its flag
// says (loopback unless told otherwise).
//
// Not thread-safe: the event loop's thread.
#include <kj/async-io.h>

#include <functional>
#include <memory>
#include <string>

namespace strata {

class NodeMetricsServer {
 public:
  NodeMetricsServer(kj::Timer& timer, std::function<std::string()> render);
  ~NodeMetricsServer();
  kj::Promise<void> Listen(kj::ConnectionReceiver& receiver);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
