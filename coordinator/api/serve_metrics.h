#pragma once
// ServeMetrics: what `strata serve` counts, in Prometheus's text format
// (version 0.0.4), named after vLLM's metrics where vLLM has one
// (strata:num_requests_running, strata:time_to_first_token_seconds, ...).
// Histograms are cumulative, with fixed buckets.
//
// Not thread-safe: the coordinator's event loop.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace strata {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void Observe(double v);
  // "# HELP", "# TYPE" and the _bucket/_sum/_count lines.
  std::string Render(const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct ServeMetrics {
  uint64_t requests_ok = 0, requests_failed = 0, requests_rejected = 0, requests_cancelled = 0;
  uint64_t prompt_tokens = 0, generation_tokens = 0;
  int64_t running = 0, waiting = 0;
  int64_t kv_reserved = 0, kv_capacity = 0;  // KV positions reserved by running requests, and held by the cluster
  uint64_t connections_open = 0, connections_refused = 0;  // the API's door (protocol/connection_gate)
  std::vector<double> stage_compute_s;  // per stage, summed
  Histogram time_to_first_token{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  Histogram time_per_output_token{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};
  Histogram e2e_latency{{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}};
  Histogram batch_size{{1, 2, 4, 8, 16, 32, 64}};  // requests generating at once, per token step

  // Everything above, as Prometheus text. `node_lines` are the node gauges
  // gathered at scrape time (already formatted).
  std::string Render(const std::string& node_lines) const;
};


}  // namespace strata
