#pragma once
// ApiServer: `strata serve`'s HTTP API, compatible with OpenAI's, on the
// coordinator's event loop (kj-http):
//   POST /v1/completions, /v1/chat/completions   streamed (SSE) or not
//   GET  /v1/models, /health, /metrics (Prometheus text),
//        / (the dashboard: coordinator/api/dashboard), /v1/strata/status (its data)
// Each request is a GenerationDriver on a pipeline session of its own; the
// event loop interleaves their steps. Admission is bounded by slots and by
// KV capacity: at most `max_running` generate at once, and together they
// reserve at most `kv_tokens` positions of KV cache (prompt + max_tokens
// each: what the cluster's paged KV, RAM and NVMe tiers, holds). Others wait
// in FIFO order, at most `max_queue`; the rest get 429 with Retry-After. A streaming client that goes away cancels its request between
// steps, and its session is closed on every stage, freeing its KV. Bodies are
// validated before anything is allocated (coordinator/api/openai_api).
//
// Not thread-safe: the event loop's thread only.
#include <kj/async-io.h>

#include <cstdint>
#include <memory>
#include <string>

#include "coordinator/api/chat_format.h"
#include "coordinator/api/openai_api.h"
#include "coordinator/api/serve_metrics.h"
#include "coordinator/pipeline/pipeline.h"
#include "coordinator/pipeline/tokenizer.h"

namespace strata {

class ClusterTls;

struct ApiServerOptions {
  std::string model_name;        // what /v1/models lists and responses name
  std::string api_key;           // "": none wanted; else "Authorization: Bearer KEY"
  int max_running = 8;
  int max_queue = 64;
  int64_t context = 0;           // tokens a session may hold (the model's context)
  int64_t prefill_chunk = 512;
  int64_t kv_tokens = 0;         // KV positions the cluster holds (the least of its stages); 0: unbounded
  const ChatFormat* chat = nullptr;  // the model's chat template (outlives the server)
  // The door, against clients that hold what is not theirs: connections at
  // once and from one address (protocol/connection_gate), how long a client
  // may read nothing of its answer before it is cut off (its request
  // cancelled, its slot and KV freed) and how long a request body may take.
  uint32_t max_connections = 512;
  uint32_t max_connections_per_peer = 256;
  uint32_t write_timeout_ms = 10000;
  uint32_t body_timeout_ms = 30000;
  // The kernel's send buffer per client (the kernel doubles it): what a
  // client that stops reading can pin, and how soon the write timeout sees
  // it stop. An answer is at most a few hundred KiB; loopback would give MiBs.
  int send_buffer_bytes = 32 << 10;
  // Bound to a loopback address: Host and Origin must name this machine
  // (coordinator/api/request_guard).
  bool loopback_bind = false;
  ClusterTls* tls = nullptr;  // set (borrowed): the API speaks https with this certificate
};

class ApiServer {
 public:
  ApiServer(kj::Timer& timer, Pipeline& pipeline, const Tokenizer& tokenizer, ApiServerOptions options);
  ~ApiServer();
  // Serves connections from `receiver` until the promise is dropped.
  kj::Promise<void> Listen(kj::ConnectionReceiver& receiver);
  const ServeMetrics& metrics() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
