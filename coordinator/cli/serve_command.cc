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
#include "storage/read_file.h"

namespace strata {
namespace {


// The API key from its file: one line, at least 16 characters.
Result<std::string> LoadApiKey(const std::string& path) {
  auto text = ReadPrivateFile(path, "the API key file", 4096);
  if (!text.ok()) return text.status();
  std::string key = text->substr(0, text->find('\n'));
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
    const NodeStatus s = env.Await(pipeline.stage_node(i).Status(env), 0, "");
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

// What the API serves: the model opened, its tokenizer and chat template,
// and the API's options.
struct ServedModel {
  CommandModel model;
  std::string dir;  // the model's real path, as the nodes read it
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatFormat> chat;
  ApiServerOptions options;
};

Result<ServedModel> OpenServedModel(const ServeFlags& flags) {
  const GenerateFlags& g = flags.model;
  ServedModel m;
  auto opened = OpenCommandModel(g.model, g.model_source, g.dtype);
  if (!opened.ok()) return opened.status();
  m.model = std::move(opened.value());
  const ModelConfig& config = m.model.checkpoint->config();
  auto tokenizer = Tokenizer::Load(m.model.path, config, m.model.checkpoint->gguf());
  if (!tokenizer.ok()) return tokenizer.status();
  m.tokenizer = std::move(tokenizer.value());
  ApiServerOptions& options = m.options;
  options.context = flags.context > 0 ? std::min<int64_t>(flags.context, config.max_position) : config.max_position;
  options.max_running = static_cast<int>(flags.max_running);
  options.max_queue = static_cast<int>(flags.max_queue);
  options.prefill_chunk = g.prefill_chunk;
  options.max_connections = static_cast<uint32_t>(flags.max_connections);
  options.max_connections_per_peer = static_cast<uint32_t>(flags.max_connections_per_peer);
  options.write_timeout_ms = static_cast<uint32_t>(flags.write_timeout_ms);
  char real[PATH_MAX];
  m.dir = ::realpath(m.model.path.c_str(), real) ? std::string(real) : m.model.path;
  options.model_name = !flags.served_name.empty() ? flags.served_name
                       : g.model.find('/') != std::string::npos && m.dir != g.model && g.model[0] != '/'
                           ? g.model
                           : m.dir.substr(m.dir.rfind('/') + 1);
  auto chat = ChatFormat::ForModel(m.dir, m.model.checkpoint->gguf(), *m.tokenizer);
  if (!chat.ok()) return chat.status();
  m.chat = std::move(chat.value());
  options.chat = m.chat.get();
  if (config.num_layers < std::max<int64_t>(g.cluster.local, 1)) return Status::Error("more nodes than layers");
  return m;
}

// The API key, and the rule that an API off loopback needs one.
Status CheckApiAccess(const ServeFlags& flags, const Credentials& credentials, const HostPort& http,
                      ApiServerOptions* options) {
  if (!flags.api_key_file.empty()) {
    auto key = LoadApiKey(flags.api_key_file);
    if (!key.ok()) return key.status();
    options->api_key = key.value();
  } else if (!credentials.secret.empty() && flags.model.cluster.local == 0) {
    return Status::Error("a cluster with a secret wants an API key for its API: give --api-key-file FILE");
  }
  if (options->api_key.empty() && !IsLoopbackHost(http.host)) {
    return Status::Error("refusing to serve the API on " + flags.http + " without --api-key-file");
  }
  options->loopback_bind = IsLoopbackHost(http.host);
  return Status::Ok();
}

// Plans for --max-running sessions of the context each and loads the split.
Status PlanAndLoad(const ServeFlags& flags, ServedModel& m, RpcEnv& env, Pipeline& pipeline) {
  const auto capacities = pipeline.Capacities();
  ApiServerOptions& options = m.options;
  const uint64_t kv_tokens = static_cast<uint64_t>(options.context) * static_cast<uint64_t>(options.max_running);
  std::string note;
  auto plan = PlanShardsWithNvme(CostsOf(*m.model.checkpoint, m.model.dtype, kv_tokens), capacities, &note);
  if (!plan.ok()) return plan.status();
  if (!note.empty()) std::cerr << "strata: note: " << note << std::endl;
  env.Await(pipeline.Load(m.dir, plan.value(), m.model.dtype), 0, "");
  std::cerr << plan->Describe(capacities);
  options.kv_tokens = flags.kv_tokens > 0 ? flags.kv_tokens
                                          : KvTokensHeld(pipeline, env, m.model.checkpoint->config(), m.model.dtype,
                                                         options.context);
  return Status::Ok();
}

// Listens on --http and serves until SIGINT or SIGTERM; a summary on stderr.
int ServeApi(kj::AsyncIoContext& io, const ServeFlags& flags, const HostPort& http, Pipeline& pipeline,
             ServedModel& m) {
  kj::Own<kj::ConnectionReceiver> receiver;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    receiver = io.provider->getNetwork().parseAddress(flags.http).wait(io.waitScope)->listen();
  })) {
    return Fail("cannot listen on " + flags.http + ": " + e->getDescription().cStr());
  }
  ApiServerOptions& options = m.options;
  std::unique_ptr<ClusterTls> tls;
  if (!flags.http_cert.empty() || !flags.http_key.empty()) {
    if (flags.http_cert.empty() || flags.http_key.empty()) return Fail("--http-cert and --http-key go together");
    auto loaded = ClusterTls::LoadServer(flags.http_cert, flags.http_key, io.provider->getTimer());
    if (!loaded.ok()) return Fail(loaded.status().message());
    tls = std::move(loaded.value());
    options.tls = tls.get();
    // A rebound name fails the certificate check: Host names the certificate's name now.
    options.loopback_bind = false;
  }
  ApiServer api(io.provider->getTimer(), pipeline, *m.tokenizer, options);
  // One line a reader can parse: what is served, and where.
  std::cout << "serving " << options.model_name << " on " << (tls ? "https://" : "http://")
            << JoinHostPort(http.host, receiver->getPort())
            << " (chat template " << options.chat->name() << ", " << options.max_running << " requests at once, "
            << options.max_queue << " queued, KV for " << options.kv_tokens << " tokens)" << std::endl;
  kj::UnixEventPort::captureSignal(SIGTERM);
  auto serving = api.Listen(*receiver);
  auto stop = io.unixEventPort.onSignal(SIGINT).exclusiveJoin(io.unixEventPort.onSignal(SIGTERM));
  stop.exclusiveJoin(serving.then([]() -> siginfo_t { return {}; })).wait(io.waitScope);
  const ServeMetrics& metrics = api.metrics();
  std::cerr << "served " << metrics.requests_ok << " requests (" << metrics.requests_failed << " failed, "
            << metrics.requests_rejected << " turned away, " << metrics.requests_cancelled
            << " cancelled): " << metrics.prompt_tokens << " prompt and " << metrics.generation_tokens
            << " generated tokens" << std::endl;
  return 0;
}

}  // namespace

int RunServe(const ServeFlags& flags) {
  const ClusterFlags& c = flags.model.cluster;
  auto served = OpenServedModel(flags);
  if (!served.ok()) return Fail(served.status().message());
  ServedModel& m = served.value();
  auto io = kj::setupAsyncIo();
  auto credentials = LoadCredentials(c, io.provider->getTimer(), c.local > 0);
  if (!credentials.ok()) return Fail(credentials.status().message());
  auto http = ParseHostPort(flags.http);
  if (!http.ok()) return Fail("--http: " + http.status().message());
  Status access = CheckApiAccess(flags, credentials.value(), http.value(), &m.options);
  if (!access.ok()) return Fail(access.message());
  auto cluster = StartCluster(c, credentials.value(), m.dir);
  if (!cluster.ok()) return Fail(cluster.status().message());
  RpcEnv env(io, TimeoutsOf(c), credentials->security());
  try {
    Pipeline pipeline(env, env.Await(ConnectNodes(env, cluster->addresses, cluster->discovered), 0, ""),
                      static_cast<uint32_t>(m.model.checkpoint->config().vocab_size));
    Status loaded = PlanAndLoad(flags, m, env, pipeline);
    if (!loaded.ok()) return Fail(loaded.message());
    return ServeApi(io, flags, http.value(), pipeline, m);
  } catch (const PipelineError& e) {
    return Fail(e.what());
  }
}

}  // namespace strata
