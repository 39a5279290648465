// `strata plan`: the split a cluster's nodes would get, without loading it.
#include <kj/async-io.h>

#include <iostream>

#include "base/system_memory.h"
#include "coordinator/cli/command_output.h"
#include "coordinator/cli/generate_command.h"
#include "coordinator/cluster/cluster_start.h"
#include "coordinator/cluster/credentials.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/pipeline/pipeline.h"

namespace strata {

int RunPlan(const GenerateFlags& flags) {
  auto opened = OpenCommandModel(flags.model, flags.model_source, flags.dtype);
  if (!opened.ok()) return Fail(opened.status().message());
  const TensorDType dtype = opened->dtype;
  const std::unique_ptr<Checkpoint>& ckpt = opened->checkpoint;
  std::vector<NodeCapacity> capacities;
  if (flags.cluster.local > 0) {
    for (int64_t i = 0; i < flags.cluster.local; ++i) {
      capacities.push_back({"local-" + std::to_string(i), "127.0.0.1", AvailableMemoryBytes() / flags.cluster.local});
    }
  } else {
    auto io = kj::setupAsyncIo();
    auto credentials = LoadCredentials(flags.cluster, io.provider->getTimer(), false);
    if (!credentials.ok()) return Fail(credentials.status().message());
    auto members = ResolveMembers(flags.cluster, credentials->secret);
    if (!members.ok()) return Fail(members.status().message());
    const std::vector<std::string>& addresses = members->addresses;
    RpcEnv env(io, Timeouts{}, credentials->security());
    try {
      capacities = Pipeline(env, env.Await(ConnectNodes(env, addresses, UsesDiscovery(flags.cluster)), 0, ""),
                            static_cast<uint32_t>(ckpt->config().vocab_size))
                       .Capacities();
    } catch (const PipelineError& e) {
      return Fail(e.what());
    }
  }
  const int64_t context = flags.context > 0 ? flags.context : ckpt->config().max_position;
  const uint64_t kv_tokens = static_cast<uint64_t>(context) * static_cast<uint64_t>(flags.concurrency);
  std::string note;
  const ModelCosts costs = CostsOf(*ckpt, dtype, kv_tokens);
  auto plan = PlanShardsWithNvme(costs, capacities, &note);
  if (!plan.ok()) return Fail(plan.status().message());
  if (!note.empty()) std::cerr << "strata: note: " << note << std::endl;
  if (flags.json) {
    std::cout << PlanJson(plan.value(), capacities, &costs).dump(2) << std::endl;
  } else {
    std::cout << "plan for " << flags.model << " (" << ckpt->config().num_layers << " layers, " << flags.dtype
              << ") on " << capacities.size() << " nodes, each stage's weights and KV for " << context
              << " tokens x " << flags.concurrency << " sessions:\n"
              << plan->Table(capacities);
  }
  return 0;
}

}  // namespace strata
