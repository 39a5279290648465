#include "storage/checkpoint.h"
#include "base/escape.h"
#include "storage/gguf_model.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
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
  if (IsGgufFile(dir)) {
    auto file = GgufFile::Open(dir);
    if (!file.ok()) return file.status();
    auto config = GgufModelConfig(*file.value());
    if (!config.ok()) return config.status();
    ckpt->config_ = config.value();
    Status st = ckpt->AdoptGguf(std::move(file.value()));
    if (st.ok()) st = ckpt->CheckShapes();
    if (!st.ok()) return st;
    return ckpt;
  }
  auto config = ModelConfig::Load(dir);
  if (!config.ok()) return config.status();
  ckpt->config_ = config.value();
  if (!Exists(dir + "/model.safetensors") && IsGgufFile(dir + "/" + kShardGgufName)) {
    // A fetched shard of a GGUF model: its config.json, and its tensors in a GGUF file.
    auto file = GgufFile::Open(dir + "/" + kShardGgufName);
    if (!file.ok()) return file.status();
    Status st = ckpt->AdoptGguf(std::move(file.value()));
    if (st.ok()) st = ckpt->CheckShapes();
    if (!st.ok()) return st;
    return ckpt;
  }

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
  Status shapes = ckpt->CheckShapes();
  if (!shapes.ok()) return shapes;
  return ckpt;
}

std::vector<int64_t> ExpectedTensorShape(const ModelConfig& c, const std::string& name) {
  // Each layer tensor's dimensions, one letter each: H hidden, I intermediate,
  // Q query width (heads x head_dim), K key/value width, D head_dim.
  static const std::map<std::string, std::string> kLayerDims = {
      {"input_layernorm.weight", "H"},  {"post_attention_layernorm.weight", "H"},
      {"self_attn.q_proj.weight", "QH"}, {"self_attn.k_proj.weight", "KH"},
      {"self_attn.v_proj.weight", "KH"}, {"self_attn.o_proj.weight", "HQ"},
      {"self_attn.q_proj.bias", "Q"},    {"self_attn.k_proj.bias", "K"},
      {"self_attn.v_proj.bias", "K"},    {"self_attn.o_proj.bias", "H"},
      {"self_attn.q_norm.weight", "D"},  {"self_attn.k_norm.weight", "D"},
      {"mlp.gate_proj.weight", "IH"},    {"mlp.up_proj.weight", "IH"},
      {"mlp.down_proj.weight", "HI"},    {"mlp.gate_proj.bias", "I"},
      {"mlp.up_proj.bias", "I"},         {"mlp.down_proj.bias", "H"}};
  if (name == kEmbedName || name == kLmHeadName) return {c.vocab_size, c.hidden_size};
  if (name == kFinalNormName) return {c.hidden_size};
  const std::string layers = "model.layers.";
  const size_t dot = name.find('.', layers.size());
  if (name.compare(0, layers.size(), layers) != 0 || dot == std::string::npos) return {};
  auto dims = kLayerDims.find(name.substr(dot + 1));
  if (dims == kLayerDims.end()) return {};
  std::vector<int64_t> shape;
  for (char d : dims->second) {
    shape.push_back(d == 'H'   ? c.hidden_size
                    : d == 'I' ? c.intermediate_size
                    : d == 'Q' ? c.num_heads * c.head_dim
                    : d == 'K' ? c.num_kv_heads * c.head_dim
                               : c.head_dim);
  }
  return shape;
}

Status Checkpoint::CheckShapes() const {
  auto check = [this](const std::string& name, const TensorView& v) -> Status {
    const std::string layers = "model.layers.";
    if (name.compare(0, layers.size(), layers) == 0) {
      const int64_t layer = std::strtoll(name.c_str() + layers.size(), nullptr, 10);
      if (layer < 0 || layer >= config_.num_layers) {
        return Status::Error(dir_ + ": tensor '" + EscapeText(name, 96) + "' is past the config's " +
                             std::to_string(config_.num_layers) + " layers");
      }
    }
    const std::vector<int64_t> want = ExpectedTensorShape(config_, name);
    if (want.empty() || v.shape == want) return Status::Ok();
    auto text = [](const std::vector<int64_t>& shape) {
      std::string out = "[";
      for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
      return out + "]";
    };
    return Status::Error("tensor '" + EscapeText(name, 96) + "' in " + dir_ + " has the wrong shape for the config: " +
                         text(v.shape) + ", want " + text(want));
  };
  for (const auto& [name, view] : gguf_views_) {
    if (Status st = check(name, view); !st.ok()) return st;
  }
  for (const auto& file : files_) {
    for (const auto& [name, view] : file->tensors()) {
      if (Status st = check(name, view); !st.ok()) return st;
    }
  }
  return Status::Ok();
}


Status Checkpoint::AdoptGguf(std::unique_ptr<GgufFile> file) {
  auto views = GgufModelTensors(*file, config_);
  if (!views.ok()) return views.status();
  gguf_ = std::move(file);
  gguf_views_ = std::move(views.value());
  return Status::Ok();
}

Result<const TensorView*> Checkpoint::Find(const std::string& name) const {
  if (gguf_) {
    auto v = gguf_views_.find(name);
    if (v == gguf_views_.end()) return Status::Error("missing tensor '" + name + "' (GGUF " + GgufTensorName(name) + ") in " + dir_);
    return &v->second;
  }
  auto it = owner_.find(name);
  if (it == owner_.end()) return Status::Error("missing tensor '" + name + "' in " + dir_);
  return it->second->Find(name);
}

Status Checkpoint::Populate(const TensorView& view) const {
  if (gguf_) return gguf_->Populate(view);
  auto it = owner_.find(view.name);
  return it == owner_.end() ? Status::Ok() : it->second->Populate(view);
}

void Checkpoint::Release(const TensorView& view) const {
  if (gguf_) return gguf_->Release(view);
  auto it = owner_.find(view.name);
  if (it != owner_.end()) it->second->Release(view);
}

namespace {
uint64_t HeldBytes(const TensorView& v, size_t plain_size) {
  return IsBlockDType(v.dtype) ? v.nbytes : static_cast<uint64_t>(v.numel()) * plain_size;
}
}  // namespace

uint64_t Checkpoint::LayerBytes(int64_t layer, size_t plain_size) const {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  uint64_t total = 0;
  if (gguf_) {
    for (auto it = gguf_views_.lower_bound(prefix); it != gguf_views_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      total += HeldBytes(it->second, plain_size);
    }
    return total;
  }
  for (auto it = owner_.lower_bound(prefix); it != owner_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    total += HeldBytes(*it->second->Find(it->first), plain_size);
  }
  return total;
}

uint64_t Checkpoint::EmbedBytes(size_t plain_size) const {
  auto t = Find(kEmbedName);
  return t.ok() ? HeldBytes(*t.value(), plain_size) : 0;
}

uint64_t Checkpoint::HeadBytes(size_t plain_size) const {
  uint64_t total = 0;
  auto norm = Find(kFinalNormName);
  if (norm.ok()) total += HeldBytes(*norm.value(), plain_size);
  auto head = Find(config_.tie_word_embeddings ? kEmbedName : kLmHeadName);
  if (head.ok()) total += HeldBytes(*head.value(), plain_size);
  return total;
}

}  // namespace strata
