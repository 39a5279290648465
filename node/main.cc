// strata-node: serves one shard of a model over Cap'n Proto RPC.
#include <CLI/CLI.hpp>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <sys/statvfs.h>
#include <curl/curl.h>
#include <cerrno>
#include <cstring>

#include "base/net_address.h"
#include "base/system_memory.h"
#include "node/engine/compute_device.h"
#include "node/engine/cpu_features.h"
#include "node/engine/matmul.h"
#include "node/server/calibration.h"
#include "node/server/discovery_beacon.h"
#include "node/server/metrics_server.h"
#include "node/server/node_server.h"
#include "node/server/rpc_listener.h"
#include "protocol/cluster_tls.h"
#include "storage/env.h"

namespace {

constexpr const char* kDescription =
    "Serves one shard (a contiguous range of layers) of a Llama-family model over Cap'n Proto RPC.\n"
    "A coordinator (`strata`) assigns the shard and pipelines requests through it.\n\n"
    "Security: with a cluster secret (--cluster-secret-file, or STRATA_CLUSTER_SECRET), only peers\n"
    "that prove it in a mutual HMAC hello get any right on the node. Without one the node listens on\n"
    "loopback only, unless --insecure. --tls encrypts every link with the cluster CA's certificates.\n";

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "strata-node: " << message << "\n";
  std::exit(2);
}

// Idle OpenMP and OpenBLAS workers spin for a long time by default; several
// nodes on one machine would then burn the cores the working node needs.
// Their settings are read when the libraries load, so set them and re-exec.
void EnsureQuietIdleThreads(char** argv, int threads) {
  if (std::getenv("STRATA_NODE_ENV_SET") != nullptr) return;
  setenv("STRATA_NODE_ENV_SET", "1", 1);
  setenv("GOMP_SPINCOUNT", "10000", 0);
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
  setenv("OPENBLAS_NUM_THREADS", std::to_string(threads).c_str(), 0);
  execv("/proc/self/exe", argv);
  // Re-exec is an optimisation; go on without it if it fails.
}

// Everything main() reads from the command line: the node's options, and
// what only main() uses to wire the parts.
struct NodeFlags {
  strata::NodeOptions options;
  strata::ListenerLimits limits;
  strata::DiscoveryOptions discovery;
  strata::TlsFiles tls_files;
  std::string listen, name, device, log_level = "info", secret_file, tls_dir, metrics_listen, coordinator_pub;
  std::string kv_dtype = "compute", kernels = "auto";
  std::vector<std::string> model_roots;
  bool insecure = false, tls = false, no_discovery = false, no_calibration = false;
  int ready_fd = -1;
};

void AddMemoryFlags(CLI::App& app, NodeFlags* f) {
  strata::NodeOptions& o = f->options;
  app.add_option("--memory-limit,--memory", o.memory_budget,
                 "RAM budget for weights, KV pages and buffers, e.g. 8GiB (default: 90% of available memory)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--gpu-memory-limit", o.gpu_memory_budget, "device memory budget on CUDA (default: --memory-limit)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--swap-dir", o.swap_dir,
                 "NVMe tier: swap KV pages of idle sessions to a file here when RAM is short; made (0700) if missing (default: none)");
  app.add_option("--swap-limit", o.swap_budget, "NVMe tier budget, e.g. 64GiB (default: half the free space of --swap-dir)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--models-dir", f->model_roots,
                 "a directory whose models a coordinator may name by path (repeatable; default: none, and "
                 "models come only through --cache-dir from the coordinator's model server)");
  app.add_option("--cache-dir", o.cache_dir,
                 "where shards fetched from a coordinator are kept, made (0700) if missing (default: $XDG_CACHE_HOME/strata, else $HOME/.cache/strata)");
  app.add_option("--cache-limit", o.cache_limit, "disk budget of --cache-dir, e.g. 100GiB (default: half its free space)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--kv-policy", o.kv_policy, "whose KV pages go to NVMe first: lru | lfu | adaptive")
      ->check(CLI::IsMember({"lru", "lfu", "adaptive"}));
  app.add_option("--kv-dtype", f->kv_dtype, "KV cache values: compute (the compute dtype) | int8 (per-token, per-group scales)")
      ->check(CLI::IsMember({"compute", "int8"}));
  app.add_option("--session-ttl", o.session_ttl_s, "seconds a kept session may sit unused before it is closed")
      ->check(CLI::Range(1u, 30u * 86400u));
  app.add_option("--max-sessions", o.max_sessions, "open sessions at most")->check(CLI::Range(1u, 1000000u));
  app.add_option("--max-batch", o.max_batch,
                 "decode steps of different sessions computed in one forward at most (continuous batching; 1: off)")
      ->check(CLI::Range(1u, 1024u));
}

void AddComputeFlags(CLI::App& app, NodeFlags* f) {
  app.add_option("--threads", f->options.threads, "compute threads (default: all cores)")->check(CLI::Range(1, 1024));
  app.add_flag("--no-calibration", f->no_calibration,
               "do not measure speed at start (plans then split by memory; nodes sharing one machine do anyway)");
  app.add_option("--device", f->device, "cpu | cuda | cuda:N (default: cuda:0 if present, else cpu)");
  // $STRATA_KERNELS sets the default, so that the nodes a coordinator starts (--local) take it too.
  if (const char* env = std::getenv("STRATA_KERNELS")) f->kernels = env;
  app.add_option("--kernels", f->kernels,
                 "the widest CPU kernels to use: auto (the best this CPU has) | amx | avx512 | avx2 | scalar (default: $STRATA_KERNELS, else auto)")
      ->check(CLI::IsMember({"auto", "amx", "avx512", "avx2", "scalar"}));
}

void AddNetworkFlags(CLI::App& app, NodeFlags* f) {
  app.add_option("--listen", f->listen, "HOST:PORT to listen on (port 0 picks a free port)")->required();
  app.add_option("--name", f->name, "name shown in logs and `strata status` (default: HOST:PORT)");
  app.add_option("--cluster-name", f->discovery.cluster, "discovery: the cluster this node beacons for");
  app.add_option("--discovery-group", f->discovery.group, "discovery: the IPv4 multicast group to beacon to");
  app.add_option("--discovery-port", f->discovery.port, "discovery: the UDP port of the group");
  app.add_option("--beacon-interval-ms", f->discovery.interval_ms, "discovery: how often to beacon")
      ->check(CLI::Range(50u, 60000u));
  app.add_flag("--no-discovery", f->no_discovery, "do not beacon (coordinators then need --nodes or --cluster)");
  app.add_option("--metrics", f->metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (counts and sizes only; default: off)");
  app.add_option("--rpc-timeout-ms", f->options.rpc_timeout_ms, "how long to wait for the next stage")
      ->check(CLI::Range(1u, 86400000u));
  app.add_option("--connect-timeout-ms", f->options.connect_timeout_ms, "how long the next stage has to answer hello")
      ->check(CLI::Range(1u, 600000u));
  app.add_option("--ready-fd", f->ready_fd, "write the bound HOST:PORT and a newline to FD once listening")
      ->check(CLI::Range(0, 65535));
  app.add_option("--log-level", f->log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--max-connections", f->limits.max_connections, "open connections at most")
      ->check(CLI::Range(1u, 65536u));
  app.add_option("--max-connections-per-peer", f->limits.max_per_peer, "open connections from one IP address at most")
      ->check(CLI::Range(1u, 65536u));
  app.add_option("--hello-timeout-ms", f->limits.hello_timeout_ms, "close connections with no authenticated hello by then")
      ->check(CLI::Range(1u, 3600000u));
}

void AddSecurityFlags(CLI::App& app, NodeFlags* f) {
  app.add_option("--cluster-secret-file", f->secret_file,
                 "the cluster secret (mode 0600; `strata make-secret`); else $STRATA_CLUSTER_SECRET");
  app.add_option("--coordinator-pub", f->coordinator_pub,
                 "grant coordinator rights only to hellos signed with this key's private half "
                 "(`strata make-secret --coordinator-key`); without it, any holder of the secret may coordinate");
  app.add_flag("--insecure", f->insecure, "without a secret, listen beyond loopback anyway (anyone may use the node)");
  app.add_flag("--tls", f->tls, "encrypt every RPC link with TLS (cluster CA certificates)");
  app.add_option("--tls-dir", f->tls_dir, "cert.pem, key.pem and ca.pem from `strata make-secret --tls`");
  app.add_option("--tls-cert", f->tls_files.cert, "this member's certificate (PEM)");
  app.add_option("--tls-key", f->tls_files.key, "its private key (PEM)");
  app.add_option("--tls-ca", f->tls_files.ca, "the cluster CA certificate (PEM)");
}

// Made (0700) if missing; returns the free bytes of its file system.
uint64_t PrepareDir(strata::Env& env, const std::string& flag, const std::string& dir) {
  if (const strata::Status made = env.CreateDir(dir); !made.ok()) Die(flag + ": " + made.message());
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0) Die(flag + " " + dir + ": " + std::strerror(errno));
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

// The disk tiers and the directories a coordinator may name.
void ResolveDisks(NodeFlags* f, strata::Env& env) {
  strata::NodeOptions& o = f->options;
  o.env = &env;
  if (!o.swap_dir.empty()) {
    const uint64_t free_bytes = PrepareDir(env, "--swap-dir", o.swap_dir);
    if (o.swap_budget == 0) o.swap_budget = free_bytes / 2;
  }
  for (const auto& root : f->model_roots) {
    char resolved[PATH_MAX];
    if (::realpath(root.c_str(), resolved) == nullptr) Die("--models-dir " + root + ": " + std::strerror(errno));
    o.model_roots.push_back(resolved);
  }
  if (o.cache_dir.empty()) o.cache_dir = strata::DefaultCacheDir();
  const uint64_t cache_free = PrepareDir(env, "--cache-dir", o.cache_dir);
  if (o.cache_limit == 0) o.cache_limit = cache_free / 2;
}

// The secret and TLS files; refuses to listen beyond loopback without a secret.
void ResolveSecurity(NodeFlags* f) {
  if (!f->tls_dir.empty()) {
    const strata::TlsFiles in_dir = strata::TlsFilesIn(f->tls_dir);
    if (f->tls_files.cert.empty()) f->tls_files.cert = in_dir.cert;
    if (f->tls_files.key.empty()) f->tls_files.key = in_dir.key;
    if (f->tls_files.ca.empty()) f->tls_files.ca = in_dir.ca;
    f->tls = true;
  }
  if (f->tls && (f->tls_files.cert.empty() || f->tls_files.key.empty() || f->tls_files.ca.empty())) {
    Die("--tls needs --tls-dir DIR, or all of --tls-cert, --tls-key and --tls-ca");
  }
  auto secret = strata::ClusterSecret::FromFlagOrEnv(f->secret_file);
  if (!secret.ok()) Die(secret.status().message());
  f->options.secret = secret.value();
  auto listen_at = strata::ParseHostPort(f->listen);
  if (!listen_at.ok()) Die("--listen: " + listen_at.status().message());
  if (f->options.secret.empty() && !f->insecure && !strata::IsLoopbackHost(listen_at->host)) {
    Die("refusing to listen on " + f->listen + " without a cluster secret: give --cluster-secret-file FILE (make one "
        "with `strata make-secret`), or --insecure to let anyone who reaches the port use this node");
  }
}

kj::Own<kj::ConnectionReceiver> Listen(kj::AsyncIoContext& io, const std::string& flag, const std::string& address) {
  kj::Own<kj::ConnectionReceiver> receiver;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    receiver = io.provider->getNetwork().parseAddress(address).wait(io.waitScope)->listen();
  })) {
    Die("cannot listen on " + flag + address + ": " + e->getDescription().cStr());
  }
  return receiver;
}

// The node, from a listening socket to SIGTERM: the server, /metrics,
// beacons, the ready line. Returns the exit code.
int Run(kj::AsyncIoContext& io, NodeFlags& f, kj::ConnectionReceiver& listener, const std::string& bound) {
  strata::NodeOptions& options = f.options;
  strata::Calibrator calibrator(options.threads, !f.no_calibration);  // beside the server: hello is answered at once
  options.calibration = &calibrator.calibration();
  if (!options.swap_dir.empty()) {
    spdlog::info("NVMe tier: swap in {}, budget {} MiB, policy {}", options.swap_dir, options.swap_budget >> 20,
                 options.kv_policy);
  }
  strata::NodeServer server(options, io.provider->getTimer(), io.provider->getNetwork());
  kj::Own<kj::ConnectionReceiver> metrics_receiver;
  std::unique_ptr<strata::NodeMetricsServer> metrics;
  kj::Promise<void> metrics_serving = kj::READY_NOW;
  if (!f.metrics_listen.empty()) {
    metrics_receiver = Listen(io, "--metrics ", f.metrics_listen);
    metrics = std::make_unique<strata::NodeMetricsServer>(io.provider->getTimer(),
                                                          [&server]() { return server.MetricsText(); });
    metrics_serving = metrics->Listen(*metrics_receiver).eagerlyEvaluate([](kj::Exception&& e) {
      spdlog::warn("the metrics server stopped: {}", e.getDescription().cStr());
    });
    spdlog::info("metrics on http://{}/metrics",
                 strata::JoinHostPort(strata::HostOf(f.metrics_listen), metrics_receiver->getPort()));
  }
  strata::RpcListener front_door(listener, io.provider->getTimer(), options.tls, f.limits, server);
  std::unique_ptr<strata::BeaconSender> beacon;
  if (!f.no_discovery) {
    auto started = strata::BeaconSender::Start(f.discovery, options.secret, options.name, bound, server.node_id());
    if (!started.ok()) {
      spdlog::warn("discovery off: {}", started.status().message());
    } else {
      beacon = std::move(started.value());
    }
  }
  if (f.ready_fd >= 0) {
    const std::string line = bound + "\n";
    if (write(f.ready_fd, line.data(), line.size()) < 0) spdlog::warn("cannot write to --ready-fd {}", f.ready_fd);
    close(f.ready_fd);
  }
  auto stop = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(io.unixEventPort.onSignal(SIGINT));
  auto serving = front_door.Run().then([]() -> siginfo_t { return {}; });
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    siginfo_t info = stop.exclusiveJoin(kj::mv(serving)).wait(io.waitScope);
    spdlog::info("signal {} received, shutting down", info.si_signo);
  })) {
    spdlog::error("server failed: {}", e->getDescription().cStr());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  NodeFlags f;
  f.options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CLI::App app(kDescription, "strata-node");
  app.get_formatter()->column_width(34);
  app.option_defaults()->always_capture_default();
  AddNetworkFlags(app, &f);
  AddComputeFlags(app, &f);
  AddMemoryFlags(app, &f);
  AddSecurityFlags(app, &f);
  CLI11_PARSE(app, argc, argv);

  strata::NodeOptions& options = f.options;
  options.kv_int8 = f.kv_dtype == "int8";
  strata::PosixEnv env;
  ResolveDisks(&f, env);
  ResolveSecurity(&f);
  EnsureQuietIdleThreads(argv, options.threads);
  unsetenv("STRATA_CLUSTER_SECRET");  // read; nothing this process starts inherits it
  spdlog::set_default_logger(spdlog::stderr_color_mt("node"));
  spdlog::set_level(spdlog::level::from_str(f.log_level));
  // Headroom: the OS, the page cache and this process's own code need some.
  if (options.memory_budget == 0) options.memory_budget = strata::AvailableMemoryBytes() / 10 * 9;
  options.device = f.device.empty() ? strata::DefaultDevice() : f.device;

  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  signal(SIGPIPE, SIG_IGN);
  auto io = kj::setupAsyncIo();
  std::unique_ptr<strata::ClusterTls> cluster_tls;
  if (f.tls) {
    auto loaded = strata::ClusterTls::Load(f.tls_files, io.provider->getTimer());
    if (!loaded.ok()) Die(loaded.status().message());
    cluster_tls = std::move(loaded.value());
    options.tls = cluster_tls.get();
    options.tls_files = f.tls_files;
  }
  std::unique_ptr<strata::CoordinatorPub> coordinator_pub;
  if (!f.coordinator_pub.empty()) {
    auto loaded = strata::CoordinatorPub::Load(f.coordinator_pub);
    if (!loaded.ok()) Die(loaded.status().message());
    coordinator_pub = std::move(loaded.value());
    options.coordinator_pub = coordinator_pub.get();
  }
  kj::Own<kj::ConnectionReceiver> listener = Listen(io, "", f.listen);
  const std::string bound = strata::JoinHostPort(strata::HostOf(f.listen), listener->getPort());
  options.name = f.name.empty() ? bound : f.name;
  spdlog::set_pattern("[%H:%M:%S.%e] [node " + options.name + "] [%l] %v");
  spdlog::info("listening on {} ({} threads, device {}, budget {} MiB, {}{})", bound, options.threads, options.device,
               options.memory_budget >> 20, options.secret.empty() ? "no cluster secret" : "cluster secret",
               f.tls ? ", TLS" : "");
  strata::SelectKernels(f.kernels);  // before the compute thread starts
  spdlog::info("cpu: {}; kernels: {}", strata::CpuFeatures::Probe().ToString(), strata::ActiveKernels().Describe());
  if (!options.secret.empty() && options.coordinator_pub == nullptr) {
    spdlog::warn("no --coordinator-pub: any holder of the cluster secret may act as a coordinator here");
  }
  if (options.secret.empty()) {
    spdlog::warn(f.insecure ? "--insecure: no cluster secret, and anyone who reaches {} may use this node"
                            : "no cluster secret: any local process may use this node (listening on loopback {} only)",
                 bound);
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);  // before any thread: shard fetches use libcurl
  strata::SetComputeThreads(options.threads);
  return Run(io, f, *listener, bound);
}
