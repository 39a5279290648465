#pragma once
// For tests: a real ModelServer (coordinator/cluster/model_server) on a thread of its
// own, with its own event loop, listening on a loopback port.
#include <kj/async-io.h>
#include <kj/thread.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "coordinator/cluster/model_server.h"
#include "protocol/peer_auth.h"

namespace strata {
namespace testing {

// A ModelServer on a thread of its own (its own event loop), on loopback.
class ServerThread {
 public:
  // `cluster` (may be empty): ModelTokens of it are let in too.
  ServerThread(const std::string& dir, const ModelManifest& manifest, const std::string& token, ServeFaults faults,
               const std::string& repo_id = "", ClusterSecret cluster = ClusterSecret()) {
    std::promise<int> port;
    auto ready = port.get_future();
    thread_ = std::make_unique<kj::Thread>([this, &port, dir, manifest, token, faults, repo_id, cluster]() {
      auto io = kj::setupAsyncIo();
      auto receiver = io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
      ModelServer server(io.provider->getTimer(), dir, manifest, token, faults, repo_id);
      server.AcceptClusterTokens(cluster);
      auto listening = server.Listen(*receiver).eagerlyEvaluate(nullptr);
      port.set_value(static_cast<int>(receiver->getPort()));
      // Waiting on the timer runs the loop, and with it the server.
      while (!stop_.load()) io.provider->getTimer().afterDelay(20 * kj::MILLISECONDS).wait(io.waitScope);
    });
    url_ = "http://127.0.0.1:" + std::to_string(ready.get());
  }
  ~ServerThread() {
    stop_.store(true);
    thread_.reset();  // joins
  }
  const std::string& url() const { return url_; }

 private:
  std::atomic<bool> stop_{false};
  std::unique_ptr<kj::Thread> thread_;
  std::string url_;
};

}  // namespace testing
}  // namespace strata
