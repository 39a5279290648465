#include "coordinator/pipeline/shard_plan.h"
#include "base/net_address.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
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

namespace {

// Bytes a stage [begin, end) must hold, and reads per token.
struct StageCost {
  uint64_t hold = 0, read = 0;
};

StageCost CostOf(const ModelCosts& c, int64_t begin, int64_t end) {
  const int64_t n = static_cast<int64_t>(c.layer_bytes.size());
  StageCost cost;
  for (int64_t l = begin; l < end; ++l) {
    cost.hold += c.layer_bytes[l];
    cost.read += c.layer_read_bytes.empty() ? c.layer_bytes[l] : c.layer_read_bytes[l];
  }
  if (begin == 0) cost.hold += c.embed_bytes;  // one row of it is read a token: no read cost
  if (end == n) {
    cost.hold += c.head_bytes;
    cost.read += c.head_bytes;
  }
  return cost;
}

double Ms(uint64_t bytes, double gbps) { return static_cast<double>(bytes) / (gbps * 1e9) * 1e3; }

}  // namespace

namespace {

constexpr double kInf = 1e300;

// One cell of the speed table: the best split of layers [0, k) over the
// first j nodes.
struct Cell {
  double slowest = kInf;
  int stages = 0;
  int64_t from = -1;  // where node j's stage begins, or -1: node j skipped
};
using SpeedTable = std::vector<std::vector<Cell>>;  // [nodes + 1][layers + 1]

// Dynamic programming over (nodes considered, layers covered): best[j][k] is
// the smallest possible slowest-stage time when the first j nodes (in the
// given order, any of them skipped) hold layers [0, k) — ties broken toward
// fewer stages, so a node joins only if it makes the pipeline faster. Each
// stage must fit its node's free memory. O(nodes x layers^2).
SpeedTable FillSpeedTable(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes) {
  const int64_t L = static_cast<int64_t>(costs.layer_bytes.size());
  const size_t N = nodes.size();
  SpeedTable best(N + 1, std::vector<Cell>(static_cast<size_t>(L + 1)));
  best[0][0] = Cell{0, 0, -1};
  auto better = [](double a, int as, double b, int bs) { return a < b - 1e-12 || (std::fabs(a - b) <= 1e-12 && as < bs); };
  for (size_t j = 1; j <= N; ++j) {
    const NodeCapacity& node = nodes[j - 1];
    for (int64_t k = 0; k <= L; ++k) {
      Cell cell = best[j - 1][static_cast<size_t>(k)];
      cell.from = -1;
      for (int64_t i = 0; i < k; ++i) {
        const Cell& prev = best[j - 1][static_cast<size_t>(i)];
        if (prev.slowest >= kInf) continue;
        const StageCost cost = CostOf(costs, i, k);
        if (cost.hold > node.free_bytes) continue;
        const double slowest = std::max(prev.slowest, Ms(cost.read, node.bandwidth_gbps));
        if (better(slowest, prev.stages + 1, cell.slowest, cell.stages)) cell = Cell{slowest, prev.stages + 1, i};
      }
      best[j][static_cast<size_t>(k)] = cell;
    }
  }
  return best;
}

// The stages of the table's best split, from the last node back; `used`
// says which nodes hold one.
ShardPlan ReadPlan(const SpeedTable& best, const ModelCosts& costs, const std::vector<NodeCapacity>& nodes,
                   std::vector<bool>* used) {
  const size_t N = nodes.size();
  ShardPlan plan;
  used->assign(N, false);
  int64_t k = static_cast<int64_t>(costs.layer_bytes.size());
  plan.slowest_ms = best[N][static_cast<size_t>(k)].slowest;
  for (size_t j = N; j > 0; --j) {
    const Cell& cell = best[j][static_cast<size_t>(k)];
    if (cell.from < 0) continue;
    StageAssignment stage;
    stage.node = j - 1;
    stage.first_layer = cell.from;
    stage.end_layer = k;
    const StageCost cost = CostOf(costs, cell.from, k);
    stage.bytes = cost.hold;
    stage.ms_per_token = Ms(cost.read, nodes[j - 1].bandwidth_gbps);
    plan.stages.insert(plan.stages.begin(), stage);
    (*used)[j - 1] = true;
    k = cell.from;
  }
  plan.basis = "measured speed: the slowest stage as fast as it can be";
  double total_ms = kHopMs * static_cast<double>(plan.stages.size() - 1);
  for (const auto& s : plan.stages) total_ms += s.ms_per_token;
  plan.tokens_per_s = 1000.0 / total_ms;
  return plan;
}

// Why each node without a stage was left out.
void ExplainLeftOut(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes, const std::vector<bool>& used,
                    ShardPlan* plan) {
  uint64_t smallest_layer = ~0ull;
  for (uint64_t b : costs.layer_bytes) smallest_layer = std::min(smallest_layer, b);
  for (size_t j = 0; j < nodes.size(); ++j) {
    if (used[j]) continue;
    std::ostringstream why;
    if (nodes[j].free_bytes < smallest_layer) {
      why << "no room for one layer (" << MiB(smallest_layer) << "; it has " << MiB(nodes[j].free_bytes) << " free)";
    } else {
      why << "it would not make the slowest stage faster (" << std::fixed << std::setprecision(1) << plan->slowest_ms
          << " ms/token; its bandwidth is " << nodes[j].bandwidth_gbps << " GB/s)";
    }
    plan->left_out.push_back({j, why.str()});
  }
}

}  // namespace

Result<ShardPlan> PlanShardsBySpeed(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes) {
  auto by_memory = [&](const std::string& why) -> Result<ShardPlan> {
    auto plan = PlanShards(costs, nodes);
    if (plan.ok()) plan->basis = "free memory (" + why + ")";
    return plan;
  };
  for (const auto& n : nodes) {
    if (n.bandwidth_gbps <= 0) return by_memory("not every node has measured its speed");
  }
  // Nodes on one host share its memory bus: each measured it alone, which
  // says nothing about how to split between them.
  bool one_host = nodes.size() > 1;
  for (const auto& n : nodes) one_host = one_host && HostOf(n.address) == HostOf(nodes[0].address);
  if (one_host) return by_memory("the nodes share one machine's memory bandwidth");
  if (nodes.empty()) return Status::Error("no nodes to plan for");
  const SpeedTable best = FillSpeedTable(costs, nodes);
  if (best[nodes.size()][costs.layer_bytes.size()].slowest >= kInf) {
    auto by_memory = PlanShards(costs, nodes);  // says which node lacks room
    if (!by_memory.ok()) return by_memory.status();
    return Status::Error("the model does not fit these nodes' free memory");
  }
  std::vector<bool> used;
  ShardPlan plan = ReadPlan(best, costs, nodes, &used);
  ExplainLeftOut(costs, nodes, used, &plan);
  return plan;
}

std::string ShardPlan::Table(const std::vector<NodeCapacity>& nodes) const {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-5s %-16s %-22s %-20s %12s %10s %9s\n", "STAGE", "NODE", "ADDRESS", "LAYERS",
                "BYTES", "ms/token", "GB/s");
  os << line;
  for (size_t i = 0; i < stages.size(); ++i) {
    const StageAssignment& s = stages[i];
    const NodeCapacity& n = nodes[s.node];
    std::string layers = "[" + std::to_string(s.first_layer) + ", " + std::to_string(s.end_layer) + ")";
    if (s.first_layer == 0) layers += " +embed";
    if (i + 1 == stages.size()) layers += " +head";
    char ms[32] = "-", gbps[32] = "-";  // unknown without measurements
    if (s.ms_per_token > 0) std::snprintf(ms, sizeof ms, "%.2f", s.ms_per_token);
    if (n.bandwidth_gbps > 0) std::snprintf(gbps, sizeof gbps, "%.1f", n.bandwidth_gbps);
    std::snprintf(line, sizeof line, "%-5zu %-16s %-22s %-20s %12s %10s %9s\n", i, n.name.c_str(), n.address.c_str(),
                  layers.c_str(), MiB(s.bytes).c_str(), ms, gbps);
    os << line;
  }
  for (const auto& l : left_out) os << "left out: " << nodes[l.node].name << " (" << nodes[l.node].address << "): " << l.why << "\n";
  if (!basis.empty()) os << "split by " << basis << "\n";
  if (tokens_per_s > 0) {
    std::snprintf(line, sizeof line, "expected: slowest stage %.2f ms/token; one stream %.1f tokens/s (%.1f ms hops)\n",
                  slowest_ms, tokens_per_s, kHopMs * static_cast<double>(stages.size() - 1));
    os << line;
  }
  return os.str();
}

Result<ShardPlan> PlanShardsWithNvme(const ModelCosts& costs, const std::vector<NodeCapacity>& nodes,
                                     std::string* note) {
  note->clear();
  auto in_ram = PlanShardsBySpeed(costs, nodes);
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
