#pragma once
// The `strata generate` and `strata plan` commands: plan a split, load the
// shards, run a prompt through the pipeline and stream the text.
#include "coordinator/resolve_model.h"
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/discovery_options.h"

namespace strata {

// Where the nodes come from (coordinator/membership): explicit addresses, a
// cluster file, N local processes started (and stopped) by the command
// itself, or discovery.
struct ClusterFlags {
  std::string nodes;          // "HOST:PORT,HOST:PORT"
  std::string cluster_file;   // JSON {"nodes": ["HOST:PORT", ...]}
  int64_t local = 0;
  int64_t threads = 0;        // per local node
  std::string node_binary;    // strata-node for --local
  uint64_t connect_timeout_ms = 10000;
  uint64_t step_timeout_ms = 120000;
  std::string secret_file;    // --cluster-secret-file (else $STRATA_CLUSTER_SECRET)
  bool tls = false;
  std::string tls_dir, tls_cert, tls_key, tls_ca;
  DiscoveryOptions discovery;       // group and cluster name (the port is discovery_port)
  std::string kv_dtype;       // --local nodes' --kv-dtype ("": theirs)
  int64_t discovery_port = 7788;
  uint64_t discovery_wait_ms = 2500;
};

struct GenerateFlags {
  ClusterFlags cluster;
  std::string model;           // a directory, an http(s) URL, or ORG/NAME[@REV] (coordinator/resolve_model)
  ModelSourceFlags model_source;
  std::string prompt;
  std::string prompt_tokens;  // "1,2,3": exact token ids instead of --prompt text
  bool keep_session = false;  // the conversation outlives this run; its id is printed
  bool distribute = false;    // serve the model; nodes fetch their shards into their caches
  std::string serve;          // HOST:PORT of that server ("": chosen)
  std::string model_server;   // or a running `strata serve-model` the nodes fetch from
  std::string session;        // continue the kept session with this id
  std::string coordinator;    // HOST:PORT of a running `strata serve`: generate through its API instead
  std::string api_key_file;   // its API key (else $STRATA_API_KEY)
  int64_t max_tokens = 64;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string dtype = "f32";
  bool json = false;
  std::string logits_out;
  int64_t prefill_chunk = 512;
  int64_t context = 0;        // plan, perplexity: tokens of KV per session (0: the model's context)
  int64_t concurrency = 1;    // plan: sessions at once
  // strata perplexity: score this text file instead of generating
  // (coordinator/perplexity), in chunks of `context` tokens.
  std::string perplexity_file;
  int64_t chunks = 0;         // most chunks (0: all)
};

// Each returns the process exit code; errors print one line to stderr.
// RunGenerate scores a text instead when flags.perplexity_file is set.
int RunGenerate(const GenerateFlags& flags);
int RunPlan(const GenerateFlags& flags);
int RunStatus(const ClusterFlags& flags);

}  // namespace strata
