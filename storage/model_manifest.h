#pragma once
// ModelManifest: what a coordinator tells nodes about a model it serves — its
// config.json, its safetensors files (or GGUF file), and every tensor's file, byte range,
// dtype, shape and SHA-256. A node fetches only the byte ranges of its own
// tensors and checks each against its hash before using a byte of it. The
// manifest's id is the SHA-256 of its canonical JSON: a node's cache is keyed
// by it, so a model that changes gets a new id, and a warm cache transfers
// nothing.
//
// Thread-safe: values, and pure functions.
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/digest.h"  // Sha256Hex
#include "storage/dtype.h"

namespace strata {

struct ManifestTensor {
  std::string name;
  std::string file;            // a file of the model directory (a plain name)
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; // byte range in the file
  std::string sha256;          // hex
};

struct ModelManifest {
  // What the files are: a safetensors checkpoint, or one GGUF file whose
  // tensors are listed under their Hugging Face names (a node writes its
  // shard as config.json plus model.gguf, the tensors' bytes unchanged).
  enum class Container : uint8_t { kSafetensors, kGguf };
  Container container = Container::kSafetensors;
  std::string config_json;               // config.json, verbatim (for GGUF: its metadata as config.json)
  std::vector<std::string> files;        // the weight files served (one for GGUF)
  std::vector<ManifestTensor> tensors;   // by name
  std::string id;                        // SHA-256 (hex) of ToJson() without the id

  std::string ToJson() const;
  // Validates everything a peer could get wrong: JSON shape, names (no
  // paths), dtypes, shape x dtype = range, sizes; recomputes and checks the id.
  static Result<ModelManifest> FromJson(const std::string& text);
  const ManifestTensor* Find(const std::string& name) const;
  // The tensors a stage of layers [first, end) of a model with `layers`
  // layers needs: its layers, the embedding (first stage; and the last when
  // the head is tied) and the final norm and head (last stage).
  std::vector<const ManifestTensor*> ForLayers(int64_t first, int64_t end, int64_t layers) const;
};

// Reads a checkpoint directory or a GGUF file and hashes every tensor.
Result<ModelManifest> BuildManifest(const std::string& model);

// The directory the manifest's files are in: the model directory, or the
// directory of a GGUF file (what a model server serves /files/NAME from).
std::string ManifestFilesDir(const std::string& model);

// BuildManifest, kept under CACHE/manifests/ and keyed by the directory's
// real path, stamped with the size and modification time of its config and
// weights: a model that has not changed is not hashed again (the cached
// manifest is still validated, id included). A cache that cannot be written
// costs only the next run's hashing.
Result<ModelManifest> BuildManifestCached(const std::string& dir, const std::string& cache_dir);



}  // namespace strata
