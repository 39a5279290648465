// strata-node: serves one shard of a model over Cap'n Proto RPC.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "node/llama_shard.h"
#include "node/stage_server.h"
#include "storage/system_memory.h"

namespace {

constexpr const char* kUsage = R"(usage: strata-node --listen HOST:PORT [options]

Serves one shard (a contiguous range of layers) of a Llama-family model over
Cap'n Proto RPC. A coordinator (`strata`) assigns the shard and pipelines
requests through it.

options:
  --listen HOST:PORT   address to listen on (port 0 picks a free port)
  --threads N          compute threads (default: all cores)
  --name NAME          name shown in logs and `strata status` (default: HOST:PORT)
  --memory SIZE        budget for weights + KV cache, e.g. 8GiB, 512MiB
                       (default: the machine's available memory)
  --device DEV         cpu | cuda | cuda:N (default: cuda:0 if present, else cpu)
  --rpc-timeout-ms MS  how long to wait for the next stage (default 120000)
  --ready-fd FD        write the bound HOST:PORT and a newline to FD once listening
  --log-level LEVEL    trace|debug|info|warn|error (default info)
  --help               this text
)";

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "strata-node: " << message << "\n";
  std::exit(2);
}


bool ParseSize(const std::string& text, uint64_t* out) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !(value > 0)) return false;
  const std::string unit = end;
  double scale = 1;
  if (unit == "" || unit == "B") scale = 1;
  else if (unit == "KiB" || unit == "K") scale = 1024.0;
  else if (unit == "MiB" || unit == "M") scale = 1024.0 * 1024;
  else if (unit == "GiB" || unit == "G") scale = 1024.0 * 1024 * 1024;
  else return false;
  *out = static_cast<uint64_t>(value * scale);
  return true;
}

int ParseInt(const std::string& flag, const std::string& text, int lo, int hi) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || v < lo || v > hi) {
    Die(flag + " wants an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got '" + text + "'");
  }
  return static_cast<int>(v);
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

}  // namespace

int main(int argc, char** argv) {
  std::string listen, name, device, log_level = "info";
  strata::NodeOptions options;
  options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int ready_fd = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") { std::cout << kUsage; return 0; }
    else if (flag == "--listen") listen = value();
    else if (flag == "--threads") options.threads = ParseInt(flag, value(), 1, 1024);
    else if (flag == "--name") name = value();
    else if (flag == "--memory") {
      const std::string v = value();
      if (!ParseSize(v, &options.memory_budget)) Die("--memory wants a size like 8GiB or 512MiB, got '" + v + "'");
    }
    else if (flag == "--device") device = value();
    else if (flag == "--rpc-timeout-ms") options.rpc_timeout_ms = static_cast<uint32_t>(ParseInt(flag, value(), 1, 86400000));
    else if (flag == "--ready-fd") ready_fd = ParseInt(flag, value(), 0, 65535);
    else if (flag == "--log-level") log_level = value();
    else Die("unknown option '" + flag + "' (see --help)");
  }
  if (listen.empty()) Die("--listen HOST:PORT is required (see --help)");
  EnsureQuietIdleThreads(argv, options.threads);
  spdlog::set_default_logger(spdlog::stderr_color_mt("node"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (options.memory_budget == 0) options.memory_budget = strata::AvailableMemoryBytes();
  options.device = device.empty() ? strata::DefaultDevice() : device;

  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  signal(SIGPIPE, SIG_IGN);
  auto io = kj::setupAsyncIo();
  kj::Own<kj::ConnectionReceiver> listener;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    listener = io.provider->getNetwork().parseAddress(listen).wait(io.waitScope)->listen();
  })) {
    Die("cannot listen on " + listen + ": " + e->getDescription().cStr());
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  const std::string bound = host + ":" + std::to_string(listener->getPort());
  options.name = name.empty() ? bound : name;
  spdlog::set_pattern("[%H:%M:%S.%e] [node " + options.name + "] [%l] %v");
  spdlog::info("listening on {} ({} threads, device {}, budget {} MiB)", bound, options.threads, options.device,
               options.memory_budget >> 20);

  capnp::TwoPartyServer server(strata::MakeNodeServer(options, io.provider->getTimer(), io.provider->getNetwork()));
  if (ready_fd >= 0) {
    const std::string line = bound + "\n";
    if (write(ready_fd, line.data(), line.size()) < 0) spdlog::warn("cannot write to --ready-fd {}", ready_fd);
    close(ready_fd);
  }
  auto stop = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(io.unixEventPort.onSignal(SIGINT));
  auto serving = server.listen(*listener).then([]() -> siginfo_t { return {}; });
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    siginfo_t info = stop.exclusiveJoin(kj::mv(serving)).wait(io.waitScope);
    spdlog::info("signal {} received, shutting down", info.si_signo);
  })) {
    spdlog::error("server failed: {}", e->getDescription().cStr());
    return 1;
  }
  return 0;
}
