#include "storage/model_manifest.h"
#include "storage/env.h"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/escape.h"
#include "base/hex.h"
#include "storage/checkpoint.h"
#include "storage/gguf_model.h"

namespace strata {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxTensors = 1 << 20;
constexpr size_t kMaxConfigBytes = 1 << 20;

bool PlainName(const std::string& s) {
  return !s.empty() && s.size() <= 255 && s.find('/') == std::string::npos && s.find('\0') == std::string::npos &&
         s != "." && s != "..";
}

json Body(const ModelManifest& m) {
  json tensors = json::array();
  for (const auto& t : m.tensors) {
    tensors.push_back({{"name", t.name}, {"file", t.file}, {"dtype", DTypeString(t.dtype)}, {"shape", t.shape},
                       {"begin", t.begin}, {"end", t.end}, {"sha256", t.sha256}});
  }
  json body = {{"format", 1}, {"config", m.config_json}, {"files", m.files}, {"tensors", tensors}};
  // Only GGUF says so: the ids of safetensors models (and the nodes' caches keyed by them) stay as they were.
  if (m.container == ModelManifest::Container::kGguf) body["container"] = "gguf";
  return body;
}

std::string IdOf(const ModelManifest& m) {
  const std::string body = Body(m).dump();
  return Sha256Hex(body.data(), body.size());
}

// Lists `view` (at byte `begin` of `file`) with its bytes' hash: paged in,
// hashed, dropped again, so a model larger than RAM is hashed too.
Status AddHashed(const Checkpoint& ckpt, const std::string& name, const std::string& file, const TensorView& view,
                 uint64_t begin, ModelManifest* m) {
  ManifestTensor t;
  t.name = name;
  t.file = file;
  t.dtype = view.dtype;
  t.shape = view.shape;
  t.begin = begin;
  t.end = begin + view.nbytes;
  Status populated = ckpt.Populate(view);
  if (!populated.ok()) return populated;
  t.sha256 = Sha256Hex(view.data, view.nbytes);
  ckpt.Release(view);
  m->tensors.push_back(std::move(t));
  return Status::Ok();
}

}  // namespace

std::string ModelManifest::ToJson() const {
  json j = Body(*this);
  j["id"] = id;
  return j.dump();
}

const ManifestTensor* ModelManifest::Find(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<const ManifestTensor*> ModelManifest::ForLayers(int64_t first, int64_t end, int64_t layers) const {
  std::vector<const ManifestTensor*> out;
  const ManifestTensor* lm_head = Find(kLmHeadName);
  for (const auto& t : tensors) {
    bool want = false;
    if (t.name.rfind("model.layers.", 0) == 0) {
      const int64_t layer = std::atoll(t.name.c_str() + 13);
      want = layer >= first && layer < end;
    } else if (t.name == kEmbedName) {
      want = first == 0 || (end == layers && lm_head == nullptr);  // a tied head is the embedding
    } else if (t.name == kFinalNormName || t.name == kLmHeadName) {
      want = end == layers;
    }
    if (want) out.push_back(&t);
  }
  return out;
}

Result<ModelManifest> ModelManifest::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  auto bad = [](const std::string& why) { return Status::Error("a malformed model manifest: " + why); };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (!j.contains("format") || j["format"] != 1) return bad("unknown format");
  if (!j.contains("config") || !j["config"].is_string() || j["config"].get<std::string>().size() > kMaxConfigBytes) {
    return bad("no config");
  }
  if (!j.contains("files") || !j["files"].is_array() || !j.contains("tensors") || !j["tensors"].is_array() ||
      j["tensors"].size() > kMaxTensors || !j.contains("id") || !j["id"].is_string()) {
    return bad("no files, tensors or id");
  }
  ModelManifest m;
  m.config_json = j["config"];
  if (j.contains("container")) {
    if (j["container"] != "gguf") return bad("unknown container");
    m.container = ModelManifest::Container::kGguf;
    if (j["files"].size() != 1) return bad("a GGUF model is one file");
  }
  const bool gguf = m.container == ModelManifest::Container::kGguf;
  std::set<std::string> files;
  for (const auto& f : j["files"]) {
    if (!f.is_string() || !PlainName(f.get<std::string>())) return bad("a file that is not a plain name");
    m.files.push_back(f);
    files.insert(f.get<std::string>());
  }
  std::set<std::string> names;
  for (const auto& t : j["tensors"]) {
    if (!t.is_object()) return bad("a tensor that is not an object");
    ManifestTensor mt;
    try {
      mt.name = t.at("name").get<std::string>();
      mt.file = t.at("file").get<std::string>();
      mt.shape = t.at("shape").get<std::vector<int64_t>>();
      mt.begin = t.at("begin").get<uint64_t>();
      mt.end = t.at("end").get<uint64_t>();
      mt.sha256 = t.at("sha256").get<std::string>();
      const std::string dtype = t.at("dtype").get<std::string>();
      if (!(gguf ? ParseDTypeName(dtype, &mt.dtype) : ParseSafetensorsDType(dtype, &mt.dtype))) {
        return bad("tensor " + EscapeText(mt.name, 80) + ": dtype");
      }
    } catch (const std::exception&) {
      return bad("a tensor with missing or mistyped fields");
    }
    if (mt.name.empty() || mt.name.size() > 512 || !names.insert(mt.name).second) return bad("a duplicate or empty tensor name");
    if (!files.count(mt.file)) return bad("tensor " + EscapeText(mt.name, 80) + " in a file not listed");
    if (!IsLowerHex(mt.sha256, 64)) {
      return bad("tensor " + EscapeText(mt.name, 80) + ": sha256");
    }
    if (gguf && GgufTensorName(mt.name).empty()) return bad("tensor " + EscapeText(mt.name, 80) + " has no GGUF name");
    uint64_t numel = 1, bytes = 0;
    for (int64_t d : mt.shape) {
      if (d < 0 || d > (1ll << 40) || (d > 0 && numel > (1ull << 50) / static_cast<uint64_t>(d))) return bad("a shape out of range");
      numel *= static_cast<uint64_t>(d);
    }
    if (mt.shape.size() > 4 || !DTypeBytes(mt.dtype, mt.shape, &bytes) || mt.end < mt.begin || mt.end - mt.begin != bytes) {
      return bad("tensor " + EscapeText(mt.name, 80) + ": its byte range does not match its shape and dtype");
    }
    m.tensors.push_back(std::move(mt));
  }
  m.id = IdOf(m);
  if (j["id"].get<std::string>() != m.id) return bad("its id is not the hash of its contents");
  return m;
}

namespace {

Result<ModelManifest> BuildGgufManifest(const Checkpoint& ckpt) {
  const GgufFile& file = *ckpt.gguf();
  ModelManifest m;
  m.container = ModelManifest::Container::kGguf;
  auto config_json = GgufConfigJson(file);
  if (!config_json.ok()) return config_json.status();
  m.config_json = config_json.value();
  m.files.push_back(file.path().substr(file.path().rfind('/') + 1));
  auto views = GgufModelTensors(file, ckpt.config());
  if (!views.ok()) return views.status();
  for (const auto& [name, view] : views.value()) {
    Status st = AddHashed(ckpt, name, m.files[0], view, file.offset_of(view), &m);
    if (!st.ok()) return st;
  }
  m.id = IdOf(m);
  return m;
}

}  // namespace

std::string ManifestFilesDir(const std::string& model) {
  if (!IsGgufFile(model)) return model;
  const size_t slash = model.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : model.substr(0, slash);
}

Result<ModelManifest> BuildManifest(const std::string& dir) {
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  if (ckpt.value()->gguf() != nullptr) return BuildGgufManifest(*ckpt.value());
  ModelManifest m;
  std::ifstream in(dir + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  m.config_json = ss.str();
  for (const auto& file : ckpt.value()->files()) {
    const std::string name = file->path().substr(file->path().rfind('/') + 1);
    m.files.push_back(name);
    for (const auto& [tensor, view] : file->tensors()) {
      Status st = AddHashed(*ckpt.value(), tensor, name, view, file->offset_of(view), &m);
      if (!st.ok()) return st;
    }
  }
  m.id = IdOf(m);
  return m;
}

namespace {

// "NAME SIZE MTIME_NS" for config.json and every safetensors file, sorted;
// for a GGUF model, of its file.
std::string DirStamp(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> lines;
  auto add = [&lines](const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;
    lines.push_back(path.filename().string() + " " + std::to_string(st.st_size) + " " +
                    std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
    return true;
  };
  if (IsGgufFile(dir)) return add(dir) ? lines[0] + "\n" : "";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name != "config.json" && entry.path().extension() != ".safetensors" && name != "model.safetensors.index.json") {
      continue;
    }
    if (!add(entry.path())) return "";
  }
  std::sort(lines.begin(), lines.end());
  std::string stamp;
  for (const auto& l : lines) stamp += l + "\n";
  return stamp;
}

}  // namespace

Result<ModelManifest> BuildManifestCached(const std::string& dir, const std::string& cache_dir) {
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) == nullptr || cache_dir.empty()) return BuildManifest(dir);
  const std::string key = std::string(resolved);
  const std::string path = cache_dir + "/manifests/" + Sha256Hex(key.data(), key.size()).substr(0, 32) + ".json";
  const std::string stamp = DirStamp(resolved);
  const std::string stamp_hash = Sha256Hex(stamp.data(), stamp.size());
  {
    std::ifstream in(path, std::ios::binary);
    std::string first;
    if (in && std::getline(in, first) && first == stamp_hash && !stamp.empty()) {
      std::stringstream rest;
      rest << in.rdbuf();
      auto cached = ModelManifest::FromJson(rest.str());
      if (cached.ok()) return cached;
    }
  }
  auto built = BuildManifest(resolved);
  if (!built.ok()) return built;
  if (DirStamp(resolved) == stamp && !stamp.empty()) {  // unchanged while it was hashed
    std::error_code ec;
    std::filesystem::create_directories(cache_dir + "/manifests", ec);
    PosixEnv env;  // a cache: a manifest that cannot be kept is hashed again next time
    (void)WriteFileWhole(env, path, stamp_hash + "\n" + built->ToJson());
  }
  return built;
}

}  // namespace strata
