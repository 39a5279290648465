#include "storage/http_get.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace strata {

void SetGetOptions(CURL* curl, const std::string& url, const std::string& token, bool follow_redirects,
                   CurlHeaders* headers, const ClusterCurlTls& tls) {
  if (!tls.ca.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, tls.ca.c_str());
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);  // every member's certificate names the cluster, not a host
    curl_easy_setopt(curl, CURLOPT_SSLCERT, tls.cert.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLKEY, tls.key.c_str());
  }
  if (!token.empty()) headers->list = curl_slist_append(nullptr, ("Authorization: Bearer " + token).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers->list);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (follow_redirects) {
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  }
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);
}

namespace {

struct Small {
  std::string bytes;
  size_t max_bytes = 0;
  bool too_big = false;
};

size_t AppendSmall(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Small*>(user);
  if (s->bytes.size() + size * n > s->max_bytes) return s->too_big = true, 0;
  s->bytes.append(data, size * n);
  return size * n;
}

}  // namespace

Result<std::string> GetSmall(const std::string& url, const SmallGet& o, bool* missing) {
  std::string error = "no attempt made";
  for (int attempt = 0; attempt < o.attempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(uint64_t{o.backoff_ms} << (attempt - 1)));
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    CurlHeaders headers;
    Small body;
    body.max_bytes = o.max_bytes;
    SetGetOptions(curl.get(), url, o.token, o.follow_redirects, &headers, o.tls);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, AppendSmall);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 60000L);
    if (o.cancel != nullptr) {
      if (o.cancel->load()) return Status::Error("cancelled");
      curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, o.cancel);
      curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION,
                       +[](void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
                         return static_cast<const std::atomic<bool>*>(flag)->load() ? 1 : 0;
                       });
    }
    const CURLcode rc = curl_easy_perform(curl.get());
    if (o.cancel != nullptr && o.cancel->load()) return Status::Error("cancelled");
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status == 200) return body.bytes;
    if (rc == CURLE_OK && status == 404 && missing != nullptr) {
      *missing = true;
      return std::string();
    }
    error = body.too_big ? o.what + " is over " + std::to_string(o.max_bytes >> 20) + " MiB"
                         : rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status);
    if (status == 401 || status == 403 || status == 404) break;  // these do not get better
  }
  return Status::Error(error);
}

Status RunTransfers(int connections, TransferSource& source, const std::atomic<bool>* cancel) {
  std::unique_ptr<CURLM, CURLMcode (*)(CURLM*)> multi(curl_multi_init(), curl_multi_cleanup);
  std::vector<CURL*> running;
  Status failed = Status::Ok();
  while (failed.ok()) {
    if (cancel != nullptr && cancel->load()) {
      failed = Status::Error("cancelled");
      break;
    }
    while (static_cast<int>(running.size()) < connections) {
      Result<CURL*> next = source.Next();
      if (!next.ok()) failed = next.status();
      if (!next.ok() || next.value() == nullptr) break;
      curl_multi_add_handle(multi.get(), next.value());
      running.push_back(next.value());
    }
    if (!failed.ok() || (running.empty() && !source.Waiting())) break;
    int still = 0;
    curl_multi_perform(multi.get(), &still);
    int messages = 0;
    bool freed = false;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &messages)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode rc = msg->data.result;
      curl_multi_remove_handle(multi.get(), easy);
      running.erase(std::find(running.begin(), running.end(), easy));
      Status st = source.Done(easy, rc);
      curl_easy_cleanup(easy);
      if (!st.ok() && failed.ok()) failed = st;
      freed = true;
    }
    // A connection just came free: start the next transfer at once, not after a poll.
    if (!freed || !source.Waiting()) curl_multi_poll(multi.get(), nullptr, 0, 20, nullptr);
  }
  for (CURL* easy : running) {
    curl_multi_remove_handle(multi.get(), easy);
    curl_easy_cleanup(easy);
  }
  return failed;
}

}  // namespace strata
