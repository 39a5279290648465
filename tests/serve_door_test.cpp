// The doors of `strata serve` under abuse, against a real server on
// loopback: descriptor exhaustion survived, the per-address connection cap,
// a client that stops reading cut off (its slot freed for the next), and the
// request guard against DNS rebinding and cross-site requests (Host,
// Origin, Content-Type). The guard's rules are also checked one by one.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "coordinator/api/request_guard.h"
#include "tests/serve_util.h"

namespace strata {
namespace {

using testing::Http;
using testing::JsonPost;
using testing::RawClient;
using testing::Reply;
using testing::Server;

const char kShort[] = R"({"prompt":"And God said","max_tokens":4,"temperature":0})";

// Idle connections past the process's descriptors made kj's accept() throw
// and ended `strata serve`, every request in flight with it. Now accepting
// pauses, the server lives, and once the idle clients go it serves again.
TEST(ServeDoorTest, RunningOutOfDescriptorsIsSurvived) {
  Server server({}, 2, {"/usr/bin/prlimit", "--nofile=128", "--"});
  ASSERT_FALSE(server.url().empty());
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(std::make_unique<RawClient>(server.url()));
  ASSERT_TRUE(testing::WaitFor([&]() { return server.Stderr().find("accept failed") != std::string::npos; }, 10))
      << "the descriptors never ran out: " << server.Stderr();
  EXPECT_EQ(::kill(server.pid(), 0), 0) << "strata serve died: " << server.Stderr();
  idle.clear();
  Reply r;
  ASSERT_TRUE(testing::WaitFor(
      [&]() {
        r = Http(server.url() + "/v1/completions", kShort);
        return r.status == 200;
      },
      20))
      << r.status << " " << r.body << server.Stderr();
}

// One address may hold only so many connections; others still get in.
TEST(ServeDoorTest, OneAddressCannotTakeEveryConnection) {
  Server server({"--max-connections-per-peer", "4"});
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<RawClient>(server.url(), 0, "127.0.0.2"));
  for (auto& c : held) ASSERT_TRUE(c->connected());
  RawClient fifth(server.url(), 0, "127.0.0.2");
  EXPECT_TRUE(fifth.ClosedByPeer(5000)) << "the fifth connection from 127.0.0.2 is closed at once";
  for (auto& c : held) EXPECT_FALSE(c->ClosedByPeer(50));
  const Reply r = Http(server.url() + "/v1/completions", kShort);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(server.Stderr().find("refused a connection from 127.0.0.2"), std::string::npos) << server.Stderr();
}

// A streaming client that never reads held its connection and the answer
// queued for it for as long as it liked (a generation that outlasts the
// timeout is cancelled by the same failed write). The write timeout cuts it
// off; a server with no practical timeout shows what it held. The client
// never reads here: the server's count of open connections tells.
void SendSilentStream(RawClient& silent) {
  ASSERT_TRUE(silent.Send(JsonPost(
      "/v1/completions", R"({"prompt":"And God said","max_tokens":240,"temperature":0,"stream":true,"logprobs":5})")));
}

// Open connections besides the scrape's own, once the request has ended
// and `want` of them are open (or after 10 s).
double HeldConnections(const Server& server, double want) {
  auto m = server.MetricsWhen([want](std::map<std::string, double>& m) {
    return m["strata:request_success_total{finished_reason=\"ok\"}"] +
               m["strata:request_success_total{finished_reason=\"cancelled\"}"] >= 1 &&
           m["strata:http_connections_open"] == 1 + want;
  });
  return m["strata:http_connections_open"] - 1;
}

TEST(ServeDoorTest, AClientThatStopsReadingIsCutOff) {
  {
    Server patient({"--write-timeout-ms", "3600000"});
    RawClient silent(patient.url(), 1024);
    SendSilentStream(silent);
    EXPECT_EQ(HeldConnections(patient, 1), 1);
    EXPECT_FALSE(testing::WaitFor([&]() { return patient.Metrics()["strata:http_connections_open"] == 1; }, 3))
        << "without a timeout the server waits on the client";
  }
  Server server({"--max-running", "1", "--write-timeout-ms", "1000"});
  RawClient silent(server.url(), 1024);
  SendSilentStream(silent);
  EXPECT_EQ(HeldConnections(server, 0), 0) << "the silent client was cut off";
  const Reply next = Http(server.url() + "/v1/completions", kShort);
  EXPECT_EQ(next.status, 200) << next.body;
}

// DNS rebinding: a page whose name now points at 127.0.0.1 sends its own
// Host; a cross-site page sends its Origin, or a form's Content-Type.
TEST(ServeDoorTest, ForeignHostsOriginsAndNonJsonBodiesAreRefused) {
  Server server;
  Reply r = Http(server.url() + "/v1/strata/status", "", "", {"Host: evil.example"});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("Host 'evil.example' is not this server"), std::string::npos) << r.body;
  r = Http(server.url() + "/v1/completions", kShort, "", {"Origin: http://evil.example"});
  EXPECT_EQ(r.status, 403) << r.body;
  RawClient form(server.url());
  ASSERT_TRUE(form.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                        "Content-Length: " + std::to_string(sizeof kShort - 1) + "\r\n\r\n" + kShort));
  const std::string answer = form.Read(4096, 5000);
  EXPECT_EQ(answer.rfind("HTTP/1.1 415", 0), 0u) << answer;
  // This machine's own names and pages are served as before.
  r = Http(server.url() + "/v1/completions", kShort, "", {"Origin: " + server.url()});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Http(server.url() + "/health", "", "", {"Host: localhost"}).status, 200);
}

// --http-cert/--http-key: the API speaks https (here with the cluster CA's
// member certificate, which names strata-node), and a client that checks the
// certificate against that CA is served; plain http to the port is not.
TEST(ServeDoorTest, TheApiSpeaksHttpsWithItsCertificate) {
  testing::TempDir dir;
  auto made = testing::RunProcess({testing::Strata(), "make-secret", "--out", dir / "secret", "--tls", dir / "tls"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Server server({"--http-cert", dir / "tls/cert.pem", "--http-key", dir / "tls/key.pem"});
  ASSERT_EQ(server.url().rfind("https://127.0.0.1:", 0), 0u) << server.url();
  const std::string port = server.url().substr(server.url().rfind(':') + 1);
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  std::string body;
  const std::string url = "https://strata-node:" + port + "/v1/completions";
  curl_slist* resolve = curl_slist_append(nullptr, ("strata-node:" + port + ":127.0.0.1").c_str());
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_RESOLVE, resolve);
  curl_easy_setopt(curl.get(), CURLOPT_CAINFO, (dir / "tls/ca.pem").c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, kShort);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* out) -> size_t {
    static_cast<std::string*>(out)->append(d, s * n);
    return s * n;
  });
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(curl.get());
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(resolve);
  curl_slist_free_all(headers);
  EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc);
  EXPECT_EQ(status, 200) << body;
  EXPECT_NE(body.find("\"choices\""), std::string::npos) << body;
  const Reply plain = Http("http://127.0.0.1:" + port + "/v1/completions", kShort);
  EXPECT_NE(plain.status, 200) << "no plain http on an https port";
}

TEST(RequestGuardTest, EachRule) {
  RequestFacts get;
  get.host = "127.0.0.1:8000";
  EXPECT_FALSE(GuardRequest(true, get));
  for (const char* host : {"localhost", "localhost:80", "[::1]:8000", "127.1.2.3:9"}) {
    get.host = host;
    EXPECT_FALSE(GuardRequest(true, get)) << host;
  }
  for (const char* host : {"evil.example", "127.0.0.1.evil.example:80", "10.0.0.1:8000", ""}) {
    get.host = host;
    auto e = GuardRequest(true, get);
    ASSERT_TRUE(e) << host;
    EXPECT_EQ(e->status, 403);
    EXPECT_FALSE(GuardRequest(false, get)) << "behind an API key, any Host: " << host;
  }
  get.host = "127.0.0.1:8000";
  for (const char* origin : {"null", "http://evil.example", "http://127.0.0.1@evil.example", "file://"}) {
    get.origin = origin;
    ASSERT_TRUE(GuardRequest(true, get)) << origin;
  }
  get.origin = "http://localhost:8000";
  EXPECT_FALSE(GuardRequest(true, get));
  RequestFacts post = get;
  post.post = true;
  auto e = GuardRequest(true, post);
  ASSERT_TRUE(e) << "no Content-Type";
  EXPECT_EQ(e->status, 415);
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"}) {
    post.content_type = type;
    EXPECT_TRUE(GuardRequest(false, post)) << type;
  }
  for (const char* type : {"application/json", "Application/JSON; charset=utf-8"}) {
    post.content_type = type;
    EXPECT_FALSE(GuardRequest(false, post)) << type;
  }
}

}  // namespace
}  // namespace strata
