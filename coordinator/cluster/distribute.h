#pragma once
// ModelDistribution: a model directory the coordinator holds, served to its
// nodes (`strata generate --distribute`): the manifest with every tensor's
// SHA-256 (storage/model_manifest), the ModelServer on this process's event
// loop, and the URL and token the nodes fetch with. The URL's host is the
// address this machine reaches the nodes from (loopback for local nodes).
//
// Not thread-safe: the event loop's thread.
#include <kj/async-io.h>

#include <memory>
#include <string>
#include <vector>

#include "coordinator/cluster/model_server.h"
#include "coordinator/pipeline/pipeline.h"
#include "protocol/peer_auth.h"

namespace strata {

class ModelDistribution {
 public:
  // `listen` is HOST:PORT for the server ("": chosen from the nodes' addresses).
  // The manifest is kept in `cache_dir` (storage/model_manifest): an
  // unchanged model is hashed once, not at every run.
  static Result<std::unique_ptr<ModelDistribution>> Start(kj::AsyncIoContext& io, const std::string& model_dir,
                                                          const ClusterSecret& secret,
                                                          const std::vector<std::string>& node_addresses,
                                                          const std::string& listen, const std::string& cache_dir,
                                                          class ClusterTls* tls = nullptr);
  // A model server that already runs (`strata serve-model`): the nodes
  // fetch from it; this process serves nothing.
  static Result<std::unique_ptr<ModelDistribution>> UseServer(const std::string& url, const ClusterSecret& secret);
  const Pipeline::Source& source() const { return source_; }
  uint64_t bytes_served() const { return server_ ? server_->bytes_served() : 0; }  // by this process

 private:
  ModelDistribution() = default;
  Pipeline::Source source_;
  kj::Own<kj::ConnectionReceiver> receiver_;
  std::unique_ptr<ModelServer> server_;
  kj::Promise<void> serving_ = nullptr;
};

}  // namespace strata
