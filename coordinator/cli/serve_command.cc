#include "coordinator/cli/serve_command.h"
#include "base/net_address.h"

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <climits>
#include <csignal>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "coordinator/api/api_server.h"
#include "coordinator/cli/command_output.h"
#include "coordinator/cluster/cluster_start.h"
#include "coordinator/cluster/credentials.h"
#include "coordinator/cluster/resolve_model.h"
#include "coordinator/pipeline/pipeline.h"
#include "coordinator/pipeline/tokenizer.h"
#include "storage/checkpoint.h"

namespace strata {
namespace {


// The API key from its file: one line, at least 16 characters.
Result<std::string> LoadApiKey(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read the API key file " + path);
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.size() < 16 || key.size() > 256) return Status::Error("the API key in " + path + " must have 16 to 256 characters");
  return key;
}

// The KV positions the cluster holds once loaded: on each stage, what its
// memory tiers (RAM, NVMe, device) have left after the weights, over the KV
// bytes a position costs on that stage's layers, less room for the node's
// attention scratches (up to four, each a context long); the least of the
// stages. Admission reserves from it.
int64_t KvTokensHeld(Pipeline& pipeline, RpcEnv& env, const ModelConfig& config, TensorDType dtype, int64_t context) {
  int64_t least = -1;
  for (size_t i = 0; i < pipeline.stage_count(); ++i) {
    const NodeStatus s = pipeline.stage_node(i).Status(env);
    uint64_t free = 0;
    for (const auto& t : s.tiers) free += t.budget > t.used ? t.budget - t.used : 0;
    const uint64_t per_token = static_cast<uint64_t>(s.end_layer - s.first_layer) * 2 * config.num_kv_heads *
                               config.head_dim * ElementSize(dtype);
    if (per_token == 0) continue;
    int64_t scratch = 64;
    while (scratch < context) scratch *= 2;
    const int64_t tokens = std::max<int64_t>(0, static_cast<int64_t>(free / per_token) - 4 * scratch);
    least = least < 0 ? tokens : std::min(least, tokens);
  }
  return std::max<int64_t>(least, 1);
}

}  // namespace

int RunServe(const ServeFlags& flags) {
  const GenerateFlags& g = flags.model;
  auto opened = OpenCommandModel(g.model, g.model_source, g.dtype);
  if (!opened.ok()) return Fail(opened.status().message());
  const TensorDType dtype = opened->dtype;
  const std::string& model_path = opened->path;
  const std::unique_ptr<Checkpoint>& ckpt = opened->checkpoint;
  const ModelConfig& config = ckpt->config();
  auto tokenizer = Tokenizer::Load(model_path, config, ckpt->gguf());
  if (!tokenizer.ok()) return Fail(tokenizer.status().message());
  ApiServerOptions options;
  options.context = flags.context > 0 ? std::min<int64_t>(flags.context, config.max_position) : config.max_position;
  options.max_running = static_cast<int>(flags.max_running);
  options.max_queue = static_cast<int>(flags.max_queue);
  options.prefill_chunk = g.prefill_chunk;
  char real[PATH_MAX];
  const std::string model_dir = ::realpath(model_path.c_str(), real) ? std::string(real) : model_path;
  options.model_name = !flags.served_name.empty() ? flags.served_name
                       : g.model.find('/') != std::string::npos && model_dir != g.model && g.model[0] != '/'
                           ? g.model
                           : model_dir.substr(model_dir.rfind('/') + 1);
  auto chat = ChatFormat::ForModel(model_dir, ckpt->gguf(), *tokenizer.value());
  if (!chat.ok()) return Fail(chat.status().message());
  options.chat = chat.value().get();
  if (config.num_layers < std::max<int64_t>(g.cluster.local, 1)) return Fail("more nodes than layers");

  auto io = kj::setupAsyncIo();
  auto credentials = LoadCredentials(g.cluster, io.provider->getTimer(), g.cluster.local > 0);
  if (!credentials.ok()) return Fail(credentials.status().message());
  if (!flags.api_key_file.empty()) {
    auto key = LoadApiKey(flags.api_key_file);
    if (!key.ok()) return Fail(key.status().message());
    options.api_key = key.value();
  } else if (!credentials->secret.empty() && g.cluster.local == 0) {
    return Fail("a cluster with a secret wants an API key for its API: give --api-key-file FILE");
  }
  auto http = ParseHostPort(flags.http);
  if (!http.ok()) return Fail("--http: " + http.status().message());
  if (options.api_key.empty() && !IsLoopbackHost(http->host)) {
    return Fail("refusing to serve the API on " + flags.http + " without --api-key-file");
  }
  auto cluster = StartCluster(g.cluster, credentials.value(), model_dir);
  if (!cluster.ok()) return Fail(cluster.status().message());
  Timeouts timeouts;
  timeouts.connect_ms = static_cast<uint32_t>(g.cluster.connect_timeout_ms);
  timeouts.call_ms = static_cast<uint32_t>(g.cluster.step_timeout_ms);
  RpcEnv env(io, timeouts, credentials->security());
  try {
    std::vector<std::unique_ptr<NodeConnection>> nodes;
    for (const auto& address : cluster->addresses) nodes.push_back(NodeConnection::Connect(env, address));
    Pipeline pipeline(env, std::move(nodes));
    const auto capacities = pipeline.Capacities();
    const uint64_t kv_tokens = static_cast<uint64_t>(options.context) * static_cast<uint64_t>(options.max_running);
    std::string note;
    auto plan = PlanShardsWithNvme(CostsOf(*ckpt, dtype, kv_tokens), capacities, &note);
    if (!plan.ok()) return Fail(plan.status().message());
    if (!note.empty()) std::cerr << "strata: note: " << note << std::endl;
    pipeline.Load(model_dir, plan.value(), dtype);
    std::cerr << plan->Describe(capacities);
    options.kv_tokens = flags.kv_tokens > 0 ? flags.kv_tokens : KvTokensHeld(pipeline, env, config, dtype, options.context);
    kj::Own<kj::ConnectionReceiver> receiver;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      receiver = io.provider->getNetwork().parseAddress(flags.http).wait(io.waitScope)->listen();
    })) {
      return Fail("cannot listen on " + flags.http + ": " + e->getDescription().cStr());
    }
    ApiServer api(io.provider->getTimer(), pipeline, *tokenizer.value(), options);
    // One line a reader can parse: what is served, and where.
    std::cout << "serving " << options.model_name << " on http://" << JoinHostPort(http->host, receiver->getPort())
              << " (chat template " << options.chat->name() << ", " << options.max_running
              << " requests at once, " << options.max_queue << " queued, KV for " << options.kv_tokens << " tokens)"
              << std::endl;
    kj::UnixEventPort::captureSignal(SIGTERM);
    auto serving = api.Listen(*receiver);
    auto stop = io.unixEventPort.onSignal(SIGINT).exclusiveJoin(io.unixEventPort.onSignal(SIGTERM));
    stop.exclusiveJoin(serving.then([]() -> siginfo_t { return {}; })).wait(io.waitScope);
    const ServeMetrics& m = api.metrics();
    std::cerr << "served " << m.requests_ok << " requests (" << m.requests_failed << " failed, " << m.requests_rejected
              << " turned away, " << m.requests_cancelled << " cancelled): " << m.prompt_tokens << " prompt and "
              << m.generation_tokens << " generated tokens" << std::endl;
  } catch (const PipelineError& e) {
    return Fail(e.what());
  }
  return 0;
}

}  // namespace strata
