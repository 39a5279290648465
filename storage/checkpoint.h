#pragma once
// A Hugging Face checkpoint directory: config.json plus model.safetensors,
// or model-XXXXX-of-YYYYY.safetensors with model.safetensors.index.json.
// Files are memory-mapped; opening reads only headers, so a node that uses a
// few layers pages in only those layers' bytes.
// Thread-safe after Open(): everything is immutable.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/model_config.h"
#include "storage/safetensors.h"
#include "storage/status.h"

namespace strata {

// Hugging Face tensor names of a Llama-family model.
std::string LayerTensorName(int64_t layer, const std::string& suffix);  // model.layers.{i}.{suffix}
inline const char* kEmbedName = "model.embed_tokens.weight";
inline const char* kFinalNormName = "model.norm.weight";
inline const char* kLmHeadName = "lm_head.weight";

class Checkpoint {
 public:
  static Result<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }

  // The tensor, or an error naming the missing tensor and the directory.
  Result<const TensorView*> Find(const std::string& name) const;
  // Reads a tensor's pages in now (an I/O error names the file).
  Status Populate(const TensorView& view) const;
  // Drops the process's pages of a tensor after its bytes were copied.
  void Release(const TensorView& view) const;

  // Every file and the tensors it holds (for a model's manifest).
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

  // Element counts, for planning shards before any weight is touched.
  int64_t LayerParams(int64_t layer) const;    // all tensors of model.layers.{layer}.
  int64_t EmbedParams() const;
  int64_t HeadParams() const;                  // final norm + LM head (tied: the embedding)

 private:
  Checkpoint() = default;
  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;  // tensor name -> file
};

}  // namespace strata
