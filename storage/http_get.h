#pragma once
// HTTP(S) GETs through libcurl, set up one way for every fetcher (a
// coordinator's model mirror, a node's shard fetch): http and https only,
// 10 s to connect, a transfer slower than 1 KiB/s for 30 s ends, the token
// (if any) as "Authorization: Bearer", redirects only when asked for.
//
// Thread-safe: each call uses its own handle.
#include <curl/curl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "base/status.h"

namespace strata {

// The request's header list, freed with it.
struct CurlHeaders {
  curl_slist* list = nullptr;
  CurlHeaders() = default;
  CurlHeaders(const CurlHeaders&) = delete;
  CurlHeaders& operator=(const CurlHeaders&) = delete;
  CurlHeaders(CurlHeaders&& other) noexcept : list(other.list) { other.list = nullptr; }
  CurlHeaders& operator=(CurlHeaders&& other) noexcept {
    std::swap(list, other.list);
    return *this;
  }
  ~CurlHeaders() { curl_slist_free_all(list); }
};

// A cluster's https (a node fetching its shard from a coordinator on a
// --tls cluster): the peer must show a certificate of the cluster CA (which
// signs only members, so the chain is the proof; names are not checked), and
// this member shows its own. Empty: the system's trust store, as for the hub.
struct ClusterCurlTls {
  std::string ca, cert, key;
};

// The options every GET shares, on `curl`; `headers` must outlive the transfer.
void SetGetOptions(CURL* curl, const std::string& url, const std::string& token, bool follow_redirects,
                   CurlHeaders* headers, const ClusterCurlTls& tls = {});

// A small document into memory, retried with a doubling backoff on errors
// that may pass (not on 401, 403 or 404).
struct SmallGet {
  std::string token;
  int attempts = 4;
  uint32_t backoff_ms = 200;
  size_t max_bytes = 16u << 20;
  std::string what = "the answer";  // for the error: "<what> is over N MiB"
  bool follow_redirects = false;
  const std::atomic<bool>* cancel = nullptr;  // set: the GET ends at once, "cancelled"
  ClusterCurlTls tls;
};
// `*missing` (may be null) is set on 404, which is then not an error:
// optional files are asked for this way.
Result<std::string> GetSmall(const std::string& url, const SmallGet& o, bool* missing = nullptr);

// The transfers of one fetch, as RunTransfers runs them. Implementations
// find their own state from a handle (CURLOPT_PRIVATE).
class TransferSource {
 public:
  virtual ~TransferSource() = default;
  // A transfer to start now, its options set; null when none may start yet
  // (those left wait for their backoff); an error ends the run.
  virtual Result<CURL*> Next() = 0;
  // Whether transfers remain to start, now or after a backoff.
  virtual bool Waiting() const = 0;
  // `easy` ended with `rc` (its response code still readable); an error ends
  // the run. RunTransfers frees the handle afterwards.
  virtual Status Done(CURL* easy, CURLcode rc) = 0;
};

// Keeps up to `connections` transfers of `source` running at once (one
// curl-multi loop, on this thread) until none is left, one fails, or
// `*cancel` (may be null) is set; every handle it started is freed when it
// returns.
Status RunTransfers(int connections, TransferSource& source, const std::atomic<bool>* cancel = nullptr);

}  // namespace strata
