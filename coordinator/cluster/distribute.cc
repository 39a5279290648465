#include "coordinator/cluster/distribute.h"
#include "base/net_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>

#include "base/escape.h"
#include "storage/shard_fetch.h"

namespace strata {
namespace {

// The local address this machine uses to reach `address` (HOST:PORT): a UDP
// socket "connected" there sends nothing, but the kernel picks the route.
std::string LocalAddressToward(const std::string& address) {
  const std::string host = HostOf(address);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), "9", &hints, &found) != 0 || found == nullptr) return "";
  std::string local;
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    sockaddr_in me{};
    socklen_t len = sizeof me;
    char text[INET_ADDRSTRLEN] = {};
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) == 0 &&
        ::inet_ntop(AF_INET, &me.sin_addr, text, sizeof text) != nullptr) {
      local = text;
    }
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  return local;
}

}  // namespace

Result<std::unique_ptr<ModelDistribution>> ModelDistribution::Start(kj::AsyncIoContext& io, const std::string& model_dir,
                                                                    const ClusterSecret& secret,
                                                                    const std::vector<std::string>& nodes,
                                                                    const std::string& listen,
                                                                    const std::string& cache_dir, ClusterTls* tls) {
  const auto t0 = std::chrono::steady_clock::now();
  auto manifest = BuildManifestCached(model_dir, cache_dir);
  if (!manifest.ok()) return manifest.status();
  spdlog::info("model {}: {} tensors in its manifest after {:.1f} s", manifest->id.substr(0, 12), manifest->tensors.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  bool all_local = true;
  for (const auto& a : nodes) all_local = all_local && IsLoopbackHost(HostOf(a));
  // Serve where the nodes can reach: loopback for local nodes, else every interface.
  std::string bind = listen.empty() ? (all_local ? "127.0.0.1:0" : "0.0.0.0:0") : listen;
  std::string host = HostOf(bind);
  if (IsWildcardHost(host)) host = all_local ? "127.0.0.1" : LocalAddressToward(nodes.front());
  if (host.empty()) return Status::Error("cannot tell which address the nodes reach this machine at; give --serve HOST:PORT");
  std::unique_ptr<ModelDistribution> d(new ModelDistribution());
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    d->receiver_ = io.provider->getNetwork().parseAddress(bind).wait(io.waitScope)->listen();
  })) {
    return Status::Error("cannot serve the model on " + EscapeText(bind) + ": " + e->getDescription().cStr());
  }
  const std::string token = ModelToken(secret, manifest->id, std::time(nullptr) + kModelTokenSeconds);
  // On a --tls cluster the shards go over https, to members only.
  d->source_ = Pipeline::Source{std::string(tls != nullptr ? "https://" : "http://") + host + ":" +
                                    std::to_string(d->receiver_->getPort()),
                                manifest->id, token};
  d->server_ = std::make_unique<ModelServer>(io.provider->getTimer(), ManifestFilesDir(model_dir),
                                            std::move(manifest.value()), "");
  d->server_->AcceptClusterTokens(secret);
  d->server_->UseTls(tls);
  d->serving_ = d->server_->Listen(*d->receiver_).eagerlyEvaluate([](kj::Exception&& e) {
    spdlog::warn("model server stopped: {}", EscapeText(e.getDescription().cStr()));
  });
  spdlog::info("serving model {} at {}", d->source_.model_id.substr(0, 12), d->source_.url);
  return d;
}

Result<std::unique_ptr<ModelDistribution>> ModelDistribution::UseServer(const std::string& url,
                                                                        const ClusterSecret& secret) {
  if (url.rfind("http://", 0) != 0 || url.size() > 512) return Status::Error("--model-server wants http://HOST:PORT");
  // The manifest is public (it names the model); its files want a token for it.
  FetchOptions o;
  o.base_url = url;
  auto manifest = GetRemoteManifest(o);
  if (!manifest.ok()) return manifest.status();
  std::unique_ptr<ModelDistribution> d(new ModelDistribution());
  d->source_ = Pipeline::Source{url, manifest->id,
                                ModelToken(secret, manifest->id, std::time(nullptr) + kModelTokenSeconds)};
  spdlog::info("nodes fetch model {} from {}", manifest->id.substr(0, 12), EscapeText(url));
  return d;
}

}  // namespace strata
