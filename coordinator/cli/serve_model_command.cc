#include "coordinator/cli/serve_model_command.h"
#include "base/net_address.h"

#include <kj/async-unix.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

#include "coordinator/cli/flags.h"
#include "coordinator/cluster/model_server.h"
#include "protocol/peer_auth.h"
#include "storage/model_manifest.h"
#include "storage/model_source.h"

namespace strata {

int ServeModel(int argc, char** argv) {
  std::string model, listen = "0.0.0.0:7780", secret_file, repo_id;
  bool insecure = false;
  FlagSet f("strata serve-model --model DIR|FILE.gguf [--listen HOST:PORT] [--cluster-secret-file F]",
            "Serves a model directory or GGUF file to the cluster's nodes: its manifest (every tensor's SHA-256)\n"
            "and byte ranges of its weight files. Requests need the cluster's token (from the secret).");
  f.String("model", &model, "checkpoint directory or GGUF file to serve");
  f.String("listen", &listen, "HOST:PORT to serve on");
  f.String("cluster-secret-file", &secret_file, "the cluster secret (else $STRATA_CLUSTER_SECRET)");
  f.String("repo-id", &repo_id,
           "also answer as a Hugging Face-compatible endpoint for repo ORG/NAME (for --model ORG/NAME --hf-endpoint)");
  f.Bool("insecure", &insecure, "without a secret, serve beyond loopback anyway (anyone may read the model)");
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) { std::cerr << "strata: " << error << "\n"; return 2; }
  if (help) { std::cout << f.Help(); return 0; }
  if (model.empty()) { std::cerr << "strata: --model DIR or FILE.gguf is required\n"; return 2; }
  auto secret = ClusterSecret::FromFlagOrEnv(secret_file);
  if (!secret.ok()) { std::cerr << "strata: " << secret.status().message() << "\n"; return 1; }
  auto bind = ParseHostPort(listen);
  if (!bind.ok()) { std::cerr << "strata: --listen: " << bind.status().message() << "\n"; return 2; }
  if (secret->empty() && !insecure && !IsLoopbackHost(bind->host)) {
    std::cerr << "strata: refusing to serve on " << listen << " without a cluster secret (give --cluster-secret-file, "
              << "or --insecure)\n";
    return 1;
  }
  if (!repo_id.empty()) {
    auto ref = ParseModelRef(repo_id);
    if (!ref.ok() || ref->kind != ModelRef::Kind::kHub || repo_id.find('@') != std::string::npos) {
      std::cerr << "strata: --repo-id wants ORG/NAME\n";
      return 2;
    }
  }
  auto manifest = BuildManifest(model);
  if (!manifest.ok()) { std::cerr << "strata: " << manifest.status().message() << "\n"; return 1; }
  kj::UnixEventPort::captureSignal(SIGINT);
  kj::UnixEventPort::captureSignal(SIGTERM);
  auto io = kj::setupAsyncIo();
  kj::Own<kj::ConnectionReceiver> receiver;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    receiver = io.provider->getNetwork().parseAddress(listen).wait(io.waitScope)->listen();
  })) {
    std::cerr << "strata: cannot listen on " << listen << ": " << e->getDescription().cStr() << "\n";
    return 1;
  }
  const std::string id = manifest->id;
  ModelServer server(io.provider->getTimer(), ManifestFilesDir(model), std::move(manifest.value()), "", ServeFaults{},
                     repo_id);
  server.AcceptClusterTokens(secret.value());
  // One line a reader can parse: where it serves and what.
  std::cout << "serving model " << id << " on " << JoinHostPort(bind->host, receiver->getPort()) << std::endl;
  auto serving = server.Listen(*receiver);
  auto stop = io.unixEventPort.onSignal(SIGINT).exclusiveJoin(io.unixEventPort.onSignal(SIGTERM));
  stop.exclusiveJoin(serving.then([]() -> siginfo_t { return {}; })).wait(io.waitScope);
  std::cerr << "served " << server.bytes_served() / 1048576.0 << " MiB in " << server.range_requests() << " ranges\n";
  return 0;
}

}  // namespace strata
