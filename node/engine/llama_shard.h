#pragma once
// LlamaShard: the layers [first_layer, end_layer) of a Llama-family model,
// their weights and the KV cache of every open session. The first shard also
// embeds tokens; the last also applies the final norm and the LM head.
//
// Not thread-safe: a node calls it from its one compute thread only. Torch
// stays behind the pimpl so that including this header is cheap.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "node/kv/kv_swap.h"
#include "node/kv/memory_accountant.h"
#include "protocol/host_tensor.h"
#include "storage/checkpoint.h"
#include "storage/env.h"

namespace strata {

struct ShardOptions {
  int64_t first_layer = 0;
  int64_t end_layer = 0;                       // exclusive
  TensorDType dtype = TensorDType::kF32;       // compute dtype: f32 or bf16 (f16 on CUDA)
  std::string device = "cpu";                  // "cpu" or "cuda" / "cuda:N"
  // Where KV pages are charged (borrowed; null: an unlimited accountant of
  // the shard's own, for tests and tools).
  MemoryAccountant* memory = nullptr;
  MemoryTier memory_tier = MemoryTier::kRam;
  int64_t kv_page_tokens = 0;                  // 0: the fewest that make a 256 KiB page
  bool kv_int8 = false;                        // KV pages in int8 (--kv-dtype int8), else the compute dtype
  // NVMe tier for KV pages: a directory for the swap file (empty: none), the
  // Env it goes through (borrowed), and who is swapped out first.
  std::string swap_dir;
  Env* env = nullptr;
  bool swap_thread_pool_io = false;            // the Env's pread pool instead of io_uring (fault tests)
  std::string kv_policy = "adaptive";          // lru | lfu | adaptive
  // Layers kept in RAM, counted from first_layer; the rest are streamed
  // from a file in swap_dir at every forward (node/kv/layer_stream). -1: all.
  int64_t resident_layers = -1;
};

// What a stage receives: token ids (first stage) or hidden states
// [tokens, hidden] in the compute dtype (every later stage).
struct StageInput {
  std::vector<int32_t> tokens;
  HostTensor hidden;
  bool is_tokens() const { return !tokens.empty(); }
  // Positions the step covers: its tokens, or its rows of hidden states.
  int64_t positions() const {
    if (is_tokens()) return static_cast<int64_t>(tokens.size());
    return hidden.shape.empty() ? 0 : hidden.shape[0];
  }
};

// What a stage produces: hidden states for the next stage, or (last stage)
// the f32 logits at the last position.
struct StageOutput {
  HostTensor hidden;            // [tokens, hidden], compute dtype
  std::vector<float> logits;    // [vocab]
};

// One step of one session at this stage, the one step type from the
// moment a stage takes it to the kernel: positions [start, start +
// input.positions()) of `session`, and what the last stage does with them.
// The server's checks make it (node/server/stage_step), the batcher queues
// it, the runtime and ForwardBatch compute it, and the next stage gets it
// with this stage's hidden states as its input.
struct StageStep {
  uint64_t session = 0;
  uint32_t start = 0;        // as on the wire
  StageInput input;
  bool sample = false;       // the last stage samples a token after it
  bool want_logits = false;  // the last stage returns its logits
};

class LlamaShard {
 public:
  static Result<std::unique_ptr<LlamaShard>> Load(std::unique_ptr<Checkpoint> checkpoint,
                                                  const ShardOptions& options);
  ~LlamaShard();

  const ModelConfig& config() const;
  const ShardOptions& options() const;
  bool is_first() const;
  bool is_last() const;
  uint64_t weight_bytes() const;               // bytes of the weights this shard holds
  uint64_t kv_bytes_per_token() const;         // KV cache bytes per token of context

  // Opens a session of up to `capacity` tokens of context. Its KV pages are
  // taken as its tokens arrive.
  Status OpenSession(uint64_t id, int64_t capacity);
  void CloseSession(uint64_t id);
  size_t session_count() const;
  // Writes a session's KV to NVMe now (an idle kept session); a no-op without swap.
  Status ParkSession(uint64_t id);
  bool SessionOnDisk(uint64_t id) const;
  Result<int64_t> SessionLength(uint64_t id) const;  // positions in its KV cache
  // The NVMe tier, for prefetches from other threads; null without swap.
  std::shared_ptr<KvSwapSpace> swap() const;

  // Runs this shard on input tokens at positions [start_pos, start_pos + n).
  // Positions before start_pos must have been run before (they are in the KV
  // cache); running from an earlier start_pos overwrites the later ones.
  Result<StageOutput> Forward(uint64_t session, int64_t start_pos, const StageInput& input);

  // One position of each of several different sessions in one pass over
  // the weights: continuous batching of decode steps. results[i] is what
  // Forward(steps[i]) alone would return, bit for bit; a step that fails
  // its checks fails alone and the others run.
  std::vector<Result<StageOutput>> ForwardBatch(const std::vector<const StageStep*>& steps);

  struct Impl;

 private:
  explicit LlamaShard(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
