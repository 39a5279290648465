#include "coordinator/api/serve_metrics.h"

#include <cstdio>

#include "base/escape.h"

namespace strata {
namespace {

std::string Num(double v) { return PromNumber(v); }

void Metric(std::string* out, const char* type, const std::string& name, const std::string& help, double value) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + Num(value) + "\n";
}

}  // namespace

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

std::string Histogram::Render(const std::string& name, const std::string& help) const {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + Num(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  out += name + "_sum " + Num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
  return out;
}

std::string ServeMetrics::Render(const std::string& node_lines) const {
  std::string out;
  Metric(&out, "gauge", "strata:num_requests_running", "Requests generating now.", static_cast<double>(running));
  Metric(&out, "gauge", "strata:num_requests_waiting", "Requests queued for a slot.", static_cast<double>(waiting));
  Metric(&out, "gauge", "strata:kv_cache_usage_perc", "Share of the cluster's KV positions reserved by running requests.",
         kv_capacity > 0 ? static_cast<double>(kv_reserved) / static_cast<double>(kv_capacity) : 0.0);
  Metric(&out, "gauge", "strata:kv_cache_capacity_tokens", "KV positions the cluster holds (0: unbounded).",
         static_cast<double>(kv_capacity));
  Metric(&out, "gauge", "strata:http_connections_open", "Client connections open now.",
         static_cast<double>(connections_open));
  Metric(&out, "counter", "strata:http_connections_refused_total", "Client connections closed at once: over a cap.",
         static_cast<double>(connections_refused));
  out += "# HELP strata:request_success_total Requests by how they ended.\n# TYPE strata:request_success_total counter\n";
  out += "strata:request_success_total{finished_reason=\"ok\"} " + std::to_string(requests_ok) + "\n";
  out += "strata:request_success_total{finished_reason=\"error\"} " + std::to_string(requests_failed) + "\n";
  out += "strata:request_success_total{finished_reason=\"rejected\"} " + std::to_string(requests_rejected) + "\n";
  out += "strata:request_success_total{finished_reason=\"cancelled\"} " + std::to_string(requests_cancelled) + "\n";
  Metric(&out, "counter", "strata:prompt_tokens_total", "Prompt tokens processed.", static_cast<double>(prompt_tokens));
  Metric(&out, "counter", "strata:generation_tokens_total", "Tokens generated.", static_cast<double>(generation_tokens));
  out += time_to_first_token.Render("strata:time_to_first_token_seconds", "Time to first token.");
  out += time_per_output_token.Render("strata:time_per_output_token_seconds", "Inter-token latency.");
  out += e2e_latency.Render("strata:e2e_request_latency_seconds", "Whole request latency.");
  out += batch_size.Render("strata:batch_size", "Requests generating at once, per decode step.");
  out += "# HELP strata:stage_compute_seconds_total Compute time per pipeline stage.\n"
         "# TYPE strata:stage_compute_seconds_total counter\n";
  for (size_t s = 0; s < stage_compute_s.size(); ++s) {
    out += "strata:stage_compute_seconds_total{stage=\"" + std::to_string(s) + "\"} " + Num(stage_compute_s[s]) + "\n";
  }
  return out + node_lines;
}

}  // namespace strata
