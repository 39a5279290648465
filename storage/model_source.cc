#include "storage/model_source.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "base/escape.h"
#include "base/hex.h"
#include "base/net_address.h"
#include "storage/digest.h"
#include "storage/gguf_model.h"
#include "storage/http_get.h"
#include "storage/model_manifest.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxListingBytes = 16u << 20;  // an API answer, an index, SHA256SUMS
constexpr uint64_t kMaxFileBytes = 1ull << 40;  // a model file a source may claim
constexpr int kMaxFiles = 4096;

// The files of a model directory Strata uses; everything else is left alone.
bool Wanted(const std::string& name) {
  static const std::set<std::string> kNamed = {"config.json",           "model.safetensors.index.json",
                                               "tokenizer.model",       "tokenizer.json",
                                               "tokenizer_config.json", "generation_config.json",
                                               "special_tokens_map.json"};
  return kNamed.count(name) > 0 || (name.size() > 12 && name.substr(name.size() - 12) == ".safetensors");
}

// A plain file name a source may hand us: no paths, no dot-files.
bool SafeName(const std::string& name) {
  return !name.empty() && name.size() <= 200 && name[0] != '.' &&
         name.find_first_of("/\\") == std::string::npos && name.find('\0') == std::string::npos;
}

struct SourceFile {
  SourceFile() = default;
  explicit SourceFile(std::string n) : name(std::move(n)) {}
  std::string name;
  uint64_t size = 0;     // 0: unknown
  std::string sha256;    // published, hex ("" : none)
  std::string sha1_blob; // published git blob SHA-1, hex ("" : none)
};

// The hub redirects files to its CDN.
void Common(CURL* curl, const std::string& url, const std::string& token, CurlHeaders* headers) {
  SetGetOptions(curl, url, token, /*follow_redirects=*/true, headers);
}

// GET of a small document (an API answer, an index, SHA256SUMS). `*missing`
// (may be null) is set on 404, which is then not an error.
Result<std::string> GetSmall(const MirrorOptions& o, const std::string& url, bool* missing) {
  SmallGet get;
  get.token = o.token;
  get.attempts = o.attempts;
  get.backoff_ms = o.backoff_ms;
  get.max_bytes = kMaxListingBytes;
  get.follow_redirects = true;
  auto got = strata::GetSmall(url, get, missing);
  if (!got.ok()) return Status::Error("cannot get " + EscapeText(url) + ": " + got.status().message());
  return got;
}

// Hash of a file, with `prefix` hashed first (the git blob header).
std::string HashFile(const std::string& path, Digest digest, const std::string& prefix) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  digest.Update(prefix.data(), prefix.size());
  std::vector<char> buf(8u << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) digest.Update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return digest.HexFinal();
}

// The hub's listing: the files Strata wants, their hashes, and the commit.
Result<std::vector<SourceFile>> ListHub(const ModelRef& ref, const MirrorOptions& o, std::string* commit) {
  const std::string url = o.hf_endpoint + "/api/models/" + ref.location + "/revision/" + ref.revision + "?blobs=true";
  auto text = GetSmall(o, url, nullptr);
  if (!text.ok()) return text.status();
  const auto json = nlohmann::json::parse(text.value(), nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("siblings") || !json["siblings"].is_array()) {
    return Status::Error("the endpoint's listing of " + EscapeText(ref.location) + " is not a model listing");
  }
  *commit = json.contains("sha") && json["sha"].is_string() ? json["sha"].get<std::string>() : "";
  if (!commit->empty() && !IsLowerHex(*commit, 40)) return Status::Error("the endpoint names a malformed commit");
  std::vector<SourceFile> files;
  for (const auto& s : json["siblings"]) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) continue;
    SourceFile f;
    f.name = s["rfilename"].get<std::string>();
    if (!SafeName(f.name) || !Wanted(f.name)) continue;
    if (s.contains("size") && s["size"].is_number_unsigned()) f.size = s["size"].get<uint64_t>();
    if (s.contains("lfs") && s["lfs"].is_object() && s["lfs"].contains("sha256") && s["lfs"]["sha256"].is_string()) {
      f.sha256 = s["lfs"]["sha256"].get<std::string>();
      if (!IsLowerHex(f.sha256, 64)) return Status::Error("the endpoint publishes a malformed SHA-256 for " + EscapeText(f.name));
    } else if (s.contains("blobId") && s["blobId"].is_string()) {
      f.sha1_blob = s["blobId"].get<std::string>();
      if (!IsLowerHex(f.sha1_blob, 40)) return Status::Error("the endpoint publishes a malformed blob id for " + EscapeText(f.name));
    }
    if (f.size > kMaxFileBytes) return Status::Error(EscapeText(f.name) + " is larger than 1 TiB");
    files.push_back(f);
    if (files.size() > static_cast<size_t>(kMaxFiles)) return Status::Error("the listing names too many files");
  }
  return files;
}

// A plain model directory: config.json, the weights the index names (or
// model.safetensors), the tokenizer files that exist, and SHA256SUMS.
Result<std::vector<SourceFile>> ListUrl(const ModelRef& ref, const MirrorOptions& o) {
  std::vector<SourceFile> files = {SourceFile("config.json")};
  bool no_index = false;
  auto index = GetSmall(o, ref.location + "/model.safetensors.index.json", &no_index);
  if (!index.ok()) return index.status();
  if (no_index) {
    files.push_back(SourceFile("model.safetensors"));
  } else {
    files.push_back(SourceFile("model.safetensors.index.json"));
    const auto json = nlohmann::json::parse(index.value(), nullptr, false);
    if (json.is_discarded() || !json.contains("weight_map") || !json["weight_map"].is_object()) {
      return Status::Error(EscapeText(ref.location) + "/model.safetensors.index.json has no weight_map");
    }
    std::set<std::string> shards;
    for (const auto& [tensor, file] : json["weight_map"].items()) {
      if (!file.is_string() || !SafeName(file.get<std::string>()) || !Wanted(file.get<std::string>())) {
        return Status::Error("the index names a file that is not a plain safetensors name");
      }
      shards.insert(file.get<std::string>());
    }
    if (shards.size() > static_cast<size_t>(kMaxFiles)) return Status::Error("the index names too many files");
    for (const auto& s : shards) files.push_back(SourceFile(s));
  }
  for (const char* optional : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    bool missing = false;
    std::unique_ptr<CURL, void (*)(CURL*)> probe(curl_easy_init(), curl_easy_cleanup);
    CurlHeaders headers;
    Common(probe.get(), ref.location + "/" + optional, o.token, &headers);
    curl_easy_setopt(probe.get(), CURLOPT_NOBODY, 1L);  // HEAD: does it exist?
    long status = 0;
    if (curl_easy_perform(probe.get()) == CURLE_OK) curl_easy_getinfo(probe.get(), CURLINFO_RESPONSE_CODE, &status);
    missing = status != 200;
    if (!missing) files.push_back(SourceFile(optional));
  }
  bool no_sums = false;
  auto sums = GetSmall(o, ref.location + "/SHA256SUMS", &no_sums);
  if (!sums.ok()) return sums.status();
  std::istringstream lines(sums.value());
  for (std::string line; std::getline(lines, line);) {
    // sha256sum's format: HASH, two characters (" *" or "  "), NAME.
    if (line.size() < 67 || !IsLowerHex(line.substr(0, 64), 64)) continue;
    const std::string name = line.substr(66);
    for (auto& f : files) {
      if (f.name == name) f.sha256 = line.substr(0, 64);
    }
  }
  return files;
}

// One file's download into DIR/NAME.partial, resumed from what is there.
struct Download {
  SourceFile file;
  std::string url, partial;
  std::unique_ptr<RandomRWFile> out;
  uint64_t offset = 0;            // where this attempt's bytes go
  uint64_t start = 0;             // the offset this attempt asked from
  int attempts = 0;
  Clock::time_point not_before{};
  std::string write_error;
  bool restart = false;           // the server ignored our Range: start over
  CURL* curl = nullptr;
  CurlHeaders headers;
  const MirrorOptions* o = nullptr;
  uint64_t* fetched = nullptr;
};

size_t WriteDownload(char* data, size_t size, size_t n, void* user) {
  auto* d = static_cast<Download*>(user);
  const size_t bytes = size * n;
  if (d->offset == d->start && d->start > 0) {
    long status = 0;
    curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) {  // the whole file again, not the rest: write it from the start
      d->offset = 0;
      d->start = 0;
      d->restart = true;
    }
  }
  if (d->offset + bytes > kMaxFileBytes || (d->file.size > 0 && d->offset + bytes > d->file.size)) {
    d->write_error = "the source sent more bytes than the file has";
    return 0;
  }
  Status st = d->out->Write(d->offset, data, bytes);
  if (!st.ok()) {
    d->write_error = st.message();
    return 0;
  }
  d->offset += bytes;
  *d->fetched += bytes;
  if (d->o->progress != nullptr) d->o->progress->done += bytes;
  return bytes;
}

}  // namespace

namespace {

class Mirror final : public TransferSource {
 public:
  Mirror(Env& env, const MirrorOptions& o, std::string dir, std::string base) : env_(env), o_(o), dir_(std::move(dir)),
                                                                                 base_(std::move(base)) {}
  // Fetches every file not yet in the directory, verified where a hash is published.
  Status Run(const std::vector<SourceFile>& files, MirrorResult* result);

  // TransferSource, for RunTransfers: a file's download at a time.
  Result<CURL*> Next() override;
  bool Waiting() const override { return !waiting_.empty(); }
  Status Done(CURL* easy, CURLcode rc) override;

 private:
  Status Begin(Download& d);
  // What a finished transfer means: done (true), again later (false), or an error.
  Result<bool> Finish(Download& d, CURLcode rc, MirrorResult* result);

  Env& env_;
  const MirrorOptions& o_;
  std::string dir_, base_;
  uint64_t fetched_ = 0;
  std::vector<std::unique_ptr<Download>> waiting_, active_;
  MirrorResult* result_ = nullptr;  // Run's
};

Status Mirror::Begin(Download& d) {
  std::error_code ec;
  const uint64_t have = fs::exists(d.partial, ec) ? fs::file_size(d.partial, ec) : 0;
  d.offset = d.start = (d.file.size > 0 && have >= d.file.size) ? 0 : have;  // resume from what is there
  d.restart = false;
  d.write_error.clear();
  if (!d.out) {
    auto out = env_.NewRandomRWFile(d.partial);
    if (!out.ok()) return Status::Error("cannot write the model mirror: " + out.status().message());
    d.out = std::move(out.value());
  }
  d.headers = CurlHeaders{};
  d.curl = curl_easy_init();
  Common(d.curl, d.url, o_.token, &d.headers);
  if (d.start > 0) curl_easy_setopt(d.curl, CURLOPT_RANGE, (std::to_string(d.start) + "-").c_str());
  curl_easy_setopt(d.curl, CURLOPT_WRITEFUNCTION, WriteDownload);
  curl_easy_setopt(d.curl, CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(d.curl, CURLOPT_PRIVATE, &d);
  curl_easy_setopt(d.curl, CURLOPT_BUFFERSIZE, 512L << 10);
  d.o = &o_;
  d.fetched = &fetched_;
  return Status::Ok();
}

Result<bool> Mirror::Finish(Download& d, CURLcode rc, MirrorResult* result) {
  long status = 0;
  curl_easy_getinfo(d.curl, CURLINFO_RESPONSE_CODE, &status);
  const std::string where = EscapeText(d.url);
  if (!d.write_error.empty() && d.write_error.find("more bytes") == std::string::npos) {
    return Status::Error("writing " + EscapeText(d.file.name) + " into the model mirror failed: " + d.write_error);
  }
  if (status == 401 || status == 403 || status == 404) {
    return Status::Error("cannot get " + where + ": HTTP " + std::to_string(status) +
                         (status == 404 ? "" : " (a token is needed: HF_TOKEN)"));
  }
  const bool complete = rc == CURLE_OK && (status == 200 || status == 206) &&
                        (d.file.size == 0 || d.offset == d.file.size);
  std::string why;
  if (!complete) {
    why = !d.write_error.empty() ? d.write_error
          : rc != CURLE_OK       ? curl_easy_strerror(rc)
          : status != 200 && status != 206
              ? "HTTP " + std::to_string(status)
              : "the connection closed after " + std::to_string(d.offset) + " of " + std::to_string(d.file.size) + " bytes";
    if (!d.write_error.empty()) (void)env_.RemoveFile(d.partial), d.out.reset();  // an oversized file starts over
  } else {
    // The file is whole: it counts only if it matches what the source publishes.
    const std::string sha256 = d.file.sha256.empty() ? "" : FileSha256Hex(d.partial);
    const std::string sha1 = d.file.sha1_blob.empty() ? "" : GitBlobSha1Hex(d.partial);
    if (sha256 == d.file.sha256 && sha1 == d.file.sha1_blob) {
      Status st = d.out->Sync();
      d.out.reset();
      if (st.ok()) st = env_.RenameFile(d.partial, dir_ + "/" + d.file.name);
      if (!st.ok()) return Status::Error("writing the model mirror failed: " + st.message());
      ++result->files;
      if (!d.file.sha256.empty() || !d.file.sha1_blob.empty()) ++result->files_verified;
      return true;
    }
    why = "it does not match the " + std::string(d.file.sha256.empty() ? "git blob SHA-1" : "SHA-256") +
          " the source publishes (corrupted in transit?)";
    d.out.reset();
    (void)env_.RemoveFile(d.partial);  // never kept, never used
  }
  if (++d.attempts >= o_.attempts) {
    return Status::Error("fetching " + where + " failed " + std::to_string(d.attempts) + " times; last: " + why);
  }
  d.not_before = Clock::now() + std::chrono::milliseconds(o_.backoff_ms << (d.attempts - 1));
  return false;
}

Status Mirror::Run(const std::vector<SourceFile>& files, MirrorResult* result) {
  std::error_code ec;
  for (const auto& f : files) {
    if (fs::exists(dir_ + "/" + f.name, ec)) {
      ++result->files;  // verified when it was fetched
      if (!f.sha256.empty() || !f.sha1_blob.empty()) ++result->files_verified;
      continue;
    }
    auto d = std::make_unique<Download>();
    d->file = f;
    d->url = base_ + "/" + f.name;
    d->partial = dir_ + "/" + f.name + ".partial";
    if (o_.progress != nullptr) o_.progress->total += f.size;
    waiting_.push_back(std::move(d));
  }
  result_ = result;
  Status st = RunTransfers(o_.connections, *this);
  result->fetched_bytes = fetched_;
  return st;
}

Result<CURL*> Mirror::Next() {
  const auto now = Clock::now();
  for (size_t i = 0; i < waiting_.size(); ++i) {
    if (waiting_[i]->not_before > now) continue;
    Status st = Begin(*waiting_[i]);
    if (!st.ok()) return st;
    CURL* curl = waiting_[i]->curl;
    active_.push_back(std::move(waiting_[i]));
    waiting_.erase(waiting_.begin() + static_cast<long>(i));
    return curl;
  }
  return static_cast<CURL*>(nullptr);
}

Status Mirror::Done(CURL* easy, CURLcode rc) {
  Download* d = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, reinterpret_cast<char**>(&d));
  auto done = Finish(*d, rc, result_);
  d->curl = nullptr;  // RunTransfers frees it
  auto it = std::find_if(active_.begin(), active_.end(), [d](const auto& a) { return a.get() == d; });
  if (done.ok() && !done.value()) waiting_.push_back(std::move(*it));
  active_.erase(it);
  return done.ok() ? Status::Ok() : done.status();
}

std::string CacheKey(const std::string& text) { return Sha256Hex(text.data(), text.size()).substr(0, 32); }

}  // namespace

std::string FileSha256Hex(const std::string& path) { return HashFile(path, Digest::Sha256(), ""); }

std::string GitBlobSha1Hex(const std::string& path) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return "";
  return HashFile(path, Digest::Sha1(), "blob " + std::to_string(size) + std::string(1, '\0'));
}

Result<ModelRef> ParseModelRef(const std::string& text) {
  ModelRef ref;
  std::error_code ec;
  if (fs::is_directory(text, ec) || IsGgufFile(text)) {  // a checkpoint directory, or one GGUF file
    ref.location = text;
    return ref;
  }
  if (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0) {
    ref.kind = ModelRef::Kind::kUrl;
    ref.location = text;
    while (!ref.location.empty() && ref.location.back() == '/') ref.location.pop_back();
    if (ref.location.size() > 2048 || ref.location.find_first_of(" \t\r\n") != std::string::npos) {
      return Status::Error("--model: a malformed URL");
    }
    return ref;
  }
  static const std::regex kRepo(R"(([A-Za-z0-9][A-Za-z0-9._-]{0,95})/([A-Za-z0-9][A-Za-z0-9._-]{0,95})(@([A-Za-z0-9._-]{1,128}))?)");
  std::smatch m;
  if (std::regex_match(text, m, kRepo) && text.find("..") == std::string::npos) {
    ref.kind = ModelRef::Kind::kHub;
    ref.location = m[1].str() + "/" + m[2].str();
    if (m[4].matched) ref.revision = m[4].str();
    return ref;
  }
  return Status::Error("--model " + EscapeText(text, 200) +
                       ": no such directory or GGUF file, and not an http(s) URL or a repo id ORG/NAME[@REVISION]");
}

bool TokenMayGoTo(const std::string& endpoint) {
  if (endpoint.rfind("https://", 0) == 0) return true;
  if (endpoint.rfind("http://", 0) != 0) return false;
  std::string authority = endpoint.substr(7, endpoint.find_first_of("/?#", 7) - 7);
  if (authority.find('@') != std::string::npos) authority = authority.substr(authority.rfind('@') + 1);
  const std::string host = authority.rfind('[', 0) == 0 ? authority.substr(1, authority.find(']') - 1)
                                                        : authority.substr(0, authority.find(':'));
  return IsLoopbackHost(host);
}

Result<MirrorResult> MirrorModel(Env& env, const ModelRef& ref, const MirrorOptions& options) {
  MirrorOptions o = options;
  if (ref.kind != ModelRef::Kind::kHub || !TokenMayGoTo(o.hf_endpoint)) o.token.clear();
  MirrorResult result;
  if (ref.kind == ModelRef::Kind::kLocal) {
    result.dir = ref.location;
    return result;
  }
  std::string commit, base, key;
  Result<std::vector<SourceFile>> files = Status::Error("");
  if (ref.kind == ModelRef::Kind::kHub) {
    files = ListHub(ref, o, &commit);
    base = o.hf_endpoint + "/" + ref.location + "/resolve/" + (commit.empty() ? ref.revision : commit);
    key = CacheKey(o.hf_endpoint + "\n" + ref.location + "\n" + (commit.empty() ? ref.revision : commit));
  } else {
    files = ListUrl(ref, o);
    base = ref.location;
    key = CacheKey(ref.location);
  }
  if (!files.ok()) return files.status();
  bool has_config = false, has_weights = false;
  for (const auto& f : files.value()) {
    has_config = has_config || f.name == "config.json";
    has_weights = has_weights || f.name.find(".safetensors") != std::string::npos;
  }
  if (!has_config || !has_weights) {
    return Status::Error(EscapeText(ref.location) + " has no config.json and safetensors weights to mirror");
  }
  result.dir = o.cache_dir + "/sources/" + key;
  std::error_code ec;
  fs::create_directories(result.dir, ec);
  if (ec) return Status::Error("cannot create " + EscapeText(result.dir) + ": " + ec.message());
  Mirror mirror(env, o, result.dir, base);
  Status st = mirror.Run(files.value(), &result);
  if (!st.ok()) return st;  // partial files stay for a resume; they are never used
  return result;
}

}  // namespace strata
