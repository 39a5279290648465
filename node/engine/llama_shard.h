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
#include "protocol/step.h"
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

// What a stage produces: hidden states for the next stage, or (last stage)
// the f32 logits at the last position.
struct StageOutput {
  HostTensor hidden;            // [tokens, hidden], compute dtype
  std::vector<float> logits;    // [vocab]
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

  // Runs this shard on the step's input at positions [start, start + n) of
  // its session (protocol/step.h; sample and want_logits are the caller's).
  // Positions before start must have been run before (they are in the KV
  // cache); running from an earlier start overwrites the later ones.
  Result<StageOutput> Forward(const StageStep& step);

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
