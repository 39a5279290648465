#include "protocol/node_status.h"

#include <algorithm>
#include <functional>

#include "base/escape.h"

namespace strata {

namespace {

NodeStatus::Swap ReadSwap(wire::SwapCounters::Reader w) {
  NodeStatus::Swap s;
  s.pages_out = w.getPagesOut();
  s.pages_in = w.getPagesIn();
  s.bytes_out = w.getBytesOut();
  s.bytes_in = w.getBytesIn();
  s.write_micros = w.getWriteMicros();
  s.read_micros = w.getReadMicros();
  s.prefetch_hits = w.getPrefetchHits();
  s.prefetch_misses = w.getPrefetchMisses();
  s.failures = w.getFailures();
  s.sessions_on_disk = w.getSessionsOnDisk();
  s.ram_hits = w.getRamHits();
  s.ram_misses = w.getRamMisses();
  return s;
}

}  // namespace

NodeStatus ReadNodeInfo(wire::NodeInfo::Reader info, const std::string& address) {
  NodeStatus s;
  s.name = EscapeText(info.getName().cStr(), 64);  // a peer's text
  s.address = address;
  s.free_bytes = info.getFreeMemoryBytes();
  s.threads = info.getThreads();
  s.device = EscapeText(info.getDevice().cStr(), 32);
  s.shard_loaded = info.getShardLoaded();
  s.first_layer = info.getFirstLayer();
  s.end_layer = info.getEndLayer();
  s.active_sessions = info.getActiveSessions();
  s.shard_bytes = info.getShardBytes();
  s.resident_bytes = info.getResidentBytes();
  s.secured = info.getSecured();
  for (auto t : info.getTiers()) {
    if (s.tiers.size() >= 8) break;
    s.tiers.push_back({EscapeText(t.getTier().cStr(), 16), t.getUsedBytes(), t.getBudgetBytes()});
  }
  s.tls = info.getTls();
  s.swap = ReadSwap(info.getSwap());
  s.kept_sessions = info.getKeptSessions();
  s.steps = info.getStepsComputed();
  s.batches = info.getBatches();
  s.batch_rows = info.getBatchRows();
  s.compute_micros = info.getComputeMicros();
  s.uptime_micros = info.getUptimeMicros();
  s.compute_gflops = info.getComputeGflops();
  s.bandwidth_gbps = info.getMemBandwidthGbps();
  s.cpu_features = EscapeText(info.getCpuFeatures().cStr(), 256);
  s.kernels = EscapeText(info.getKernels().cStr(), 256);
  return s;
}

namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;
  std::function<double(const NodeStatus&)> value;
};

double IdleFraction(const NodeStatus& s) {
  if (s.uptime_micros == 0) return 1.0;
  return std::max(0.0, 1.0 - static_cast<double>(s.compute_micros) / static_cast<double>(s.uptime_micros));
}

const std::vector<Family>& Families() {
  static const std::vector<Family> families = {
      {"strata:node_active_sessions", "gauge", "Sessions open on the node.",
       [](const NodeStatus& s) { return double(s.active_sessions); }},
      {"strata:node_kept_sessions", "gauge", "Kept sessions waiting to be resumed.",
       [](const NodeStatus& s) { return double(s.kept_sessions); }},
      {"strata:node_steps_total", "counter", "Steps the node computed.",
       [](const NodeStatus& s) { return double(s.steps); }},
      {"strata:node_batches_total", "counter", "Forwards the node ran (a batch of decode steps counts once).",
       [](const NodeStatus& s) { return double(s.batches); }},
      {"strata:node_batch_rows_total", "counter", "Steps in those forwards.",
       [](const NodeStatus& s) { return double(s.batch_rows); }},
      {"strata:node_compute_seconds_total", "counter", "Time the node spent computing forwards.",
       [](const NodeStatus& s) { return s.compute_micros / 1e6; }},
      {"strata:node_idle_fraction", "gauge", "Share of the node's uptime not spent computing.", IdleFraction},
      {"strata:node_resident_bytes", "gauge", "Resident memory of the node process.",
       [](const NodeStatus& s) { return double(s.resident_bytes); }},
      {"strata:node_swap_bytes_out_total", "counter", "KV bytes written to NVMe.",
       [](const NodeStatus& s) { return double(s.swap.bytes_out); }},
      {"strata:node_swap_bytes_in_total", "counter", "KV bytes read from NVMe.",
       [](const NodeStatus& s) { return double(s.swap.bytes_in); }},
      {"strata:node_swap_failures_total", "counter", "Swap operations that failed.",
       [](const NodeStatus& s) { return double(s.swap.failures); }},
  };
  return families;
}

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string NodeMetricsText(const std::vector<NodeMetricsRow>& rows) {
  std::string out;
  Header(&out, "strata:node_up", "gauge", "Whether the node answered.");
  for (const auto& r : rows) out += "strata:node_up{" + r.labels + "} " + (r.up ? "1" : "0") + "\n";
  for (const Family& f : Families()) {
    Header(&out, f.name, f.type, f.help);
    for (const auto& r : rows) {
      if (r.up) out += std::string(f.name) + "{" + r.labels + "} " + PromNumber(f.value(r.status)) + "\n";
    }
  }
  for (const bool used : {true, false}) {
    const std::string name = used ? "strata:node_memory_used_bytes" : "strata:node_memory_budget_bytes";
    Header(&out, name.c_str(), "gauge", used ? "Bytes charged to a memory tier." : "A memory tier's budget.");
    for (const auto& r : rows) {
      if (!r.up) continue;
      for (const auto& t : r.status.tiers) {
        out += name + "{" + r.labels + ",tier=\"" + EscapePromLabel(t.name) + "\"} " +
               std::to_string(used ? t.used : t.budget) + "\n";
      }
    }
  }
  return out;
}

}  // namespace strata
