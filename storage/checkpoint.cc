#include "storage/checkpoint.h"
#include "storage/escape.h"

#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace strata {
namespace {

using json = nlohmann::json;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Shard file names come from a file on disk: refuse anything that could
// escape the checkpoint directory.
bool SafeFileName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != ".." &&
         name.size() < 256;
}

}  // namespace

std::string LayerTensorName(int64_t layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

Result<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;
  auto config = ModelConfig::Load(dir);
  if (!config.ok()) return config.status();
  ckpt->config_ = config.value();

  std::vector<std::string> names;
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (Exists(dir + "/model.safetensors")) {
    names.push_back("model.safetensors");
  } else if (Exists(index_path)) {
    std::ifstream in(index_path);
    std::stringstream ss;
    ss << in.rdbuf();
    json index = json::parse(ss.str(), nullptr, false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      return Status::Error(index_path + ": not a safetensors index (no weight_map object)");
    }
    std::set<std::string> unique;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string() || !SafeFileName(it.value().get<std::string>())) {
        return Status::Error(index_path + ": bad file name for tensor '" + EscapeText(it.key(), 80) + "'");
      }
      if (unique.insert(it.value().get<std::string>()).second) names.push_back(it.value().get<std::string>());
    }
  } else {
    return Status::Error(dir + " has neither model.safetensors nor model.safetensors.index.json");
  }
  for (const std::string& name : names) {
    auto file = SafetensorsFile::Open(dir + "/" + name);
    if (!file.ok()) return file.status();
    for (const auto& [tensor, view] : file.value()->tensors()) {
      if (!ckpt->owner_.emplace(tensor, file.value().get()).second) {
        return Status::Error(dir + ": tensor '" + tensor + "' appears in more than one file");
      }
    }
    ckpt->files_.push_back(std::move(file.value()));
  }
  return ckpt;
}

Result<const TensorView*> Checkpoint::Find(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) return Status::Error("missing tensor '" + name + "' in " + dir_);
  return it->second->Find(name);
}

Status Checkpoint::Populate(const TensorView& view) const {
  auto it = owner_.find(view.name);
  return it == owner_.end() ? Status::Ok() : it->second->Populate(view);
}

void Checkpoint::Release(const TensorView& view) const {
  auto it = owner_.find(view.name);
  if (it != owner_.end()) it->second->Release(view);
}

int64_t Checkpoint::LayerParams(int64_t layer) const {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  int64_t total = 0;
  for (auto it = owner_.lower_bound(prefix); it != owner_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    total += it->second->Find(it->first)->numel();
  }
  return total;
}

int64_t Checkpoint::EmbedParams() const {
  auto t = Find(kEmbedName);
  return t.ok() ? t.value()->numel() : 0;
}

int64_t Checkpoint::HeadParams() const {
  int64_t total = 0;
  auto norm = Find(kFinalNormName);
  if (norm.ok()) total += norm.value()->numel();
  auto head = Find(config_.tie_word_embeddings ? kEmbedName : kLmHeadName);
  if (head.ok()) total += head.value()->numel();
  return total;
}

}  // namespace strata
