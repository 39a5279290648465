#include "tests/browser.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace strata::testing {
namespace {

using nlohmann::json;

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One WebDriver request: the reply's body ("" when unreachable).
std::string Request(const std::string& url, const std::string& method, const std::string& body) {
  std::string out;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 60L);
  curl_easy_perform(curl.get());
  curl_slist_free_all(headers);
  return out;
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

Browser::Browser() {
  const int port = FreePort();
  base_ = "http://127.0.0.1:" + std::to_string(port);
  driver_ = std::make_unique<Child>(std::vector<std::string>{"/usr/bin/chromedriver", "--port=" + std::to_string(port)});
  auto ready = [&] {
    const json r = json::parse(Request(base_ + "/status", "GET", ""), nullptr, false);
    return !r.is_discarded() && r.contains("value") && r["value"].value("ready", false);
  };
  for (int i = 0; i < 200 && !ready(); ++i) usleep(50000);
  profile_ = TempRoot() + "/strata-chromium-" + std::to_string(::getpid()) + "-" + std::to_string(port);
  const json caps = {{"capabilities", {{"alwaysMatch", {{"goog:chromeOptions", {{"binary", "/usr/bin/chromium"},
      {"args", {"--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,640", "--user-data-dir=" + profile_}}}}}}}}};
  const json r = json::parse(Request(base_ + "/session", "POST", caps.dump()), nullptr, false);
  if (!r.is_discarded() && r.contains("value") && r["value"].contains("sessionId")) session_ = r["value"]["sessionId"];
  if (session_.empty()) ADD_FAILURE() << "chromedriver gave no session: " << driver_->Stderr();
}

Browser::~Browser() {
  if (!session_.empty()) Request(base_ + "/session/" + session_, "DELETE", "");
  std::filesystem::remove_all(profile_);
}

void Browser::Open(const std::string& url) { Call("/url", {{"url", url}}); }

json Browser::Run(const std::string& script) { return Call("/execute/sync", {{"script", script}, {"args", json::array()}}); }

bool Browser::WaitFor(const std::string& script, double seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (Run(script) == true) return true;
    usleep(50000);
  }
  return false;
}

void Browser::Screenshot(const std::string& path) {
  const json v = Call("/screenshot", json(), "GET");
  const std::string b64 = v.is_string() ? v.get<std::string>() : "";
  std::string png(b64.size() * 3 / 4 + 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(png.data()), reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  png.resize(n > 0 ? static_cast<size_t>(n) : 0);
  std::ofstream(path, std::ios::binary) << png;
}

json Browser::Call(const std::string& path, const json& body, const char* method) {
  const std::string reply = Request(base_ + "/session/" + session_ + path, method, std::string(method) == "GET" ? "" : body.dump());
  const json j = json::parse(reply, nullptr, false);
  return j.is_discarded() || !j.contains("value") ? json() : j["value"];
}

}  // namespace strata::testing
