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

#include "base/mutex.h"
#include "base/status.h"
#include "node/engine/llama_shard.h"
#include "node/engine/sampler.h"
#include "node/kv/memory_accountant.h"

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

// Where KV pages may go beyond RAM, for every shard a runtime loads.
struct KvTiers {
  std::string swap_dir;              // empty: no NVMe tier
  Env* env = nullptr;                // borrowed
  std::string policy = "adaptive";
  bool int8 = false;                 // --kv-dtype int8
};

class StageRuntime {
 public:
  // Weights and KV caches are charged to `tier` of `memory` (borrowed).
  StageRuntime(MemoryAccountant& memory, MemoryTier tier, KvTiers kv_tiers = KvTiers())
      : memory_(memory), tier_(tier), kv_tiers_(std::move(kv_tiers)) {}

  // Loads [first, end) from a checkpoint directory, replacing any shard and
  // closing its sessions. Refuses a shard over the tier's budget before
  // reading a weight.
  Result<LoadedShard> Load(const std::string& model_dir, const ShardOptions& options);
  // Opens a session of up to `capacity` tokens; its KV pages are charged as
  // its tokens arrive.
  Status Open(uint64_t session, int64_t capacity, const SamplingOptions& sampling);
  void Close(uint64_t session);
  // Runs steps of different sessions in one forward (continuous batching):
  // outcome i is what steps[i] alone gives, logits and token bit for bit;
  // each outcome's micros is the forward's time. A lone step may be a
  // prompt chunk of any length.
  std::vector<Result<StepOutcome>> StepBatch(const std::vector<const StageStep*>& steps);
  // Writes an idle session's KV to NVMe now; a no-op without an NVMe tier.
  Status Park(uint64_t session);
  bool OnDisk(uint64_t session) const;
  Result<int64_t> Length(uint64_t session) const;  // positions in its KV cache

  // Any thread: forwards run so far; starts bringing `session`'s KV back
  // from NVMe (its next step is on its way); the swap counters.
  uint64_t steps_computed() const { return steps_computed_.load(std::memory_order_relaxed); }
  uint64_t compute_micros() const { return compute_micros_.load(std::memory_order_relaxed); }  // in forwards
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }        // forwards run
  uint64_t batch_rows() const { return batch_rows_.load(std::memory_order_relaxed); }  // steps in them
  void Prefetch(uint64_t session);
  SwapStats swap_stats() const;

 private:
  static Result<int64_t> PlanStreaming(uint64_t fixed, const std::vector<uint64_t>& layer_bytes, uint64_t free,
                                       uint64_t budget);
  struct OpenSession {
    Sampler sampler;
  };
  MemoryAccountant& memory_;
  const MemoryTier tier_;
  const KvTiers kv_tiers_;
  std::unique_ptr<LlamaShard> shard_;
  MemoryCharge weights_;                      // shard_'s weights and RoPE tables
  std::map<uint64_t, OpenSession> sessions_;  // by the node's session id
  std::atomic<uint64_t> steps_computed_{0};
  std::atomic<uint64_t> compute_micros_{0};
  std::atomic<uint64_t> batches_{0}, batch_rows_{0};
  mutable Mutex swap_mu_;
  std::shared_ptr<KvSwapSpace> swap_ GUARDED_BY(swap_mu_);  // shard_'s NVMe tier, or null
};

}  // namespace strata
