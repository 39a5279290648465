#include "coordinator/cluster/model_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <kj/debug.h>

#include <ctime>
#include <map>
#include <nlohmann/json.hpp>

#include "base/escape.h"
#include "base/hex.h"
#include "protocol/cluster_tls.h"
#include "protocol/connection_gate.h"
#include "protocol/peer_auth.h"
#include "protocol/write_deadline.h"
#include "storage/model_source.h"

namespace strata {
namespace {

constexpr size_t kChunk = 1u << 20;

// "bytes=A-B" or "bytes=A-" within a file of `size`; false for anything else.
bool ParseRange(kj::StringPtr text, uint64_t size, uint64_t* begin, uint64_t* end) {
  std::string s = text.cStr();
  if (s.rfind("bytes=", 0) != 0) return false;
  s = s.substr(6);
  const size_t dash = s.find('-');
  if (dash == std::string::npos || dash == 0 || s.find_first_not_of("0123456789-") != std::string::npos ||
      s.find('-', dash + 1) != std::string::npos || dash > 19 || s.size() - dash - 1 > 19) {
    return false;
  }
  *begin = std::stoull(s.substr(0, dash));
  // "bytes=A-" is the rest of the file from A (a resumed download asks so).
  const uint64_t last = dash + 1 == s.size() ? (size > 0 ? size - 1 : 0) : std::stoull(s.substr(dash + 1));
  if (*begin > last || last >= size) return false;
  *end = last + 1;
  return true;
}

// A file of the directory served on the hub routes, with the hash a hub publishes.
struct HubFile {
  std::string name;
  uint64_t size = 0;
  std::string sha256, sha1_blob;
};

// The repo's files: the manifest's weights (by SHA-256, as LFS files are)
// and the config and tokenizer files present (by git blob SHA-1).
std::vector<HubFile> HubFiles(const std::string& dir, const ModelManifest& manifest) {
  std::vector<HubFile> files;
  // A GGUF model is its one file; a safetensors one has its config and tokenizer beside it.
  const bool gguf = manifest.container == ModelManifest::Container::kGguf;
  for (const char* name : {"config.json", "model.safetensors.index.json", "tokenizer.model", "tokenizer.json",
                           "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"}) {
    const std::string path = dir + "/" + name;
    if (gguf || ::access(path.c_str(), R_OK) != 0) continue;
    HubFile f{name, 0, "", GitBlobSha1Hex(path)};
    files.push_back(f);
  }
  for (const auto& name : manifest.files) files.push_back({name, 0, FileSha256Hex(dir + "/" + name), ""});
  for (auto& f : files) {
    const int fd = ::open((dir + "/" + f.name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) f.size = static_cast<uint64_t>(::lseek(fd, 0, SEEK_END)), ::close(fd);
  }
  return files;
}

}  // namespace

namespace {

Bytes ModelMac(const ClusterSecret& secret, const std::string& model_id, const std::string& expiry_hex) {
  const std::string text = "strata-model-v2\n" + model_id + "\n" + expiry_hex;
  return Hmac(secret, Bytes(text.begin(), text.end()));
}

}  // namespace

std::string ModelToken(const ClusterSecret& secret, const std::string& model_id, int64_t expires_unix) {
  if (secret.empty()) return "";
  char expiry[17];
  std::snprintf(expiry, sizeof expiry, "%016llx", static_cast<unsigned long long>(expires_unix));
  const Bytes mac = ModelMac(secret, model_id, expiry);
  return std::string(expiry) + HexEncode(mac.data(), mac.size());
}

bool ModelTokenValid(const ClusterSecret& secret, const std::string& model_id, const std::string& token,
                     int64_t now_unix) {
  if (secret.empty() || token.size() != 16 + 64) return false;
  const std::string expiry = token.substr(0, 16);
  if (!IsLowerHex(expiry, 16) || static_cast<int64_t>(std::stoull(expiry, nullptr, 16)) <= now_unix) return false;
  const Bytes mac = ModelMac(secret, model_id, expiry);
  const std::string want = expiry + HexEncode(mac.data(), mac.size());
  return ProofsEqual(Bytes(token.begin(), token.end()), Bytes(want.begin(), want.end()));
}

struct ModelServer::Impl final : public kj::HttpService {
  Impl(kj::Timer& timer, std::string dir, ModelManifest manifest, std::string token, ServeFaults faults,
       std::string repo_id)
      : dir(std::move(dir)), manifest(std::move(manifest)), manifest_json(this->manifest.ToJson()),
        token(std::move(token)), faults(faults), repo_id(std::move(repo_id)), table(MakeTable()),
        server(timer, *table, *this),
        gate(timer, GateLimits{256, 64}, "model server",
             [this, clock = &timer](kj::Own<kj::AsyncIoStream> stream, const std::string&) -> kj::Promise<void> {
               kj::Own<kj::AsyncIoStream> timed = kj::heap<WriteDeadlineStream>(kj::mv(stream), *clock, 60000);
               if (tls == nullptr) return server.listenHttp(kj::mv(timed));
               return tls->context().wrapServer(kj::mv(timed)).then(
                   [this](kj::Own<kj::AsyncIoStream> secured) { return server.listenHttp(kj::mv(secured)); });
             }) {
    if (this->repo_id.empty()) return;
    hub_files = HubFiles(this->dir, this->manifest);
    commit = this->manifest.id.substr(0, 40);  // a model that changes gets a new commit
    nlohmann::json siblings = nlohmann::json::array();
    for (const auto& f : hub_files) {
      nlohmann::json s = {{"rfilename", f.name}, {"size", f.size}};
      if (!f.sha256.empty()) s["lfs"] = {{"sha256", f.sha256}, {"size", f.size}};
      else s["blobId"] = f.sha1_blob;
      siblings.push_back(s);
      if (!f.sha256.empty()) sha256sums += f.sha256 + "  " + f.name + "\n";
    }
    hub_listing = nlohmann::json{{"id", this->repo_id}, {"modelId", this->repo_id}, {"sha", commit},
                                 {"siblings", siblings}}.dump();
  }

  kj::Promise<void> SendText(Response& response, const std::string& text, const char* type) {
    kj::HttpHeaders out(*table);
    out.set(kj::HttpHeaderId::CONTENT_TYPE, type);
    auto body = response.send(200, "OK", out, text.size());
    auto write = body->write(text.data(), text.size());
    return write.attach(kj::mv(body));
  }

  // The hub routes; false when `path` is none of them.
  bool HubRoute(const std::string& path, kj::HttpMethod method, const kj::HttpHeaders& headers, Response& response,
                kj::Promise<void>* reply) {
    if (repo_id.empty()) return false;
    const std::string api = "/api/models/" + repo_id;
    const std::string bare = path.substr(0, path.find('?'));
    if (bare == api || bare == api + "/revision/main" || bare == api + "/revision/" + commit) {
      *reply = method == kj::HttpMethod::GET ? SendText(response, hub_listing, "application/json")
                                             : response.sendError(405, "Method Not Allowed", *table);
      return true;
    }
    for (const std::string& rev : {std::string("main"), commit}) {
      const std::string prefix = "/" + repo_id + "/resolve/" + rev + "/";
      if (bare.rfind(prefix, 0) != 0) continue;
      const std::string name = bare.substr(prefix.size());
      if (name == "SHA256SUMS") {
        *reply = SendText(response, sha256sums, "text/plain");
        return true;
      }
      for (const auto& f : hub_files) {
        if (f.name == name) {
          *reply = SendRange(name, headers, response, /*whole_ok=*/true);
          return true;
        }
      }
      *reply = response.sendError(404, "Not Found", *table);
      return true;
    }
    return false;
  }

  kj::Own<kj::HttpHeaderTable> MakeTable() {
    kj::HttpHeaderTable::Builder builder;
    range_header = builder.add("Range");
    authorization = builder.add("Authorization");
    content_range = builder.add("Content-Range");
    return builder.build();
  }

  // The static token (a hub's), or a ModelToken of the cluster for this model.
  bool Authorized(kj::Maybe<kj::StringPtr> header) const {
    if (token.empty() && cluster_secret == nullptr) return true;
    if (!token.empty() && BearerTokenMatches(header, token)) return true;
    KJ_IF_MAYBE(secret, cluster_secret) {
      KJ_IF_MAYBE(h, header) {
        const std::string text = h->cStr();
        const std::string prefix = "Bearer ";
        if (text.rfind(prefix, 0) != 0) return false;
        return ModelTokenValid(*secret, manifest.id, text.substr(prefix.size()), static_cast<int64_t>(std::time(nullptr)));
      }
    }
    return false;
  }

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                            kj::AsyncInputStream&, Response& response) override {
    if (method != kj::HttpMethod::GET && method != kj::HttpMethod::HEAD) {
      return response.sendError(405, "Method Not Allowed", *table);
    }
    const std::string path = url.cStr();
    // A cluster's server shows its manifest to anyone (it names the model, so
    // a coordinator can make a token for it); its bytes only with a token.
    const bool open_manifest = path == "/manifest" && token.empty();
    if (!open_manifest && !Authorized(headers.get(authorization))) return response.sendError(401, "Unauthorized", *table);
    kj::Promise<void> reply = nullptr;
    if (HubRoute(path, method, headers, response, &reply)) return reply;
    if (method != kj::HttpMethod::GET) return response.sendError(405, "Method Not Allowed", *table);
    if (path == "/manifest") {
      kj::HttpHeaders out(*table);
      out.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
      auto body = response.send(200, "OK", out, manifest_json.size());
      auto write = body->write(manifest_json.data(), manifest_json.size());
      return write.attach(kj::mv(body));
    }
    const std::string prefix = "/files/";
    if (path.rfind(prefix, 0) != 0) return response.sendError(404, "Not Found", *table);
    const std::string name = path.substr(prefix.size());
    bool listed = false;
    for (const auto& f : manifest.files) listed = listed || f == name;
    if (!listed) return response.sendError(404, "Not Found", *table);
    return SendRange(name, headers, response, /*whole_ok=*/false);
  }

  // A byte range of a file (206), or with `whole_ok` and no Range the whole file (200).
  kj::Promise<void> SendRange(const std::string& name, const kj::HttpHeaders& headers, Response& response,
                              bool whole_ok) {
    const int fd = ::open((dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return response.sendError(404, "Not Found", *table);
    const off_t size = ::lseek(fd, 0, SEEK_END);
    uint64_t begin = 0, end = static_cast<uint64_t>(size);
    bool partial = true;
    KJ_IF_MAYBE(range, headers.get(range_header)) {
      if (!ParseRange(*range, static_cast<uint64_t>(size), &begin, &end)) {
        ::close(fd);
        return response.sendError(416, "Range Not Satisfiable", *table);
      }
    } else if (whole_ok) {
      partial = false;
    } else {
      ::close(fd);
      return response.sendError(416, "Range Not Satisfiable", *table);  // whole files are not served: nodes ask for ranges
    }
    ++ranges;
    if (faults.fail > 0) {
      --faults.fail;
      ::close(fd);
      return response.sendError(500, "Internal Server Error", *table);
    }
    bool corrupt = false, truncate = false;
    if (faults.corrupt > 0) corrupt = (--faults.corrupt, true);
    else if (faults.truncate > 0) truncate = (--faults.truncate, true);
    kj::HttpHeaders out(*table);
    out.set(kj::HttpHeaderId::CONTENT_TYPE, "application/octet-stream");
    if (partial) out.set(content_range, kj::str("bytes ", begin, "-", end - 1, "/", static_cast<uint64_t>(size)));
    auto body = partial ? response.send(206, "Partial Content", out, end - begin) : response.send(200, "OK", out, end - begin);
    const uint64_t stop = truncate ? begin + (end - begin) / 2 : end;
    // One buffer per response, reused for every chunk: a fresh megabyte per
    // chunk costs a page fault per 4 KiB.
    auto buf = kj::heapArray<kj::byte>(std::max<uint64_t>(1, std::min<uint64_t>(kChunk, end - begin)));
    kj::ArrayPtr<kj::byte> chunk = buf;
    return Pump(fd, begin, stop, corrupt, *body, chunk)
        .attach(kj::mv(body), kj::mv(buf), kj::defer([fd]() { ::close(fd); }));
  }

  // Sends [at, end) of fd through `buf`, one write at a time.
  kj::Promise<void> Pump(int fd, uint64_t at, uint64_t end, bool corrupt, kj::AsyncOutputStream& out,
                         kj::ArrayPtr<kj::byte> buf) {
    if (at >= end) return kj::READY_NOW;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - at));
    const ssize_t n = ::pread(fd, buf.begin(), want, static_cast<off_t>(at));
    if (n <= 0) return KJ_EXCEPTION(FAILED, "reading the model file failed");
    if (corrupt) buf[0] ^= 0x5a;  // one byte wrong in transit
    served += static_cast<uint64_t>(n);
    return out.write(buf.begin(), static_cast<size_t>(n)).then([this, fd, at, n, end, &out, buf]() {
      return Pump(fd, at + static_cast<uint64_t>(n), end, false, out, buf);
    });
  }

  std::string dir;
  ModelManifest manifest;
  std::string manifest_json;
  std::string token;
  kj::Maybe<ClusterSecret> cluster_secret;  // set: ModelTokens of it for this model are let in
  ClusterTls* tls = nullptr;                 // set: https, members only
  ServeFaults faults;
  std::string repo_id, commit, hub_listing, sha256sums;
  std::vector<HubFile> hub_files;
  kj::HttpHeaderId range_header = kj::HttpHeaderId::HOST, content_range = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId authorization = kj::HttpHeaderId::HOST;
  kj::Own<kj::HttpHeaderTable> table;
  kj::HttpServer server;
  uint64_t served = 0, ranges = 0;
  // Every connection through the gate (a cap in all and per address), and a
  // node that stops reading a shard is cut off after 60 s; destroyed first.
  ConnectionGate gate;
};

ModelServer::ModelServer(kj::Timer& timer, std::string dir, ModelManifest manifest, std::string token,
                         ServeFaults faults, std::string repo_id)
    : impl_(std::make_unique<Impl>(timer, std::move(dir), std::move(manifest), std::move(token), faults,
                                   std::move(repo_id))) {}
ModelServer::~ModelServer() = default;

kj::Promise<void> ModelServer::Listen(kj::ConnectionReceiver& receiver) { return impl_->gate.Run(receiver); }
void ModelServer::UseTls(ClusterTls* tls) { impl_->tls = tls; }
void ModelServer::AcceptClusterTokens(const ClusterSecret& secret) {
  if (!secret.empty()) impl_->cluster_secret = secret;
}
uint64_t ModelServer::bytes_served() const { return impl_->served; }
uint64_t ModelServer::range_requests() const { return impl_->ranges; }

}  // namespace strata
