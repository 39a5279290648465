#pragma once
// ModelServer: the coordinator's HTTP server for a model directory it holds,
// so that nodes on other machines fetch their shards from it
// (storage/shard_fetch). kj-http on the coordinator's event loop:
//   GET /manifest       the ModelManifest (JSON)
//   GET /files/NAME     a weight file the manifest lists (safetensors or GGUF), with Range
// and nothing else: no other path of the directory, no directory listings.
// With a repo id (`strata serve-model --repo-id ORG/NAME`) it also answers as
// a Hugging Face-compatible endpoint for that one repo, so that other
// coordinators can take `--model ORG/NAME --hf-endpoint URL` or
// `--model URL/ORG/NAME/resolve/main` from it:
//   GET /api/models/ORG/NAME[/revision/REV]   the files, with their SHA-256
//                                             (safetensors) or git blob SHA-1
//   GET|HEAD /ORG/NAME/resolve/REV/FILE       config, tokenizer and weights, whole or
//                                             by Range, and SHA256SUMS
// With a token, every request must carry "Authorization: Bearer TOKEN"
// (the coordinator derives it from the cluster secret and hands it to its
// nodes over their authenticated RPC link); without, 401.
//
// Not thread-safe: the event loop's thread only.
#include <kj/async-io.h>
#include <kj/compat/http.h>

#include <cstdint>
#include <memory>
#include <string>

#include "storage/model_manifest.h"

namespace strata {

// A source that misbehaves, for tests of the fetcher's defences: the first
// `corrupt` range responses flip a byte, the first `fail` answer 500, the
// first `truncate` close the connection half-way.
struct ServeFaults {
  int corrupt = 0;
  int fail = 0;
  int truncate = 0;
};

class ModelServer {
 public:
  ModelServer(kj::Timer& timer, std::string dir, ModelManifest manifest, std::string token, ServeFaults faults = {},
              std::string repo_id = "");
  ~ModelServer();
  // Serves connections from `receiver` until the promise is dropped.
  kj::Promise<void> Listen(kj::ConnectionReceiver& receiver);
  // Also lets in a bearer ModelToken of `secret` for the served model
  // (with a secret, only those and the static token, if any, are let in).
  void AcceptClusterTokens(const class ClusterSecret& secret);
  // Speaks https with the cluster's TLS (members only: clients show a
  // certificate of the cluster CA). `tls` is borrowed; call before Listen.
  void UseTls(class ClusterTls* tls);
  uint64_t bytes_served() const;     // file bytes sent
  uint64_t range_requests() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The bearer token for one model until a time: the expiry (unix seconds, 16
// hex digits) then HMAC-SHA256(secret, "strata-model-v2" | model id |
// expiry), hex ("" without a secret). A member can make one; nobody without
// the secret can, and one seen on the wire opens no other model and lapses.
std::string ModelToken(const class ClusterSecret& secret, const std::string& model_id, int64_t expires_unix);
// A token made that way for `model_id`, not expired at `now_unix`.
bool ModelTokenValid(const class ClusterSecret& secret, const std::string& model_id, const std::string& token,
                     int64_t now_unix);
// How long the tokens a coordinator hands its nodes last.
inline constexpr int64_t kModelTokenSeconds = 6 * 3600;

}  // namespace strata
