#pragma once
// FetchShard: a node's copy of the tensors one stage needs, from the model
// server of its coordinator (coordinator/cluster/model_server) into its cache:
//   CACHE/MODEL_ID/FIRST-END/{config.json, model.safetensors, complete}
// (model.gguf instead of model.safetensors for a GGUF model: the tensors as
// the GGUF file holds them).
// Only the byte ranges of the stage's own tensors cross the network, over
// several connections at once (libcurl multi, HTTP Range requests). Every
// tensor is checked against the manifest's SHA-256 before it counts: bytes
// corrupted in transit are fetched again, and a tensor that never matches
// fails the fetch. Transfers that fail (4xx, 5xx, a connection closed early)
// are retried with exponential backoff, then fail with the cause. A fetch
// that stops half-way resumes: verified tensors are kept. Writes go through
// an Env (a full disk fails with its cause; the half-written file is never
// used: only a complete, verified shard gets its `complete` marker). A warm
// cache transfers nothing. The cache holds at most `cache_limit` bytes;
// least recently used models go first, whole.
//
// Thread-compatible: call it on a thread of its own (it blocks); progress
// counters are atomics any thread may read.
#include <atomic>
#include <cstdint>
#include <string>

#include "base/status.h"
#include "storage/env.h"
#include "storage/http_get.h"
#include "storage/model_manifest.h"

namespace strata {

struct FetchProgress {
  std::atomic<uint64_t> done{0};    // bytes written and kept
  std::atomic<uint64_t> total{0};   // bytes this fetch needs
};

struct FetchOptions {
  std::string base_url;             // http://HOST:PORT: serves /manifest and /files/NAME
  std::string token;                // sent as "Authorization: Bearer TOKEN" ("" : none)
  std::string cache_dir;
  uint64_t cache_limit = 0;         // bytes; 0: no limit
  int connections = 4;
  int attempts = 4;                 // per byte range, and per tensor whose hash fails
  // The largest range one request asks for. A tensor up to this size comes
  // in one request and is hashed as its bytes arrive; a larger one comes in
  // ranges over several connections and is hashed once all are in.
  uint64_t chunk_bytes = 256u << 20;
  uint32_t backoff_ms = 200;        // doubles with every attempt
  FetchProgress* progress = nullptr;
  // Set (from any thread): the fetch stops at once, failing "cancelled"; what
  // it verified stays in the partial file for a later resume.
  const std::atomic<bool>* cancel = nullptr;
  ClusterCurlTls tls;  // an https source of a --tls cluster (storage/http_get)
};

struct FetchResult {
  std::string dir;                  // the shard, ready for Checkpoint::Open
  uint64_t fetched_bytes = 0;       // over the network (0: the cache was warm)
  uint64_t refetched_tensors = 0;   // that failed their hash and came again
};

Result<FetchResult> FetchShard(Env& env, const FetchOptions& options, const std::string& model_id, int64_t first,
                               int64_t end);

// The manifest a model server serves, validated (with retries).
Result<ModelManifest> GetRemoteManifest(const FetchOptions& options);

// The cache's shard directory for a stage, if it is complete (else empty).
std::string CachedShard(const std::string& cache_dir, const std::string& model_id, int64_t first, int64_t end);

}  // namespace strata
