#pragma once
// The flags of `strata generate`, `strata plan`, `strata perplexity` and
// `strata status`, and the commands themselves: plan a split, load the
// shards, run a prompt through the pipeline and stream the text
// (generate_command.cc), print the plan (plan_command.cc), or each node's
// state (status_command.cc).
#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/cluster/cluster_flags.h"
#include "coordinator/cluster/resolve_model.h"

namespace strata {

struct GenerateFlags {
  ClusterFlags cluster;
  std::string model;           // a directory, an http(s) URL, or ORG/NAME[@REV] (coordinator/cluster/resolve_model)
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
  // (coordinator/pipeline/perplexity), in chunks of `context` tokens.
  std::string perplexity_file;
  int64_t chunks = 0;         // most chunks (0: all)
};

// Each returns the process exit code; errors print one line to stderr.
// RunGenerate scores a text instead when flags.perplexity_file is set.
int RunGenerate(const GenerateFlags& flags);
int RunPlan(const GenerateFlags& flags);
int RunStatus(const ClusterFlags& flags);

}  // namespace strata
