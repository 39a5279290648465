#pragma once
// A model's weights and config: a Hugging Face checkpoint directory
// (config.json plus model.safetensors, or model-XXXXX-of-YYYYY.safetensors
// with model.safetensors.index.json), or one GGUF file (config and tensors
// in one; its tensors found under their Hugging Face names), or a node's
// fetched shard of a GGUF model (config.json plus model.gguf).
// Files are memory-mapped; opening reads only headers, so a node that uses a
// few layers pages in only those layers' bytes.
// Thread-safe after Open(): everything is immutable.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/gguf.h"
#include "storage/model_config.h"
#include "storage/safetensors.h"

namespace strata {

// Hugging Face tensor names of a Llama-family model.
std::string LayerTensorName(int64_t layer, const std::string& suffix);  // model.layers.{i}.{suffix}
inline const char* kEmbedName = "model.embed_tokens.weight";
inline const char* kFinalNormName = "model.norm.weight";
inline const char* kLmHeadName = "lm_head.weight";

// The shape a tensor of this name must have under `config`, in Hugging Face
// order ([rows, cols]); empty for a name that is not one of the model's (an
// extra tensor some checkpoints carry, which nothing reads).
std::vector<int64_t> ExpectedTensorShape(const ModelConfig& config, const std::string& name);

// The weights file of a fetched shard of a GGUF model, beside its config.json.
inline const char* kShardGgufName = "model.gguf";

class Checkpoint {
 public:
  // A directory, or a GGUF file.
  static Result<std::unique_ptr<Checkpoint>> Open(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }  // the directory, or the GGUF file's path
  const GgufFile* gguf() const { return gguf_.get(); }  // null for a directory

  // The tensor, or an error naming the missing tensor and the directory.
  Result<const TensorView*> Find(const std::string& name) const;
  // Reads a tensor's pages in now (an I/O error names the file).
  Status Populate(const TensorView& view) const;
  // Drops the process's pages of a tensor after its bytes were copied.
  void Release(const TensorView& view) const;

  // Every safetensors file and the tensors it holds (for a model's manifest; none for GGUF).
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

  // Bytes a stage holds, for planning shards before any weight is touched:
  // plain tensors at `plain_size` bytes an element (the compute dtype),
  // block-format tensors (GGUF) as stored.
  uint64_t LayerBytes(int64_t layer, size_t plain_size) const;  // all tensors of model.layers.{layer}.
  uint64_t EmbedBytes(size_t plain_size) const;
  uint64_t HeadBytes(size_t plain_size) const;                   // final norm + LM head (tied: the embedding)

 private:
  Checkpoint() = default;
  Status AdoptGguf(std::unique_ptr<GgufFile> file);  // its tensors under Hugging Face names, by config_
  // Every tensor's shape against config_ (ExpectedTensorShape), a layer past
  // num_layers refused: so that plan, generate, serve and a node's load
  // refuse the same model in the same words, before any weight is read.
  Status CheckShapes() const;
  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;  // tensor name -> file
  std::unique_ptr<GgufFile> gguf_;                       // or one GGUF file,
  std::map<std::string, TensorView> gguf_views_;         // its tensors by Hugging Face name
};

}  // namespace strata
