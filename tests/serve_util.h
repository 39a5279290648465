#pragma once
// What the tests of `strata serve` share: one HTTP request through libcurl,
// and a `strata serve --local N` process on a free loopback port.
#include <gtest/gtest.h>

#include <curl/curl.h>

#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace strata::testing {

inline std::string Strata() { return BinDir() + "/strata"; }

struct Reply {
  long status = 0;
  std::string body, headers;
  CURLcode rc = CURLE_OK;
};

// One HTTP request. `abort_after` > 0: hang up once that many body bytes
// came; `hang_up_ms` > 0: hang up after that long, whatever came.
Reply Http(const std::string& url, const std::string& body = "", const std::string& method = "",
           const std::vector<std::string>& headers = {}, size_t abort_after = 0, long hang_up_ms = 0);

// A raw TCP connection to an HTTP server (http://HOST:PORT), for clients
// that misbehave: hang up mid-request, never read, stay silent. Closed when
// it goes.
class RawClient {
 public:
  // From `source` (another loopback address, "": any); `receive_buffer`
  // bytes of socket buffer (0: the system's).
  explicit RawClient(const std::string& url, int receive_buffer = 0, const std::string& source = "");
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool connected() const { return fd_ >= 0; }
  bool Send(const std::string& bytes);
  // What arrives within `timeout_ms`, up to `max` bytes ("" on EOF or silence).
  std::string Read(size_t max, int timeout_ms);
  // Whether the server has closed the connection within `timeout_ms`.
  bool ClosedByPeer(int timeout_ms);
  void Close();

 private:
  int fd_ = -1;
};

// An HTTP/1.1 POST of a JSON body, as bytes for RawClient::Send.
std::string JsonPost(const std::string& path, const std::string& json, const std::vector<std::string>& headers = {});

class Server {
 public:
  // `wrapper`: what runs it (e.g. prlimit with its flags), before the binary.
  explicit Server(std::vector<std::string> extra = {}, int nodes = 2, std::vector<std::string> wrapper = {}) {
    std::vector<std::string> argv = wrapper;
    for (const std::string& a : {Strata(), std::string("serve"), std::string("--local"), std::to_string(nodes),
                                 std::string("--http"), std::string("127.0.0.1:0")}) {
      argv.push_back(a);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    child_ = std::make_unique<Child>(argv);
    const std::regex serving("on (https?://127\\.0\\.0\\.1:[0-9]+)");
    WaitFor(
        [&]() {
          std::smatch m;
          const std::string out = child_->Stdout();
          if (std::regex_search(out, m, serving)) url_ = m[1].str();
          return !url_.empty();
        },
        30);
    if (url_.empty()) ADD_FAILURE() << "strata serve did not start: " << child_->Stderr();
  }
  const std::string& url() const { return url_; }
  std::string Stderr() const { return child_->Stderr(); }
  std::string Stdout() const { return child_->Stdout(); }
  pid_t pid() const { return child_->pid(); }
  // /metrics once `series` reads `value`, or after ten seconds.
  std::map<std::string, double> MetricsOnce(const std::string& series, double value) const {
    return MetricsWhen([&](std::map<std::string, double>& m) { return m[series] == value; });
  }
  // /metrics once `ready` holds of it (or after 10 s, for the test to report).
  std::map<std::string, double> MetricsWhen(const std::function<bool(std::map<std::string, double>&)>& ready) const {
    std::map<std::string, double> m;
    WaitFor(
        [&]() {
          m = Metrics();
          return ready(m);
        },
        10);
    return m;
  }
  // The node gauges and counters of /metrics, by full series name.
  std::map<std::string, double> Metrics(const std::vector<std::string>& headers = {}) const {
    std::map<std::string, double> out;
    const Reply r = Http(url_ + "/metrics", "", "", headers);
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line[0] == '#') continue;
      const size_t sp = line.rfind(' ');
      out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
    return out;
  }

 private:
  std::unique_ptr<Child> child_;
  std::string url_;
};


}  // namespace strata::testing
