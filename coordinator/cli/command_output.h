#pragma once
// What the coordinator's commands print alike: one error line, a plan as
// JSON, how a link is secured. Not thread-safe: main()'s thread.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "coordinator/pipeline/shard_plan.h"

namespace strata {

// Prints "strata: MESSAGE" on stderr; returns the exit code 1.
int Fail(const std::string& message);

// Each stage of `plan` on `nodes`; costs (may be null) adds each stage's
// read_bytes: the weights one decode step reads there.
nlohmann::json PlanJson(const ShardPlan& plan, const std::vector<NodeCapacity>& nodes, const ModelCosts* costs = nullptr);

// How a link is secured, in the words `strata status` and generate's report share.
const char* SecurityText(bool secret, bool tls);

}  // namespace strata
