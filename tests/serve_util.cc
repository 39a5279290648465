#include "tests/serve_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "base/net_address.h"

namespace strata::testing {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

Reply Http(const std::string& url, const std::string& body, const std::string& method,
           const std::vector<std::string>& headers, size_t abort_after, long hang_up_ms) {
  Reply r;
  struct Ctx {
    std::string* out;
    size_t abort_after;
  } ctx{&r.body, abort_after};
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  if (!body.empty()) list = curl_slist_append(list, "Content-Type: application/json");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, list);
  if (!body.empty()) curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
  if (!method.empty()) curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) -> size_t {
    auto* c = static_cast<Ctx*>(u);
    c->out->append(d, s * n);
    return c->abort_after > 0 && c->out->size() >= c->abort_after ? 0 : s * n;
  });
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, Append);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 120L);
  if (hang_up_ms > 0) curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, hang_up_ms);
  r.rc = curl_easy_perform(curl.get());
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  return r;
}

// A `strata serve --local N` process (2 nodes unless said) on a free loopback port.
RawClient::RawClient(const std::string& url, int receive_buffer, const std::string& source) {
  const std::string prefix = "http://";
  auto address = ParseHostPort(url.rfind(prefix, 0) == 0 ? url.substr(prefix.size()) : url);
  if (!address.ok()) return;
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(address->port));
  if (::inet_pton(AF_INET, address->host.c_str(), &to.sin_addr) != 1) return;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  if (!source.empty()) {
    sockaddr_in from = {};
    from.sin_family = AF_INET;
    if (::inet_pton(AF_INET, source.c_str(), &from.sin_addr) != 1 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      Close();
      return;
    }
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) Close();
}

RawClient::~RawClient() { Close(); }

void RawClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::Send(const std::string& bytes) {
  size_t sent = 0;
  while (fd_ >= 0 && sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return fd_ >= 0;
}

std::string RawClient::Read(size_t max, int timeout_ms) {
  std::string out;
  pollfd p{fd_, POLLIN, 0};
  while (fd_ >= 0 && out.size() < max && ::poll(&p, 1, timeout_ms) == 1) {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, max - out.size()), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    timeout_ms = 0;  // then only what is there already
  }
  return out;
}

bool RawClient::ClosedByPeer(int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  pollfd p{fd_, POLLIN, 0};
  while (fd_ >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);  // drains what came before the close
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0) return false;
  }
  return false;
}

std::string JsonPost(const std::string& path, const std::string& json, const std::vector<std::string>& headers) {
  std::string r = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  return r + "Content-Length: " + std::to_string(json.size()) + "\r\n\r\n" + json;
}

}  // namespace strata::testing
