#include "coordinator/cli/command_output.h"

#include <iostream>

namespace strata {

int Fail(const std::string& message) {
  std::cerr << "strata: " << message << std::endl;
  return 1;
}

nlohmann::json PlanJson(const ShardPlan& plan, const std::vector<NodeCapacity>& nodes, const ModelCosts* costs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : plan.stages) {
    out.push_back({{"node", nodes[s.node].name}, {"address", nodes[s.node].address}, {"first_layer", s.first_layer},
                   {"end_layer", s.end_layer}, {"bytes", s.bytes}, {"ms_per_token", s.ms_per_token},
                   {"bandwidth_gbps", nodes[s.node].bandwidth_gbps}, {"free_bytes", nodes[s.node].free_bytes}});
    if (costs != nullptr) {
      uint64_t read = s.end_layer == static_cast<int64_t>(costs->layer_read_bytes.size()) ? costs->head_bytes : 0;
      for (int64_t l = s.first_layer; l < s.end_layer; ++l) read += costs->layer_read_bytes[static_cast<size_t>(l)];
      out.back()["read_bytes"] = read;
    }
  }
  return out;
}

const char* SecurityText(bool secret, bool tls) { return secret ? (tls ? "secret+tls" : "secret") : (tls ? "tls" : "none"); }

}  // namespace strata
