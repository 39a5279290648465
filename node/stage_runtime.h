#pragma once
// StageRuntime: everything a node computes — its LlamaShard and the sampler
// of every session — with the memory each holds charged to the node's
// MemoryAccountant before it is allocated. Lives on the compute thread and is
// touched only there (through ComputeThread's executor); not thread-safe by
// itself, except steps_computed().
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/llama_shard.h"
#include "node/memory_accountant.h"
#include "node/sampler.h"
#include "storage/status.h"

namespace strata {

struct LoadedShard {
  std::string model_dir;
  int64_t first_layer = 0, end_layer = 0, num_layers = 0;
  uint64_t weight_bytes = 0;
  int64_t context = 0;      // max_position_embeddings: the longest session
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  TensorDType dtype = TensorDType::kF32;
  bool is_first() const { return first_layer == 0; }
  bool is_last() const { return end_layer == num_layers; }
};

struct StepOutcome {
  StageOutput output;        // hidden for the next stage, or logits (last stage)
  int32_t token = -1;        // sampled token (last stage, when asked)
  uint64_t micros = 0;       // compute time of this stage
};

class StageRuntime {
 public:
  // Weights and KV caches are charged to `tier` of `memory` (borrowed).
  StageRuntime(MemoryAccountant& memory, MemoryTier tier) : memory_(memory), tier_(tier) {}

  // Loads [first, end) from a checkpoint directory, replacing any shard and
  // closing its sessions. Refuses a shard over the tier's budget before
  // reading a weight.
  Result<LoadedShard> Load(const std::string& model_dir, const ShardOptions& options);
  // Opens a session of up to `capacity` tokens; its KV pages are charged as
  // its tokens arrive.
  Status Open(uint64_t session, int64_t capacity, const SamplingOptions& sampling);
  void Close(uint64_t session);
  Result<StepOutcome> Step(uint64_t session, int64_t start_pos, const StageInput& input, bool sample);
  // Forwards run so far; the one method any thread may call.
  uint64_t steps_computed() const { return steps_computed_.load(std::memory_order_relaxed); }

 private:
  struct OpenSession {
    Sampler sampler;
  };
  MemoryAccountant& memory_;
  const MemoryTier tier_;
  std::unique_ptr<LlamaShard> shard_;
  MemoryCharge weights_;                      // shard_'s weights and RoPE tables
  std::map<uint64_t, OpenSession> sessions_;  // by the node's session id
  std::atomic<uint64_t> steps_computed_{0};
};

}  // namespace strata
