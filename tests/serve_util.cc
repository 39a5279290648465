#include "tests/serve_util.h"

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
}  // namespace strata::testing
