#include "coordinator/model_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <kj/debug.h>

#include <map>

#include "protocol/peer_auth.h"
#include "storage/escape.h"

namespace strata {
namespace {

constexpr size_t kChunk = 1u << 20;

// "bytes=A-B" within a file of `size`; false for anything else.
bool ParseRange(kj::StringPtr text, uint64_t size, uint64_t* begin, uint64_t* end) {
  std::string s = text.cStr();
  if (s.rfind("bytes=", 0) != 0) return false;
  s = s.substr(6);
  const size_t dash = s.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == s.size() ||
      s.find_first_not_of("0123456789-") != std::string::npos || s.find('-', dash + 1) != std::string::npos ||
      dash > 19 || s.size() - dash - 1 > 19) {
    return false;
  }
  *begin = std::stoull(s.substr(0, dash));
  const uint64_t last = std::stoull(s.substr(dash + 1));
  if (*begin > last || last >= size) return false;
  *end = last + 1;
  return true;
}

}  // namespace

std::string ModelToken(const ClusterSecret& secret) {
  if (secret.empty()) return "";
  const std::string label = "strata-model-v1";
  const Bytes mac = Hmac(secret, Bytes(label.begin(), label.end()));
  static const char* d = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : mac) {
    hex += d[b >> 4];
    hex += d[b & 15];
  }
  return hex;
}

struct ModelServer::Impl final : public kj::HttpService {
  Impl(kj::Timer& timer, std::string dir, ModelManifest manifest, std::string token, ServeFaults faults)
      : dir(std::move(dir)), manifest(std::move(manifest)), manifest_json(this->manifest.ToJson()),
        token(std::move(token)), faults(faults), table(MakeTable()), server(timer, *table, *this) {}

  kj::Own<kj::HttpHeaderTable> MakeTable() {
    kj::HttpHeaderTable::Builder builder;
    range_header = builder.add("Range");
    authorization = builder.add("Authorization");
    content_range = builder.add("Content-Range");
    return builder.build();
  }

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                            kj::AsyncInputStream&, Response& response) override {
    if (method != kj::HttpMethod::GET) return response.sendError(405, "Method Not Allowed", *table);
    if (!token.empty()) {
      KJ_IF_MAYBE(auth, headers.get(authorization)) {
        const std::string expected = "Bearer " + token;
        if (!ProofsEqual(Bytes(auth->begin(), auth->end()), Bytes(expected.begin(), expected.end()))) {
          return response.sendError(401, "Unauthorized", *table);
        }
      } else {
        return response.sendError(401, "Unauthorized", *table);
      }
    }
    const std::string path = url.cStr();
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
    return SendRange(name, headers, response);
  }

  kj::Promise<void> SendRange(const std::string& name, const kj::HttpHeaders& headers, Response& response) {
    const int fd = ::open((dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return response.sendError(404, "Not Found", *table);
    const off_t size = ::lseek(fd, 0, SEEK_END);
    uint64_t begin = 0, end = static_cast<uint64_t>(size);
    KJ_IF_MAYBE(range, headers.get(range_header)) {
      if (!ParseRange(*range, static_cast<uint64_t>(size), &begin, &end)) {
        ::close(fd);
        return response.sendError(416, "Range Not Satisfiable", *table);
      }
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
    out.set(content_range, kj::str("bytes ", begin, "-", end - 1, "/", static_cast<uint64_t>(size)));
    auto body = response.send(206, "Partial Content", out, end - begin);
    const uint64_t stop = truncate ? begin + (end - begin) / 2 : end;
    // One buffer per response, reused for every chunk: a fresh megabyte per
    // chunk costs a page fault per 4 KiB.
    auto buf = kj::heapArray<kj::byte>(std::min<uint64_t>(kChunk, end - begin));
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
  ServeFaults faults;
  kj::HttpHeaderId range_header = kj::HttpHeaderId::HOST, content_range = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId authorization = kj::HttpHeaderId::HOST;
  kj::Own<kj::HttpHeaderTable> table;
  kj::HttpServer server;
  uint64_t served = 0, ranges = 0;
};

ModelServer::ModelServer(kj::Timer& timer, std::string dir, ModelManifest manifest, std::string token,
                         ServeFaults faults)
    : impl_(std::make_unique<Impl>(timer, std::move(dir), std::move(manifest), std::move(token), faults)) {}
ModelServer::~ModelServer() = default;

kj::Promise<void> ModelServer::Listen(kj::ConnectionReceiver& receiver) { return impl_->server.listenHttp(receiver); }
uint64_t ModelServer::bytes_served() const { return impl_->served; }
uint64_t ModelServer::range_requests() const { return impl_->ranges; }

}  // namespace strata
