#pragma once
// `strata serve`: a long-lived coordinator with an OpenAI-compatible HTTP
// API (coordinator/api/api_server) over a pipeline of nodes.
#include <cstdint>
#include <string>

#include "coordinator/cli/generate_command.h"

namespace strata {

struct ServeFlags {
  GenerateFlags model;          // --model, --dtype, the cluster flags, --prefill-chunk
  std::string http = "127.0.0.1:8000";
  std::string api_key_file;     // the API key clients must send ("": none)
  std::string served_name;      // the model's name in the API ("": the directory's name)
  int64_t max_running = 8;
  int64_t max_queue = 64;
  int64_t context = 0;          // tokens per session (0: the model's)
  int64_t kv_tokens = 0;        // KV positions admission may reserve (0: what the nodes hold after loading)
  int64_t max_connections = 512;
  int64_t max_connections_per_peer = 256;
  int64_t write_timeout_ms = 10000;  // a client that reads nothing of its answer this long is cut off
  std::string http_cert, http_key;   // set: the API speaks https with this certificate and key
};

// The process exit code; errors print one line to stderr.
int RunServe(const ServeFlags& flags);

}  // namespace strata
