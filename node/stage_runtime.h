#pragma once
// StageRuntime: everything a node computes — its LlamaShard and the sampler
// of every session. Lives on the compute thread and is touched only there
// (through ComputeThread's executor); not thread-safe by itself.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/llama_shard.h"
#include "node/sampler.h"
#include "storage/status.h"

namespace strata {

struct LoadedShard {
  std::string model_dir;
  int64_t first_layer = 0, end_layer = 0, num_layers = 0;
  uint64_t weight_bytes = 0;
  uint64_t kv_bytes_per_token = 0;
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
  // Loads [first, end) from a checkpoint directory, replacing any shard and
  // closing its sessions. Refuses a shard larger than memory_budget bytes.
  Result<LoadedShard> Load(const std::string& model_dir, const ShardOptions& options, uint64_t memory_budget);
  Status Open(uint64_t session, int64_t capacity, const SamplingOptions& sampling, uint64_t memory_budget);
  void Close(uint64_t session);
  Result<StepOutcome> Step(uint64_t session, int64_t start_pos, const StageInput& input, bool sample);
  // Forwards run so far; the one method any thread may call.
  uint64_t steps_computed() const { return steps_computed_.load(std::memory_order_relaxed); }

 private:
  std::unique_ptr<LlamaShard> shard_;
  std::map<uint64_t, Sampler> samplers_;  // one per open session
  std::map<uint64_t, int64_t> capacity_;  // tokens of KV cache per open session
  std::atomic<uint64_t> steps_computed_{0};
};

}  // namespace strata
