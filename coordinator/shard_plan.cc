#include "coordinator/shard_plan.h"

#include <cmath>
#include <sstream>

namespace strata {

namespace {
std::string MiB(uint64_t bytes) {
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0) << " MiB";
  return os.str();
}
}  // namespace

Result<ShardPlan> PlanShards(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes) {
  const int64_t n_layers = static_cast<int64_t>(costs.layer_bytes.size());
  const int64_t n_nodes = static_cast<int64_t>(nodes.size());
  if (n_nodes == 0) return Status::Error("no nodes to plan for");
  if (n_nodes > n_layers) {
    return Status::Error("more nodes (" + std::to_string(n_nodes) + ") than layers (" + std::to_string(n_layers) +
                         "): every node needs at least one layer");
  }
  uint64_t total = costs.embed_bytes + costs.head_bytes;
  for (uint64_t b : costs.layer_bytes) total += b;
  long double free_total = 0;
  for (const auto& n : nodes) free_total += static_cast<long double>(n.free_bytes);
  if (free_total <= 0) return Status::Error("no node reports any free memory");

  // prefix[i] = bytes of the stages that end before layer i (embedding counted first).
  std::vector<long double> prefix(n_layers + 1);
  prefix[0] = static_cast<long double>(costs.embed_bytes);
  for (int64_t l = 0; l < n_layers; ++l) prefix[l + 1] = prefix[l] + costs.layer_bytes[l];

  ShardPlan plan;
  long double share = 0;
  int64_t begin = 0;
  for (int64_t i = 0; i < n_nodes; ++i) {
    share += static_cast<long double>(nodes[i].free_bytes) / free_total;
    int64_t end = n_layers;
    if (i + 1 < n_nodes) {
      // The cut closest to this node's cumulative share, leaving a layer for
      // every node after it and taking at least one itself.
      const long double target = share * static_cast<long double>(total);
      const int64_t lo = begin + 1, hi = n_layers - (n_nodes - 1 - i);
      end = lo;
      for (int64_t cut = lo; cut <= hi; ++cut) {
        if (std::fabs(static_cast<double>(prefix[cut] - target)) < std::fabs(static_cast<double>(prefix[end] - target))) end = cut;
      }
    }
    StageAssignment stage;
    stage.node = static_cast<size_t>(i);
    stage.first_layer = begin;
    stage.end_layer = end;
    for (int64_t l = begin; l < end; ++l) stage.bytes += costs.layer_bytes[l];
    if (begin == 0) stage.bytes += costs.embed_bytes;
    if (end == n_layers) stage.bytes += costs.head_bytes;
    if (stage.bytes > nodes[i].free_bytes) {
      return Status::Error("node " + nodes[i].name + " would hold layers [" + std::to_string(begin) + ", " +
                           std::to_string(end) + ") = " + MiB(stage.bytes) + " but has only " +
                           MiB(nodes[i].free_bytes) + " free (the model needs " + MiB(total) +
                           " in all; add nodes or memory)");
    }
    plan.stages.push_back(stage);
    begin = end;
  }
  return plan;
}

Result<ShardPlan> PlanShardsWithNvme(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes,
                                     std::string* note) {
  note->clear();
  auto in_ram = PlanShards(costs, nodes);
  uint64_t nvme = 0;
  for (const auto& n : nodes) nvme += n.nvme_free_bytes;
  if (in_ram.ok() || nvme == 0) return in_ram;
  std::vector<NodeCapacity> tiered = nodes;
  for (auto& n : tiered) n.free_bytes += n.nvme_free_bytes;
  auto streamed = PlanShards(costs, tiered);
  if (!streamed.ok()) return in_ram.status();
  *note = "the model does not fit the nodes' RAM; nodes with an NVMe tier stream the layers theirs cannot hold";
  return streamed;
}

std::string ShardPlan::Describe(const std::vector<NodeCapacity>& nodes) const {
  std::ostringstream os;
  const int64_t n_layers = stages.empty() ? 0 : stages.back().end_layer;
  for (size_t i = 0; i < stages.size(); ++i) {
    const StageAssignment& s = stages[i];
    os << "  stage " << i << ": " << nodes[s.node].name << " (" << nodes[s.node].address << ") layers [" << s.first_layer
       << ", " << s.end_layer << ")";
    if (s.first_layer == 0) os << " +embed";
    if (s.end_layer == n_layers) os << " +head";
    os << ", " << MiB(s.bytes) << "\n";
  }
  return os.str();
}

}  // namespace strata
