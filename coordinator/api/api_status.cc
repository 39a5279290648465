// The API server's views of the cluster: each stage's node asked now, as
// Prometheus text (/metrics) and as JSON (/v1/strata/status, the dashboard's).
#include <nlohmann/json.hpp>

#include "base/escape.h"
#include "coordinator/api/api_server_impl.h"
#include "protocol/node_status.h"

namespace strata {

kj::Promise<std::vector<ApiServer::Impl::NodeView>> ApiServer::Impl::GatherNodes() {
  // Each stage's node, asked now: its sessions, memory per tier, swap.
  auto asks = kj::heapArrayBuilder<kj::Promise<NodeView>>(pipeline.stage_count());
  for (size_t i = 0; i < pipeline.stage_count(); ++i) {
    NodeConnection& node = pipeline.stage_node(i);
    NodeView view;
    view.stage = i;
    view.status = node.hello_status();
    view.status.address = node.address();
    asks.add(node.control()
                 .infoRequest()
                 .send()
                 .then(
                     [view](capnp::Response<wire::Control::InfoResults>&& reply) mutable {
                       view.status = ReadNodeInfo(reply.getInfo(), view.status.address);
                       view.up = true;
                       return view;
                     },
                     [view](kj::Exception&&) { return view; }));
  }
  return kj::joinPromises(asks.finish()).then([](kj::Array<NodeView> views) {
    return std::vector<NodeView>(views.begin(), views.end());
  });
}

kj::Promise<void> ApiServer::Impl::Metrics(Response& response) {
  return GatherNodes().then([this, &response](std::vector<NodeView> views) {
    std::vector<NodeMetricsRow> rows;
    for (const auto& v : views) {
      rows.push_back({"stage=\"" + std::to_string(v.stage) + "\",node=\"" + EscapePromLabel(v.status.name) + "\"", v.up,
                      v.status});
    }
    const std::string nodes = NodeMetricsText(rows);
    metrics.connections_open = gate.open();
    metrics.connections_refused = gate.refused();
    return SendText(response, 200, "text/plain; version=0.0.4", metrics.Render(nodes));
  });
}

kj::Promise<void> ApiServer::Impl::Status(Response& response) {
  return GatherNodes().then([this, &response](std::vector<NodeView> views) {
    json nodes = json::array();
    for (const auto& v : views) {
      json tiers = json::array();
      for (const auto& t : v.status.tiers) tiers.push_back({{"tier", t.name}, {"used", t.used}, {"budget", t.budget}});
      nodes.push_back({{"stage", v.stage}, {"name", v.status.name}, {"address", v.status.address}, {"up", v.up},
                       {"first_layer", v.status.first_layer}, {"end_layer", v.status.end_layer},
                       {"sessions", v.status.active_sessions}, {"tiers", tiers}});
    }
    const double now = Now();
    json requests = json::array();
    for (const auto& [id, job] : active) {
      const size_t generated = job->driver ? job->driver->result().tokens.size() : 0;
      requests.push_back({{"id", id}, {"prompt_tokens", job->prompt.size()}, {"generated", generated},
                          {"age_s", now - job->t0}});
    }
    const auto& ttft = metrics.time_to_first_token;
    const auto& itl = metrics.time_per_output_token;
    json out = {{"model", options.model_name}, {"now_s", now}, {"nodes", nodes}, {"requests", requests},
                {"running", metrics.running}, {"waiting", metrics.waiting},
                {"requests_ok", metrics.requests_ok}, {"generation_tokens", metrics.generation_tokens},
                {"ttft_mean_s", ttft.count() ? json(ttft.sum() / ttft.count()) : json(nullptr)},
                {"itl_mean_s", itl.count() ? json(itl.sum() / itl.count()) : json(nullptr)},
                {"itl_sum_s", itl.sum()}, {"itl_count", itl.count()}};
    return SendJson(response, 200, out.dump());
  });
}

}  // namespace strata
