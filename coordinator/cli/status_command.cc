// `strata status`: each member's state, one line per node.
#include <kj/async-io.h>

#include <chrono>
#include <cstdio>

#include "coordinator/cli/command_output.h"
#include "coordinator/cli/generate_command.h"
#include "coordinator/cluster/credentials.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/pipeline/pipeline.h"

namespace strata {
namespace {

// " | swap: 12 out, 12 in (3.0 MiB, 1.2 GB/s read), 2 on disk, 1 kept, RAM hits 97%"
std::string SwapText(const NodeStatus& s) {
  const auto& w = s.swap;
  const uint64_t steps = w.ram_hits + w.ram_misses;
  if (w.pages_out == 0 && w.pages_in == 0 && s.kept_sessions == 0 && steps == 0) return "";
  char buf[320];
  std::snprintf(buf, sizeof buf,
                " | swap: %llu out, %llu in (%.1f MiB; per page: write %.0f us, read %.0f us), %llu on disk, %u kept, "
                "RAM hits %.0f%%, prefetched %llu/%llu, %llu failed",
                static_cast<unsigned long long>(w.pages_out), static_cast<unsigned long long>(w.pages_in),
                (w.bytes_out + w.bytes_in) / 1048576.0, w.pages_out ? static_cast<double>(w.write_micros) / w.pages_out : 0.0,
                w.pages_in ? static_cast<double>(w.read_micros) / w.pages_in : 0.0,
                static_cast<unsigned long long>(w.sessions_on_disk), s.kept_sessions,
                steps ? 100.0 * w.ram_hits / steps : 100.0, static_cast<unsigned long long>(w.prefetch_hits),
                static_cast<unsigned long long>(w.prefetch_hits + w.prefetch_misses),
                static_cast<unsigned long long>(w.failures));
  return buf;
}

}  // namespace

int RunStatus(const ClusterFlags& flags) {
  auto io = kj::setupAsyncIo();
  auto credentials = LoadCredentials(flags, io.provider->getTimer(), false);
  if (!credentials.ok()) return Fail(credentials.status().message());
  auto members = ResolveMembers(flags, credentials->secret);
  if (!members.ok()) return Fail(members.status().message());
  const std::vector<std::string>& addresses = members->addresses;
  std::printf("%zu nodes from %s\n", addresses.size(), members->source.c_str());
  Timeouts timeouts;
  timeouts.connect_ms = static_cast<uint32_t>(flags.connect_timeout_ms);
  RpcEnv env(io, timeouts, credentials->security());
  int down = 0;
  std::printf("%-16s %-22s %-7s %-4s %-8s %-7s %-12s %-8s %-10s %-10s %-11s %-24s %s\n", "NODE", "ADDRESS", "DEVICE",
              "THR", "GFLOP/s", "GB/s", "LAYERS", "SESSIONS", "FREE MiB", "RSS MiB", "SECURITY", "HEALTH",
              "MEMORY (used/budget MiB) | NVMe SWAP");
  for (size_t i = 0; i < addresses.size(); ++i) {
    const std::string& a = addresses[i];
    try {
      auto node = env.Await(NodeConnection::Connect(env, a), 0, "");
      const auto t0 = std::chrono::steady_clock::now();
      const NodeStatus s = env.Await(node->Status(env), 0, "");
      // Health: it answered, how fast, and (discovery) how fresh its beacon is.
      char health[64];
      const double rtt_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i < members->seen_ago_s.size()) {
        std::snprintf(health, sizeof health, "ok %.1fms, beacon %.1fs", rtt_ms, members->seen_ago_s[i]);
      } else {
        std::snprintf(health, sizeof health, "ok %.1fms", rtt_ms);
      }
      const std::string layers =
          s.shard_loaded ? "[" + std::to_string(s.first_layer) + ", " + std::to_string(s.end_layer) + ")" : "-";
      const char* security = SecurityText(s.secured, s.tls);
      std::string tiers;
      for (const auto& t : s.tiers) {
        tiers += (tiers.empty() ? "" : ", ") + t.name + " " + std::to_string(t.used >> 20) + "/" +
                 std::to_string(t.budget >> 20);
      }
      std::printf("%-16s %-22s %-7s %-4u %-8.1f %-7.1f %-12s %-8u %-10llu %-10llu %-11s %-24s %s\n", s.name.c_str(),
                  a.c_str(), s.device.c_str(), s.threads, s.compute_gflops, s.bandwidth_gbps, layers.c_str(),
                  s.active_sessions,
                  static_cast<unsigned long long>(s.free_bytes >> 20),
                  static_cast<unsigned long long>(s.resident_bytes >> 20), security, health,
                  (tiers + SwapText(s)).c_str());
      std::printf("%-16s cpu: %s; kernels: %s\n", "", s.cpu_features.empty() ? "?" : s.cpu_features.c_str(),
                  s.kernels.empty() ? "?" : s.kernels.c_str());
    } catch (const PipelineError& e) {
      ++down;
      std::printf("%-16s %-22s DOWN: %s\n", "?", a.c_str(), e.what());
    }
  }
  return down == 0 ? 0 : 1;
}

}  // namespace strata
