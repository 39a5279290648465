#pragma once
// LlamaShard's insides, shared by llama_shard.cc (load, single forward) and
// llama_shard_batch.cc (batched decode). Not a public header: nothing
// outside LlamaShard includes it.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "node/engine/llama_layers.h"
#include "node/engine/llama_shard.h"
#include "node/kv/kv_store.h"
#include "node/kv/layer_stream.h"

namespace strata {

struct LlamaShard::Impl {
  std::unique_ptr<Checkpoint> checkpoint;  // the mapped files, read once at load
  ModelConfig config;
  ShardOptions options;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;
  uint64_t weight_bytes = 0;

  Weight embed;               // [vocab, hidden] (first stage)
  std::vector<LayerWeights> layers;
  torch::Tensor final_norm;   // [hidden] (last stage)
  Weight lm_head;             // [vocab, hidden] (last stage)
  torch::Tensor rope_cos, rope_sin;  // [max_position, head_dim] f32
  std::unique_ptr<MemoryAccountant> own_memory;  // when options.memory is null
  std::unique_ptr<KvStore> kv;                   // every session's KV, in its tiers

  // Streamed layers [first_layer + resident, end_layer), when the RAM budget
  // holds only the first `resident`: `layers` has the resident ones, and
  // slot_weights[s] views the tensors of whichever layer ring slot s holds.
  int64_t resident = 0;
  std::unique_ptr<LayerStream> stream;
  struct Field {
    bool defined = false;
    uint64_t offset = 0;
    std::vector<int64_t> shape;
  };
  std::vector<Field> layout;                  // of a streamed layer in its slot
  std::vector<LayerWeights> slot_weights;     // [slots]
  uint8_t* place_base = nullptr;              // set: Allocate places tensors here (a slot)
  uint64_t place_cursor = 0;
  Status OpenStream(uint64_t layer_bytes);
  Result<const LayerWeights*> StreamIn(int64_t j);  // streamed layer j, read; the next one's read started
  void PrefetchNextForward();

  Status CopyInto(const std::string& name, const std::vector<int64_t>& expect, torch::Tensor dst);
  torch::Tensor Allocate(const std::vector<int64_t>& shape) const;
  torch::Tensor Place(torch::Tensor owned) const;  // onto the shard's device
  Result<torch::Tensor> LoadTensor(const std::string& name, const std::vector<int64_t>& expect);
  Result<torch::Tensor> LoadStacked(const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols,
                                    bool present);
  // A weight matrix: a tensor in the compute dtype, or (GGUF blocks) its
  // rows as stored. parts: [name, rows] stacked along the rows, [rows, cols] each.
  Result<Weight> LoadMatrix(const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols);
  Result<WeightRows> LoadRows(const TensorView& view, int64_t row0, int64_t rows, int64_t cols);
  Result<torch::Tensor> LoadOptional(const std::string& name, bool present, const std::vector<int64_t>& expect);
  Status LoadWeights();
  void BuildRope();
  void MapStreamSlots();
  Status MakeKvStore();
  LlamaDims dims;

  // The pieces of a forward, shared by Forward and ForwardBatch so that a
  // batched row runs exactly the single path's operations.
  // Token ids or hidden states, validated, as [T, hidden] in the compute dtype.
  Result<torch::Tensor> Embed(const StageInput& input) const;
  // Local layer l's weights: resident, or streamed in from NVMe now.
  Result<const LayerWeights*> LayerAt(int64_t l);
  // The stage's output of `x` [T, hidden]: the last position's f32 logits
  // (last stage) or the hidden states for the next stage.
  StageOutput Output(const torch::Tensor& x) const;
  // ForwardBatch's layers and output for the steps that passed their
  // checks: live[k] is row k of x [B, 1, hidden], caches[k] its KV.
  Status RunRows(const std::vector<const StageStep*>& steps, const std::vector<size_t>& live,
                 const std::vector<KvCache*>& caches, torch::Tensor x, std::vector<Result<StageOutput>>* results);
};


}  // namespace strata
