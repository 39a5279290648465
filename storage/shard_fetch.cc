#include "storage/shard_fetch.h"

#include <curl/curl.h>
#include <sys/stat.h>
#include <utime.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "base/escape.h"
#include "base/hex.h"
#include "storage/checkpoint.h"
#include "storage/digest.h"
#include "storage/gguf.h"
#include "storage/gguf_model.h"
#include "storage/http_get.h"
#include "storage/read_file.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxManifestBytes = 64u << 20;

// The manifest from the model server, bounded, with retries.
Result<std::string> GetManifest(const FetchOptions& o) {
  SmallGet get;
  get.token = o.token;
  get.attempts = o.attempts;
  get.backoff_ms = o.backoff_ms;
  get.max_bytes = kMaxManifestBytes;
  get.what = "the manifest";
  get.cancel = o.cancel;
  get.tls = o.tls;
  auto got = GetSmall(o.base_url + "/manifest", get);
  if (!got.ok()) {
    return Status::Error("cannot get the model manifest from " + EscapeText(o.base_url) + ": " + got.status().message());
  }
  return got;
}

// Where each tensor goes in the shard's file.
struct Placed {
  const ManifestTensor* tensor;
  uint64_t offset = 0;  // absolute, in the shard file
};

// The shard's safetensors header, and where each tensor's bytes go.
std::string SafetensorsLayout(std::vector<Placed>* placed) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t at = 0;
  for (auto& p : *placed) {
    const uint64_t n = p.tensor->end - p.tensor->begin;
    header[p.tensor->name] = {{"dtype", DTypeString(p.tensor->dtype)}, {"shape", p.tensor->shape},
                              {"data_offsets", {at, at + n}}};
    p.offset = at;
    at += (n + 7) / 8 * 8;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // data starts 8-aligned
  for (auto& p : *placed) p.offset += 8 + text.size();
  std::string out(8, '\0');
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(len >> (8 * i));
  return out + text;
}

// A GGUF model's shard: a GGUF file of the stage's tensors under their GGUF
// names, bytes unchanged (q/k rows stay in GGUF's rotary order, which the
// loader undoes as for the whole file); the config is the shard's config.json.
Result<std::string> GgufLayout(const std::string& model_type, std::vector<Placed>* placed) {
  std::vector<GgufTensorToWrite> tensors;
  for (const auto& p : *placed) tensors.push_back({GgufTensorName(p.tensor->name), p.tensor->dtype, p.tensor->shape, {}});
  std::vector<uint64_t> offsets;
  auto head = GgufHead({{"general.architecture", GgufStr(model_type)}, {"general.name", GgufStr("strata shard")}},
                       tensors, &offsets);
  if (!head.ok()) return head.status();
  for (size_t i = 0; i < placed->size(); ++i) (*placed)[i].offset = offsets[i];
  return head;
}

// The shard file's name, and the bytes it starts with (placing every tensor).
Result<std::string> Layout(const ModelManifest& manifest, const nlohmann::json& config, std::vector<Placed>* placed,
                           std::string* file_name) {
  if (manifest.container == ModelManifest::Container::kSafetensors) {
    *file_name = "model.safetensors";
    return SafetensorsLayout(placed);
  }
  *file_name = kShardGgufName;
  const auto type = config.find("model_type");
  if (type == config.end() || !type->is_string()) return Status::Error("the manifest's config.json has no model_type");
  return GgufLayout(type->get<std::string>(), placed);
}

// A byte range of one tensor, and what became of its request.
struct Job {
  size_t tensor = 0;            // index into placed
  uint64_t src = 0, length = 0; // in the server's file
  uint64_t dst = 0;             // in the shard file
  int attempts = 0;
  Clock::time_point not_before{};
  bool whole = false;           // the tensor in one request: hashed as it arrives
  // In flight:
  uint64_t received = 0;
  bool write_failed = false;
  std::string write_error;
};

struct Transfer {
  Job job;
  RandomRWFile* file = nullptr;
  CURL* curl = nullptr;
  CurlHeaders headers;
  std::optional<Digest> sha;  // for a whole-tensor job: the bytes so far, in order
};

size_t WriteRange(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (t->job.received + bytes > t->job.length) {
    t->job.write_failed = true;
    t->job.write_error = "the server sent more than the range asked for";
    return 0;
  }
  Status st = t->file->Write(t->job.dst + t->job.received, data, bytes);
  if (!st.ok()) {
    t->job.write_failed = true;
    t->job.write_error = st.message();
    return 0;
  }
  if (t->sha) t->sha->Update(data, bytes);
  t->job.received += bytes;
  return bytes;
}

// SHA-256 of a tensor's bytes as written in the shard file.
Result<std::string> HashWritten(RandomRWFile& file, uint64_t offset, uint64_t n) {
  Digest digest = Digest::Sha256();
  std::vector<uint8_t> buf(std::min<uint64_t>(n, 8u << 20) + 1);
  for (uint64_t at = 0; at < n;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n - at, buf.size()));
    size_t got = 0;
    Status st = file.Read(offset + at, buf.data(), want, &got);
    if (!st.ok()) return st;
    if (got != want) return Status::Error("a short read of the shard file");
    digest.Update(buf.data(), got);
    at += got;
  }
  return digest.HexFinal();
}

uint64_t DirBytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

// Makes room for `need` more bytes under `limit`, evicting least recently
// used models (whole) other than `keep`. Only the cache's model directories
// (named by their 64-hex id) count and go: the directory may be shared with
// what is not a node's (the coordinator's mirrors and manifests, by default).
Status MakeRoom(const fs::path& cache, uint64_t limit, uint64_t need, const std::string& keep) {
  if (limit == 0) return Status::Ok();
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> models;
  uint64_t used = 0;
  for (const auto& entry : fs::directory_iterator(cache, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory(ec) || !IsLowerHex(name, 64)) continue;
    used += DirBytes(entry.path());
    if (name != keep) models.push_back({fs::last_write_time(entry.path() / "last-used", ec), entry.path()});
  }
  std::sort(models.begin(), models.end());
  for (const auto& [when, path] : models) {
    if (used + need <= limit) break;
    const uint64_t bytes = DirBytes(path);
    fs::remove_all(path, ec);
    used -= std::min(used, bytes);
  }
  if (used + need > limit) {
    return Status::Error("the shard needs " + std::to_string(need >> 20) + " MiB but the cache at " +
                         EscapeText(cache.string()) + " has " + std::to_string((limit - std::min(used, limit)) >> 20) +
                         " MiB left of its limit " + std::to_string(limit >> 20) + " MiB");
  }
  return Status::Ok();
}

class Fetcher final : public TransferSource {
 public:
  Fetcher(Env& env, const FetchOptions& o, std::vector<Placed> placed, RandomRWFile& file, std::string url_files)
      : env_(env), o_(o), placed_(std::move(placed)), file_(file), files_url_(std::move(url_files)) {}

  // Fetches every tensor not in `done`; adds what it verifies to `done`.
  Status Run(std::vector<bool>* done, FetchResult* result);

  // TransferSource, for RunTransfers: a range of a tensor at a time.
  Result<CURL*> Next() override;
  bool Waiting() const override { return !queue_.empty(); }
  Status Done(CURL* easy, CURLcode rc) override;

 private:
  void Queue(size_t tensor);
  CURL* Start(Transfer& t);
  Status Finish(Transfer& t, CURLcode rc, std::vector<bool>* done, FetchResult* result);

  Env& env_;
  const FetchOptions& o_;
  std::vector<Placed> placed_;
  RandomRWFile& file_;
  std::string files_url_;
  std::deque<Job> queue_;
  std::vector<int> pending_;          // per tensor: ranges not yet in
  std::vector<int> hash_failures_;    // per tensor
  std::vector<std::unique_ptr<Transfer>> active_;
  std::vector<bool>* done_ = nullptr;  // Run's
  FetchResult* result_ = nullptr;      // Run's
};

void Fetcher::Queue(size_t tensor) {
  const ManifestTensor& t = *placed_[tensor].tensor;
  const uint64_t n = t.end - t.begin;
  int ranges = 0;
  for (uint64_t at = 0; at < n || (n == 0 && ranges == 0); at += o_.chunk_bytes) {
    if (n == 0) break;
    Job job;
    job.tensor = tensor;
    job.src = t.begin + at;
    job.length = std::min<uint64_t>(o_.chunk_bytes, n - at);
    job.dst = placed_[tensor].offset + at;
    job.whole = n <= o_.chunk_bytes;
    queue_.push_back(job);
    ++ranges;
  }
  pending_[tensor] = ranges;
}

CURL* Fetcher::Start(Transfer& t) {
  CURL* curl = curl_easy_init();
  const ManifestTensor& tensor = *placed_[t.job.tensor].tensor;
  const std::string url = files_url_ + tensor.file;
  const std::string range = std::to_string(t.job.src) + "-" + std::to_string(t.job.src + t.job.length - 1);
  SetGetOptions(curl, url, o_.token, /*follow_redirects=*/false, &t.headers, o_.tls);  // a stalled transfer fails
  curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteRange);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L << 10);  // fewer, larger writes into the shard file
  curl_easy_setopt(curl, CURLOPT_PRIVATE, &t);
  if (t.job.whole) t.sha = Digest::Sha256();
  t.curl = curl;
  return curl;
}

Status Fetcher::Finish(Transfer& t, CURLcode rc, std::vector<bool>* done, FetchResult* result) {
  long status = 0;
  curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
  Job& job = t.job;
  const ManifestTensor& tensor = *placed_[job.tensor].tensor;
  if (job.write_failed && job.write_error.find("more than the range") == std::string::npos) {
    return Status::Error("writing the shard failed: " + job.write_error);  // a full disk: no retry helps
  }
  const bool ok = rc == CURLE_OK && status == 206 && job.received == job.length;
  if (!ok) {
    const std::string why = job.write_failed ? job.write_error
                            : rc != CURLE_OK  ? curl_easy_strerror(rc)
                            : status != 206   ? "HTTP " + std::to_string(status)
                                              : "the connection closed after " + std::to_string(job.received) + " of " +
                                                  std::to_string(job.length) + " bytes";
    if (++job.attempts >= o_.attempts) {
      return Status::Error("fetching bytes " + std::to_string(job.src) + "-" + std::to_string(job.src + job.length - 1) +
                           " of " + EscapeText(tensor.file) + " from " + EscapeText(o_.base_url) + " failed " +
                           std::to_string(job.attempts) + " times; last: " + why);
    }
    Job again = job;
    again.received = 0;
    again.write_failed = false;
    again.not_before = Clock::now() + std::chrono::milliseconds(o_.backoff_ms << (job.attempts - 1));
    queue_.push_back(again);
    return Status::Ok();
  }
  result->fetched_bytes += job.length;
  if (o_.progress != nullptr) o_.progress->done += job.length;
  if (--pending_[job.tensor] > 0) return Status::Ok();
  // Every range of the tensor is in: it counts only if its hash matches. A
  // tensor that came in one request was hashed as it arrived; one split into
  // ranges (out of order) is read back and hashed.
  Result<std::string> hash = job.whole ? Result<std::string>(t.sha->HexFinal())
                                       : HashWritten(file_, placed_[job.tensor].offset, tensor.end - tensor.begin);
  if (!hash.ok()) return hash.status();
  if (hash.value() == tensor.sha256) {
    (*done)[job.tensor] = true;
    return Status::Ok();
  }
  ++result->refetched_tensors;
  if (o_.progress != nullptr) o_.progress->done -= std::min<uint64_t>(o_.progress->done, tensor.end - tensor.begin);
  if (++hash_failures_[job.tensor] >= o_.attempts) {
    return Status::Error("tensor '" + EscapeText(tensor.name, 120) + "' from " + EscapeText(o_.base_url) +
                         " does not match its SHA-256 after " + std::to_string(o_.attempts) +
                         " tries (corrupted in transit?); nothing was loaded");
  }
  Queue(job.tensor);
  return Status::Ok();
}

Status Fetcher::Run(std::vector<bool>* done, FetchResult* result) {
  pending_.assign(placed_.size(), 0);
  hash_failures_.assign(placed_.size(), 0);
  // The largest tensors first, so that no large one starts last and
  // leaves the other connections idle at the end.
  std::vector<size_t> order;
  for (size_t i = 0; i < placed_.size(); ++i) {
    if (!(*done)[i]) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [this](size_t a, size_t b) {
    return placed_[a].tensor->end - placed_[a].tensor->begin > placed_[b].tensor->end - placed_[b].tensor->begin;
  });
  for (size_t i : order) Queue(i);
  done_ = done;
  result_ = result;
  return RunTransfers(o_.connections, *this, o_.cancel);
}

// Up to one pass over the queue: a job still in its backoff goes to the back.
Result<CURL*> Fetcher::Next() {
  const auto now = Clock::now();
  for (size_t scanned = queue_.size(); scanned > 0; --scanned) {
    Job job = queue_.front();
    queue_.pop_front();
    if (job.not_before > now) {
      queue_.push_back(job);
      continue;
    }
    auto t = std::make_unique<Transfer>();
    t->job = job;
    t->file = &file_;
    CURL* curl = Start(*t);
    active_.push_back(std::move(t));
    return curl;
  }
  return static_cast<CURL*>(nullptr);
}

Status Fetcher::Done(CURL* easy, CURLcode rc) {
  Transfer* t = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
  Status st = Finish(*t, rc, done_, result_);
  active_.erase(std::find_if(active_.begin(), active_.end(), [t](const auto& a) { return a.get() == t; }));
  return st;
}

Status WriteSmallFile(Env& env, const std::string& path, const std::string& text) {
  auto file = env.NewWritableFile(path + ".tmp");
  if (!file.ok()) return file.status();
  Status st = file.value()->Append(text.data(), text.size());
  if (st.ok()) st = file.value()->Sync();
  if (st.ok()) st = file.value()->Close();
  if (st.ok()) st = env.RenameFile(path + ".tmp", path);
  return st;
}

std::string ShardDir(const std::string& cache, const std::string& model_id, int64_t first, int64_t end) {
  return cache + "/" + model_id + "/" + std::to_string(first) + "-" + std::to_string(end);
}

}  // namespace

Result<ModelManifest> GetRemoteManifest(const FetchOptions& options) {
  auto text = GetManifest(options);
  if (!text.ok()) return text.status();
  return ModelManifest::FromJson(text.value());
}

namespace {

// What a shard's `complete` mark says of it: the model, then the shard
// file's name, size and modification time (ns). A file that no longer
// agrees with its mark (rewritten, truncated, touched) is verified again.
std::string FileStamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_size) + " " +
         std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
}

std::string MarkText(const std::string& dir, const std::string& model_id, const std::string& shard_file) {
  return model_id + "\n" + shard_file + " " + FileStamp(dir + "/" + shard_file) + "\n";
}

// The shard file the mark names, when the mark agrees with it; "" otherwise.
std::string MarkedFile(const std::string& dir, const std::string& model_id) {
  auto read = ReadSmallFile(dir + "/complete", "a shard's mark", 4096);
  const std::string mark = read.ok() ? read.value() : "";
  const size_t line = mark.find('\n');
  if (line == std::string::npos || mark.substr(0, line) != model_id) return "";
  const std::string rest = mark.substr(line + 1);
  const std::string file = rest.substr(0, rest.find(' '));
  if (file.empty() || file.find('/') != std::string::npos || file[0] == '.') return "";
  return mark == MarkText(dir, model_id, file) ? file : "";
}

}  // namespace

std::string CachedShard(const std::string& cache_dir, const std::string& model_id, int64_t first, int64_t end) {
  const std::string dir = ShardDir(cache_dir, model_id, first, end);
  return MarkedFile(dir, model_id).empty() ? "" : dir;
}

Result<FetchResult> FetchShard(Env& env, const FetchOptions& o, const std::string& model_id, int64_t first,
                               int64_t end) {
  if (!IsLowerHex(model_id, 64)) {
    return Status::Error("a model id is 64 hex digits");
  }
  FetchResult result;
  result.dir = ShardDir(o.cache_dir, model_id, first, end);
  std::error_code ec;
  fs::create_directories(result.dir, ec);
  if (ec) return Status::Error("cannot create " + EscapeText(result.dir) + ": " + ec.message());
  const std::string last_used = o.cache_dir + "/" + model_id + "/last-used";
  Status touched = WriteSmallFile(env, last_used, "");  // the model's place in the LRU order
  (void)touched;
  if (!CachedShard(o.cache_dir, model_id, first, end).empty()) return result;  // warm: nothing to fetch
  (void)env.RemoveFile(result.dir + "/complete");  // a mark that disagrees with its file: verified again below

  auto text = GetManifest(o);
  if (!text.ok()) return text.status();
  auto manifest = ModelManifest::FromJson(text.value());
  if (!manifest.ok()) return manifest.status();
  if (manifest->id != model_id) {
    return Status::Error("the server at " + EscapeText(o.base_url) + " serves model " + manifest->id.substr(0, 12) +
                         ", not " + model_id.substr(0, 12));
  }
  const auto config = nlohmann::json::parse(manifest->config_json, nullptr, false);
  if (config.is_discarded() || !config.contains("num_hidden_layers") || !config["num_hidden_layers"].is_number_integer()) {
    return Status::Error("the manifest's config.json has no num_hidden_layers");
  }
  const int64_t layers = config["num_hidden_layers"].get<int64_t>();
  if (first < 0 || first >= end || end > layers) return Status::Error("bad layer range for the manifest's model");
  std::vector<Placed> placed;
  for (const ManifestTensor* t : manifest->ForLayers(first, end, layers)) placed.push_back({t, 0});
  std::string shard_file;
  auto layout = Layout(manifest.value(), config, &placed, &shard_file);
  if (!layout.ok()) return layout.status();
  const std::string& header = layout.value();
  uint64_t total = header.size();
  for (const auto& p : placed) total = std::max<uint64_t>(total, p.offset + (p.tensor->end - p.tensor->begin));
  if (o.progress != nullptr) o.progress->total = total;

  Status room = MakeRoom(o.cache_dir, o.cache_limit, total, model_id);
  if (!room.ok()) return room;
  const std::string partial = result.dir + "/" + shard_file + ".partial";
  // A shard whose mark disagreed with it goes back to being a partial file:
  // each tensor in it is hashed again, and only those that do not match
  // are fetched.
  if (!fs::exists(partial, ec) && fs::exists(result.dir + "/" + shard_file, ec)) {
    (void)env.RenameFile(result.dir + "/" + shard_file, partial);
  }
  const bool resuming = fs::exists(partial, ec);
  auto file = env.NewRandomRWFile(partial);
  if (!file.ok()) return file.status();
  Status st = file.value()->Allocate(0, total);  // a full disk fails here, before any transfer
  if (st.ok()) st = file.value()->Write(0, header.data(), header.size());
  if (!st.ok()) {
    file.value().reset();
    (void)env.RemoveFile(partial);
    return Status::Error("the node's cache cannot hold the shard: " + st.message());
  }
  // Resume: tensors already in the partial file that match their hashes stay.
  std::vector<bool> done(placed.size(), false);
  for (size_t i = 0; resuming && i < placed.size(); ++i) {
    auto hash = HashWritten(*file.value(), placed[i].offset, placed[i].tensor->end - placed[i].tensor->begin);
    done[i] = hash.ok() && hash.value() == placed[i].tensor->sha256;
    if (done[i] && o.progress != nullptr) o.progress->done += placed[i].tensor->end - placed[i].tensor->begin;
  }
  Fetcher fetcher(env, o, placed, *file.value(), o.base_url + "/files/");
  st = fetcher.Run(&done, &result);
  if (st.ok()) st = file.value()->Sync();
  file.value().reset();
  if (!st.ok()) return st;  // the partial file stays for a resume; it is never loaded
  st = env.RenameFile(partial, result.dir + "/" + shard_file);
  if (st.ok()) st = WriteSmallFile(env, result.dir + "/config.json", manifest->config_json);
  if (st.ok()) st = WriteSmallFile(env, result.dir + "/complete", MarkText(result.dir, model_id, shard_file));
  if (!st.ok()) return st;
  return result;
}

}  // namespace strata
