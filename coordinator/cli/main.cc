// strata: the coordinator's CLI.
#include <kj/async-unix.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "base/progress_line.h"
#include "coordinator/cli/flags.h"
#include "coordinator/cli/generate_command.h"
#include "coordinator/cli/quantize_command.h"
#include "coordinator/cli/remote_generate.h"
#include "coordinator/cli/serve_command.h"
#include "coordinator/cli/serve_model_command.h"
#include "coordinator/cli/test_model.h"
#include "coordinator/cli/tokenize_command.h"
#include "coordinator/cluster/local_cluster.h"
#include "coordinator/cluster/make_secret.h"
#include "protocol/coordinator_key.h"

namespace strata {
namespace {

constexpr const char* kUsage = R"(usage: strata COMMAND [options]

Runs one Llama-family model as a pipeline across several strata-node processes.

commands:
  generate     run a prompt through the pipeline and stream the text
  plan         print the layer split `generate` would use
  perplexity   score a text file: the model's perplexity on it, as llama-perplexity measures it
  status       show every node of a cluster: layers, sessions, memory
  make-model   write a deterministic random-weight test model
  quantize     write a checkpoint as a GGUF file in a quantized format (llama.cpp reads it too)
  tokenize     the model's token ids for a text, a file or a chat (as llama-tokenize)
  make-secret  write a new cluster secret (and with --tls, a cluster CA and certificate)
  serve        a long-lived coordinator with an OpenAI-compatible HTTP API
  serve-model  serve a model directory to the cluster's nodes (for generate --distribute --model-server)

`strata COMMAND --help` describes a command's options.
)";

void AddSecurityFlags(FlagSet& f, ClusterFlags* c) {
  f.String("cluster-secret-file", &c->secret_file,
           "the cluster secret (`strata make-secret`; else $STRATA_CLUSTER_SECRET; --local makes its own)");
  f.Bool("tls", &c->tls, "speak TLS to the nodes (with --tls-dir, or --tls-cert/--tls-key/--tls-ca; --local without them: a CA made for the run)");
  f.String("tls-dir", &c->tls_dir, "cert.pem, key.pem and ca.pem from `strata make-secret --tls`");
  f.String("tls-cert", &c->tls_cert, "this member's certificate (PEM)");
  f.String("tls-key", &c->tls_key, "its private key (PEM)");
  f.String("tls-ca", &c->tls_ca, "the cluster CA certificate (PEM)");
  f.String("coordinator-key", &c->coordinator_key,
           "sign hellos with this coordinator key (`strata make-secret --coordinator-key`), for nodes that "
           "grant coordinator rights only to it (--coordinator-pub); --local makes one for the run");
}

// Without --nodes, --cluster or --local, the nodes are those that beacon.
void AddDiscoveryFlags(FlagSet& f, ClusterFlags* c) {
  f.String("cluster-name", &c->discovery.cluster, "discovery: the cluster whose nodes to use");
  f.String("discovery-group", &c->discovery.group, "discovery: the IPv4 multicast group nodes beacon to");
  f.Int("discovery-port", &c->discovery_port, 1, 65535, "discovery: the UDP port of the group");
  f.UInt64("discovery-wait-ms", &c->discovery_wait_ms, "discovery: how long to listen for beacons");
  f.Bool("insecure-discovery", &c->discovery.insecure,
         "discovery without a cluster secret: take unsigned beacons from other machines too (anyone on the LAN "
         "could then add a stage)");
}

void AddClusterFlags(FlagSet& f, ClusterFlags* c) {
  f.String("nodes", &c->nodes, "comma-separated node addresses HOST:PORT, in pipeline order");
  f.String("cluster", &c->cluster_file, "a cluster file: {\"nodes\": [\"HOST:PORT\", ...]}");
  f.Int("local", &c->local, 0, 64, "start N strata-node processes on this machine, use them, stop them");
  f.Int("threads", &c->threads, 0, 1024, "compute threads of each --local node (0: all cores)");
  f.String("node-binary", &c->node_binary, "strata-node binary for --local (default: next to strata)");
  f.UInt64("connect-timeout-ms", &c->connect_timeout_ms, "how long to wait for a node to answer hello");
  f.UInt64("step-timeout-ms", &c->step_timeout_ms, "how long to wait for one pipeline step");
  f.String("kv-dtype", &c->kv_dtype, "--local nodes' KV cache values: compute | int8 (default: the node's, compute)");
  f.Exclusive({"nodes", "cluster", "local"});  // none of them: discovery
  AddDiscoveryFlags(f, c);
  AddSecurityFlags(f, c);
}

// The default model ships in the source tree (models/kjv-5m): found next to
// the build (build/bin/../../models) or under the working directory.
std::string DefaultModel() {
  const std::string bin = SiblingBinary("");
  for (const std::string& dir : {bin + "../../models/kjv-5m", std::string("models/kjv-5m")}) {
    if (::access((dir + "/config.json").c_str(), R_OK) == 0) return dir;
  }
  return "models/kjv-5m";
}

void AddModelFlags(FlagSet& f, GenerateFlags* g) {
  g->model = DefaultModel();
  f.String("model", &g->model,
           "checkpoint directory (config.json, *.safetensors, tokenizer.model), an http(s) URL of one, or a\n"
           "Hugging Face repo id ORG/NAME[@REVISION] (mirrored into --model-cache, checked against the source's hashes)");
  f.String("hf-endpoint", &g->model_source.hf_endpoint,
           "HF-compatible endpoint for repo ids (default: $HF_ENDPOINT, else https://huggingface.co; token: $HF_TOKEN)");
  f.String("model-cache", &g->model_source.model_cache,
           "where remote models are mirrored (default: $XDG_CACHE_HOME/strata, else ~/.cache/strata)");
  f.String("dtype", &g->dtype, "compute dtype: f32 | bf16");
  f.Bool("json", &g->json, "print one JSON object on stdout instead of streaming text");
}

enum class GenerateMode { kGenerate, kPlan, kPerplexity };

int Generate(int argc, char** argv, GenerateMode mode) {
  GenerateFlags g;
  const bool plan_only = mode == GenerateMode::kPlan;
  const bool perplexity = mode == GenerateMode::kPerplexity;
  FlagSet f(plan_only    ? "strata plan [--model DIR] (--nodes HOST:PORT,... | --local N) [options]"
            : perplexity ? "strata perplexity [--model DIR] (--nodes HOST:PORT,... | --local N) --file TEXT [options]"
                         : "strata generate [--model DIR] (--nodes HOST:PORT,... | --local N) --prompt TEXT [options]",
            plan_only ? "Prints the layer split: contiguous ranges, in proportion to each node's free memory, each\nholding its weights and the KV cache of --context tokens for --concurrency sessions."
            : perplexity
                ? "Scores a text file as llama.cpp's llama-perplexity does: chunks of --ctx tokens, each\n"
                  "starting with BOS, the second half of each scored by the pipeline's logits; prints the\n"
                  "perplexity (exp of the mean negative log-likelihood), a line per chunk on stderr."
                : "Plans a layer split, loads the shards, and streams the generated text to stdout;\n"
                  "a timing summary goes to stderr.");
  AddModelFlags(f, &g);
  AddClusterFlags(f, &g.cluster);
  if (perplexity) {
    f.String("file", &g.perplexity_file, "the text to score");
    f.Int("ctx", &g.context, 0, 1 << 24, "tokens per chunk (0: the model's context)");
    f.Int("chunks", &g.chunks, 0, 1 << 30, "score at most this many chunks (0: all)");
    f.Int("prefill-chunk", &g.prefill_chunk, 1, 1 << 20, "most context tokens per pipeline step");
    f.Bool("distribute", &g.distribute,
           "serve --model over HTTP; each node fetches only its shard's tensors, verified, into its --cache-dir");
  }
  if (plan_only) {
    f.Int("context", &g.context, 0, 1 << 24, "tokens of KV cache to hold per session (0: the model's context)");
    f.Int("concurrency", &g.concurrency, 1, 1 << 20, "sessions the plan must hold KV for at once");
  }
  if (mode == GenerateMode::kGenerate) {
    f.String("prompt", &g.prompt, "the prompt text");
    f.String("prompt-tokens", &g.prompt_tokens, "the prompt as token ids, \"1,2,3\" (instead of --prompt)");
    f.Bool("keep-session", &g.keep_session,
           "keep the conversation on the nodes after this run (its KV parked on NVMe) and print its id");
    f.String("session", &g.session, "continue the kept conversation with this id (from --keep-session)");
    f.Bool("distribute", &g.distribute,
           "serve --model over HTTP; each node fetches only its shard's tensors, verified, into its --cache-dir");
    f.String("serve", &g.serve, "HOST:PORT for --distribute's model server (default: one the nodes can reach)");
    f.String("model-server", &g.model_server,
             "with --distribute: nodes fetch from this running `strata serve-model` (http://HOST:PORT) instead");
    f.Int("max-tokens", &g.max_tokens, 1, 1 << 20, "most tokens to generate");
    f.Float("temperature", &g.temperature, 0.0, 100.0, "sampling temperature; 0 = greedy");
    f.Int("top-k", &g.top_k, 0, 1 << 30, "sample among the k most likely tokens; 0 = off");
    f.Float("top-p", &g.top_p, 1e-6, 1.0, "nucleus sampling mass; 1 = off");
    f.UInt64("seed", &g.seed, "sampling seed: the same seed gives the same text");
    f.String("logits-out", &g.logits_out, "write the logits of every generated position here (rows of vocab f32 LE)");
    f.Int("prefill-chunk", &g.prefill_chunk, 1, 1 << 20, "most prompt tokens per pipeline step");
    f.String("coordinator", &g.coordinator, "generate through a running `strata serve` at HOST:PORT (its API)");
    f.String("api-key-file", &g.api_key_file, "with --coordinator: its API key (else $STRATA_API_KEY)");
  }
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) { std::cerr << "strata: " << error << "\n"; return 2; }
  if (help) { std::cout << f.Help(); return 0; }
  const bool sources = !g.cluster.nodes.empty() || !g.cluster.cluster_file.empty() || g.cluster.local > 0;
  if (perplexity) {
    if (g.perplexity_file.empty()) { std::cerr << "strata: perplexity needs --file TEXT\n"; return 2; }
    return RunGenerate(g);
  }
  if (!plan_only && f.WasSet("prompt") == f.WasSet("prompt-tokens")) {
    std::cerr << "strata: give one of --prompt TEXT and --prompt-tokens IDS\n";
    return 2;
  }
  if (!g.coordinator.empty()) {
    if (sources || !g.session.empty() || g.keep_session || g.distribute || !g.prompt_tokens.empty()) {
      std::cerr << "strata: --coordinator uses the server's nodes and model: give only --prompt and sampling options\n";
      return 2;
    }
    return RunRemoteGenerate(g);
  }
  if (!g.session.empty() && g.cluster.local > 0) {
    std::cerr << "strata: --session continues a conversation kept on running nodes; --local nodes end with the run\n";
    return 2;
  }
  return plan_only ? RunPlan(g) : RunGenerate(g);
}

int Serve(int argc, char** argv) {
  ServeFlags s;
  FlagSet f("strata serve [--model M] (--nodes HOST:PORT,... | --cluster FILE | --local N | discovery) --http HOST:PORT",
            "Loads the model on the nodes once and serves an OpenAI-compatible API: POST /v1/completions and\n"
            "/v1/chat/completions (streamed or not), GET /v1/models, /health and /metrics (Prometheus).");
  AddModelFlags(f, &s.model);
  AddClusterFlags(f, &s.model.cluster);
  f.String("http", &s.http, "HOST:PORT of the HTTP API");
  f.String("api-key-file", &s.api_key_file, "clients must send this key (Authorization: Bearer KEY)");
  f.String("served-model-name", &s.served_name, "the model's name in the API (default: from --model)");
  f.Int("max-running", &s.max_running, 1, 4096, "requests generating at once");
  f.Int("max-queue", &s.max_queue, 0, 1 << 20, "requests waiting for a slot; beyond, 429 with Retry-After");
  f.Int("kv-tokens", &s.kv_tokens, 0, int64_t{1} << 40,
        "KV positions running requests may reserve, prompt + max_tokens each (0: what the nodes' RAM and NVMe hold)");
  f.Int("context", &s.context, 0, 1 << 24, "tokens a request may hold (0: the model's context)");
  f.Int("prefill-chunk", &s.model.prefill_chunk, 1, 1 << 20, "most prompt tokens per pipeline step");
  f.Int("max-connections", &s.max_connections, 1, 1 << 20, "client connections at once; beyond, closed at once");
  f.Int("max-connections-per-peer", &s.max_connections_per_peer, 1, 1 << 20, "client connections from one IP address");
  f.String("http-cert", &s.http_cert, "serve the API over https with this certificate (PEM; with --http-key)");
  f.String("http-key", &s.http_key, "its private key (PEM, mode 0600)");
  f.Int("write-timeout-ms", &s.write_timeout_ms, 100, 3600000,
        "a client that reads nothing of its answer this long is cut off, its request cancelled");
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) { std::cerr << "strata: " << error << "\n"; return 2; }
  if (help) { std::cout << f.Help(); return 0; }
  return RunServe(s);
}

int StatusCommand(int argc, char** argv) {
  ClusterFlags c;
  FlagSet f("strata status [--nodes HOST:PORT,... | --cluster FILE]",
            "Shows each node: name, device, threads, its layers, open sessions, free memory, resident memory,\n"
            "memory per tier and swap traffic. Without --nodes or --cluster: every member that beacons.");
  f.String("nodes", &c.nodes, "comma-separated node addresses HOST:PORT");
  f.String("cluster", &c.cluster_file, "a cluster file: {\"nodes\": [\"HOST:PORT\", ...]}");
  f.Exclusive({"nodes", "cluster"});
  f.UInt64("connect-timeout-ms", &c.connect_timeout_ms, "how long to wait for each node");
  AddDiscoveryFlags(f, &c);
  AddSecurityFlags(f, &c);
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) { std::cerr << "strata: " << error << "\n"; return 2; }
  if (help) { std::cout << f.Help(); return 0; }

  return RunStatus(c);
}

int MakeModel(int argc, char** argv) {
  TestModelSpec spec;
  std::string out, dtype = "f32", corpus;
  bool qwen2 = false, tie = false;
  int64_t files = 1;
  FlagSet f("strata make-model --out DIR [options]",
            "Writes a deterministic random-weight Llama model (config.json, safetensors, a SentencePiece\n"
            "tokenizer trained on text found on this machine). The same options give the same bytes.");
  f.String("out", &out, "output directory");
  f.Int("hidden", &spec.hidden, 2, 1 << 16, "hidden size");
  f.Int("layers", &spec.layers, 1, 1024, "transformer layers");
  f.Int("heads", &spec.heads, 1, 1024, "attention heads");
  f.Int("kv-heads", &spec.kv_heads, 1, 1024, "key/value heads (grouped-query attention)");
  f.Int("intermediate", &spec.intermediate, 1, 1 << 20, "MLP intermediate size");
  f.Int("vocab", &spec.vocab, 8, 1 << 22, "vocabulary size");
  f.Int("context", &spec.context, 2, 1 << 20, "context length (max_position_embeddings)");
  f.String("dtype", &dtype, "weights on disk: f32 | bf16 | f16");
  f.UInt64("seed", &spec.seed, "weight seed");
  f.Float("std", &spec.std, 0.0, 10.0, "weight standard deviation");
  f.Bool("tie", &tie, "tie the LM head to the embedding (no lm_head.weight)");
  f.Bool("qwen2", &qwen2, "write a Qwen2 model (q/k/v biases): --arch qwen2");
  f.String("arch", &spec.arch, "llama | llama3 (rope_scaling llama3) | qwen2 (q/k/v biases) | qwen3 (q/k norms) | mistral");
  f.Int("files", &files, 1, 1000, "split the weights over N files with an index");
  f.String("corpus", &corpus, "tokenizer training text (default: the machine's licence texts)");
  f.Int("tokenizer-vocab", &spec.tokenizer_vocab, 0, 1 << 20, "tokenizer pieces (default min(vocab, 1000))");
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) { std::cerr << "strata: " << error << "\n"; return 2; }
  if (help) { std::cout << f.Help(); return 0; }
  if (out.empty()) { std::cerr << "strata: --out DIR is required\n"; return 2; }
  if (dtype == "f32") spec.dtype = DType::kF32;
  else if (dtype == "bf16") spec.dtype = DType::kBF16;
  else if (dtype == "f16") spec.dtype = DType::kF16;
  else { std::cerr << "strata: --dtype must be f32, bf16 or f16\n"; return 2; }
  spec.qkv_bias = qwen2;
  spec.tie_embeddings = tie;
  spec.files = static_cast<int>(files);
  spec.corpus = corpus;
  PosixEnv env;
  Status st = WriteTestModel(env, out, spec);
  if (!st.ok()) { std::cerr << "strata: " << st.message() << "\n"; return 1; }
  std::cerr << "wrote " << out << "\n";
  return 0;
}

int Quantize(int argc, char** argv) {
  QuantizeOptions o;
  FlagSet f("strata quantize --model DIR --type TYPE --out FILE.gguf",
            "Writes a Hugging Face checkpoint (safetensors + tokenizer.model) as one GGUF file: config,\n"
            "vocabulary, chat template and weights, each matrix in TYPE's block format (q4_k_m: llama.cpp's\n"
            "mix of Q4_K and Q6_K). Strata runs it with --model FILE.gguf; llama.cpp reads it as well.");
  f.String("model", &o.model_dir, "the checkpoint directory");
  f.String("type", &o.type, QuantizeTypes());
  f.String("out", &o.out, "the GGUF file to write");
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) { std::cerr << "strata: " << error << "\n"; return 2; }
  if (help) { std::cout << f.Help(); return 0; }
  if (o.model_dir.empty() || o.type.empty() || o.out.empty()) {
    std::cerr << "strata: quantize needs --model DIR, --type TYPE and --out FILE.gguf\n";
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&]() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  uint64_t read = 0;
  o.progress = [&](uint64_t done, uint64_t total) {
    read = done;
    if (isatty(2)) std::cerr << "\r" << ProgressLine("quantize " + o.type, done, total, seconds()) << std::flush;
  };
  PosixEnv env;
  Status st = QuantizeModel(env, o);
  if (isatty(2)) std::cerr << "\n";
  if (!st.ok()) { std::cerr << "strata: " << st.message() << "\n"; return 1; }
  struct stat out_stat {};
  ::stat(o.out.c_str(), &out_stat);
  const double s = seconds();
  std::fprintf(stderr, "wrote %s: %.1f MiB of weights in, %.1f MiB out (%.2fx), %.1f s, %.1f MiB/s\n", o.out.c_str(),
               read / 1048576.0, out_stat.st_size / 1048576.0, out_stat.st_size ? double(read) / out_stat.st_size : 0.0, s,
               read / 1048576.0 / std::max(s, 1e-9));
  return 0;
}

int MakeSecret(int argc, char** argv) {
  std::string out, tls_dir, coordinator_key;
  int64_t days = 825;
  FlagSet f("strata make-secret --out FILE [--tls DIR] [--coordinator-key KEY]",
            "Writes a new random cluster secret to FILE (mode 0600). Give the same file to every\n"
            "strata-node and strata of the cluster with --cluster-secret-file FILE. With --tls DIR it also\n"
            "writes a cluster CA (ca.pem, ca.key) and a member certificate (cert.pem, key.pem) into DIR:\n"
            "copy ca.pem, cert.pem and key.pem to every member and start them with --tls-dir DIR.\n"
            "With --coordinator-key KEY it also writes an Ed25519 key pair, KEY (0600) and its .pub: start\n"
            "the nodes with --coordinator-pub KEY.pub and the coordinator with --coordinator-key KEY, and\n"
            "only the coordinator may load shards, link stages and open sessions; the secret alone makes a member.");
  f.String("out", &out, "the secret file to create (never overwritten)");
  f.String("tls", &tls_dir, "also write the cluster's TLS CA and member certificate into this directory");
  f.Int("days", &days, 1, 36500, "validity of the certificates in days");
  f.String("coordinator-key", &coordinator_key, "also write a coordinator key pair (KEY and its .pub)");
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) { std::cerr << "strata: " << error << "\n"; return 2; }
  if (help) { std::cout << f.Help(); return 0; }
  if (out.empty()) { std::cerr << "strata: --out FILE is required\n"; return 2; }
  Status st = WriteClusterSecret(out);
  if (st.ok() && !tls_dir.empty()) st = WriteClusterTls(tls_dir, static_cast<int>(days));
  if (st.ok() && !coordinator_key.empty()) st = WriteCoordinatorKeys(coordinator_key, CoordinatorPubPath(coordinator_key));
  if (!st.ok()) { std::cerr << "strata: " << st.message() << "\n"; return 1; }
  std::cerr << "wrote " << out << (tls_dir.empty() ? "" : " and the cluster TLS files in " + tls_dir)
            << (coordinator_key.empty() ? "" : " and the coordinator key " + coordinator_key + " (public: " +
                                                   CoordinatorPubPath(coordinator_key) + ")")
            << "\n";
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  // stdout carries the generated text; every log line goes to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("strata"));
  spdlog::set_level(spdlog::level::warn);
  if (const char* level = std::getenv("STRATA_LOG")) spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("[%H:%M:%S.%e] [strata] [%l] %v");
  // Ctrl-C becomes an event on the loop; every wait gives way to it, and the
  // local nodes are stopped on the way out.
  kj::UnixEventPort::captureSignal(SIGINT);
  signal(SIGPIPE, SIG_IGN);
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "generate") return strata::Generate(argc, argv, strata::GenerateMode::kGenerate);
  if (command == "plan") return strata::Generate(argc, argv, strata::GenerateMode::kPlan);
  if (command == "perplexity") return strata::Generate(argc, argv, strata::GenerateMode::kPerplexity);
  if (command == "status") return strata::StatusCommand(argc, argv);
  if (command == "make-model") return strata::MakeModel(argc, argv);
  if (command == "quantize") return strata::Quantize(argc, argv);
  if (command == "tokenize") return strata::TokenizeCommand(argc, argv, strata::DefaultModel());
  if (command == "make-secret") return strata::MakeSecret(argc, argv);
  if (command == "serve-model") return strata::ServeModel(argc, argv);
  if (command == "serve") return strata::Serve(argc, argv);
  if (command == "--help" || command == "-h" || command == "help") { std::cout << strata::kUsage; return 0; }
  std::cerr << (command.empty() ? std::string("strata: no command given") : "strata: unknown command '" + command + "'")
            << "\n\n" << strata::kUsage;
  return 2;
}
