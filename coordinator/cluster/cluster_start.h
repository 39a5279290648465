#pragma once
// Bringing up the nodes of one coordinator command (`generate`, `plan`,
// `serve`): its own local nodes, or the members of its cluster; and what
// each layer of a model costs a node, for the planner.
//
// Not thread-safe: main()'s thread.
#include <memory>
#include <string>
#include <vector>

#include "coordinator/cluster/cluster_flags.h"
#include "coordinator/cluster/credentials.h"
#include "coordinator/cluster/local_cluster.h"
#include "coordinator/cluster/resolve_model.h"
#include "coordinator/pipeline/pipeline.h"
#include "coordinator/pipeline/shard_plan.h"
#include "protocol/host_tensor.h"
#include "storage/checkpoint.h"

namespace strata {

// What generate, serve and plan each start from, checked the same way for
// all three: the compute dtype (f32 or bf16), `--model` resolved to a local
// path (mirrored when remote), and its checkpoint opened, which validates the
// config and every tensor's shape against it.
struct CommandModel {
  TensorDType dtype = TensorDType::kF32;
  std::string path;
  std::unique_ptr<Checkpoint> checkpoint;
};
// `model` and `dtype` as --model and --dtype give them.
Result<CommandModel> OpenCommandModel(const std::string& model, const ModelSourceFlags& source, const std::string& dtype);

// Weights (and KV for `kv_tokens` tokens) per layer, embedding and head, in `dtype`.
ModelCosts CostsOf(const Checkpoint& ckpt, TensorDType dtype, uint64_t kv_tokens);

// --connect-timeout-ms and --step-timeout-ms.
Timeouts TimeoutsOf(const ClusterFlags& flags);

// The nodes of one command: started locally or reached over the network.
struct Cluster {
  std::unique_ptr<LocalCluster> local;
  std::vector<std::string> addresses;
  bool discovered = false;  // by beacons: a member that does not answer is left out, not fatal
};

// `models_dir` ("": none) is where this command's own local nodes may read
// the model by path; elsewhere models reach nodes through their caches.
Result<Cluster> StartCluster(const ClusterFlags& flags, const Credentials& credentials, const std::string& models_dir);

}  // namespace strata
