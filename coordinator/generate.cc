#include "coordinator/generate.h"

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <spdlog/spdlog.h>

#include <climits>
#include <cstdlib>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "coordinator/cluster_start.h"
#include "coordinator/credentials.h"
#include "coordinator/distribute.h"
#include "coordinator/generation_driver.h"
#include "coordinator/local_cluster.h"
#include "coordinator/membership.h"
#include "coordinator/perplexity.h"
#include "coordinator/pipeline.h"
#include "coordinator/shard_plan.h"
#include "coordinator/tokenizer.h"
#include "protocol/peer_auth.h"
#include "storage/checkpoint.h"
#include "storage/hex.h"
#include "storage/system_memory.h"

namespace strata {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

int Fail(const std::string& message) {
  std::cerr << "strata: " << message << std::endl;
  return 1;
}


// A layer costs its weights plus the KV cache of `kv_tokens` tokens (the
// context times the concurrency the plan must hold), in the compute dtype.

struct RunReport {
  std::vector<int32_t> prompt;
  std::vector<int32_t> tokens;
  std::string text;
  double load_s = 0, prefill_s = 0, decode_s = 0;
  std::vector<uint64_t> stage_micros;  // summed over the run
};

void WriteLogitsRow(std::ofstream* out, const std::vector<float>& logits) {
  if (out == nullptr) return;
  out->write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
}

// The CLI's front end of the generation driver: text to stdout as it comes,
// and each position's logits to --logits-out.
class CliSink final : public TokenSink {
 public:
  CliSink(bool print, std::ofstream* logits_out) : print_(print), logits_out_(logits_out) {}
  void OnToken(int32_t, const std::string& text, const std::vector<float>& logits) override {
    WriteLogitsRow(logits_out_, logits);
    if (print_ && !text.empty()) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
  }

 private:
  const bool print_;
  std::ofstream* logits_out_;
};

void RunSession(RpcEnv& env, Pipeline& pipeline, const GenerateFlags& flags, const Tokenizer& tokenizer,
                uint64_t session, uint32_t base, std::ofstream* logits_out, RunReport* report) {
  GenerationRequest request;
  request.prompt = report->prompt;
  request.max_tokens = flags.max_tokens;
  request.base = base;
  request.prefill_chunk = flags.prefill_chunk;
  request.want_logits = logits_out != nullptr;
  request.run_last_token = flags.keep_session;
  CliSink sink(!flags.json, logits_out);
  GenerationDriver driver(pipeline, tokenizer, session, std::move(request), &sink);
  env.Await(driver.Run(), 0, "");
  const GenerationResult& r = driver.result();
  report->tokens = r.tokens;
  report->text = r.text;
  report->prefill_s = r.prefill_s;
  report->decode_s = r.decode_s;
  report->stage_micros = r.stage_micros;
}

std::string HexOf(const Bytes& bytes) {
  return HexEncode(bytes.data(), bytes.size());
}

bool ParseSessionId(const std::string& hex, Bytes* out) {
  if (hex.size() != 2 * kTicketBytes || !IsLowerHex(hex, hex.size())) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) out->push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return true;
}

bool ParseTokenIds(const std::string& text, int64_t vocab, std::vector<int32_t>* out) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty() || item.size() > 10 || item.find_first_not_of("0123456789") != std::string::npos) return false;
    const int64_t id = std::stoll(item);
    if (id >= vocab) return false;
    out->push_back(static_cast<int32_t>(id));
  }
  return !out->empty();
}

// costs (may be null) adds each stage's read_bytes: the weights one decode step reads there.
json PlanJson(const ShardPlan& plan, const std::vector<NodeCapacity>& nodes, const ModelCosts* costs = nullptr) {
  json out = json::array();
  for (const auto& s : plan.stages) {
    out.push_back({{"node", nodes[s.node].name}, {"address", nodes[s.node].address}, {"first_layer", s.first_layer},
                   {"end_layer", s.end_layer}, {"bytes", s.bytes}, {"ms_per_token", s.ms_per_token},
                   {"bandwidth_gbps", nodes[s.node].bandwidth_gbps}, {"free_bytes", nodes[s.node].free_bytes}});
    if (costs != nullptr) {
      uint64_t read = s.end_layer == static_cast<int64_t>(costs->layer_read_bytes.size()) ? costs->head_bytes : 0;
      for (int64_t l = s.first_layer; l < s.end_layer; ++l) read += costs->layer_read_bytes[static_cast<size_t>(l)];
      out.back()["read_bytes"] = read;
    }
  }
  return out;
}

void PrintSummary(const RunReport& r, const ShardPlan& plan, const std::vector<NodeCapacity>& nodes, uint64_t session) {
  const double prompt_tps = r.prefill_s > 0 ? r.prompt.size() / r.prefill_s : 0;
  const size_t decoded = r.tokens.empty() ? 0 : r.tokens.size() - 1;  // the first token comes from the prefill
  const double decode_tps = r.decode_s > 0 ? decoded / r.decode_s : 0;
  std::fprintf(stderr, "\n--- strata: session %016llx, %zu stages\n%s", static_cast<unsigned long long>(session),
               plan.stages.size(), plan.Describe(nodes).c_str());
  std::fprintf(stderr, "load %.2f s | prompt %zu tokens in %.3f s (%.1f tok/s) | decode %zu tokens in %.3f s (%.2f tok/s)\n",
               r.load_s, r.prompt.size(), r.prefill_s, prompt_tps, decoded, r.decode_s, decode_tps);
}

// How a link is secured, in the words `strata status` and generate's report share.
const char* SecurityText(bool secret, bool tls) { return secret ? (tls ? "secret+tls" : "secret") : (tls ? "tls" : "none"); }

// `links`: how this run's links to its nodes were secured.
json ReportJson(const RunReport& r, const ShardPlan& plan, const std::vector<NodeCapacity>& nodes, const Credentials& links) {
  const size_t decoded = r.tokens.empty() ? 0 : r.tokens.size() - 1;
  return {{"prompt_tokens", r.prompt},
          {"links", SecurityText(!links.secret.empty(), links.tls)},
          {"tokens", r.tokens},
          {"text", r.text},
          {"plan", PlanJson(plan, nodes)},
          {"timings",
           {{"load_s", r.load_s},
            {"prefill_s", r.prefill_s},
            {"decode_s", r.decode_s},
            {"prompt_tokens_per_s", r.prefill_s > 0 ? r.prompt.size() / r.prefill_s : 0.0},
            {"decode_tokens_per_s", r.decode_s > 0 ? decoded / r.decode_s : 0.0},
            {"stage_compute_s", [&] {
               json a = json::array();
               for (uint64_t us : r.stage_micros) a.push_back(us / 1e6);
               return a;
             }()}}}};
}

// " | swap: 12 out, 12 in (3.0 MiB, 1.2 GB/s read), 2 on disk, 1 kept, RAM hits 97%"
std::string SwapText(const NodeStatus& s) {
  const auto& w = s.swap;
  const uint64_t steps = w.ram_hits + w.ram_misses;
  if (w.pages_out == 0 && w.pages_in == 0 && s.kept_sessions == 0 && steps == 0) return "";
  char buf[320];
  std::snprintf(buf, sizeof buf,
                " | swap: %llu out, %llu in (%.1f MiB; per page: write %.0f us, read %.0f us), %llu on disk, %u kept, "
                "RAM hits %.0f%%, prefetched %llu/%llu, %llu failed",
                static_cast<unsigned long long>(w.pages_out), static_cast<unsigned long long>(w.pages_in),
                (w.bytes_out + w.bytes_in) / 1048576.0, w.pages_out ? static_cast<double>(w.write_micros) / w.pages_out : 0.0,
                w.pages_in ? static_cast<double>(w.read_micros) / w.pages_in : 0.0,
                static_cast<unsigned long long>(w.sessions_on_disk), s.kept_sessions,
                steps ? 100.0 * w.ram_hits / steps : 100.0, static_cast<unsigned long long>(w.prefetch_hits),
                static_cast<unsigned long long>(w.prefetch_hits + w.prefetch_misses),
                static_cast<unsigned long long>(w.failures));
  return buf;
}

// The text of --perplexity-file as a scoring request.
Status ScoreRequest(const GenerateFlags& flags, const ModelConfig& config, const Tokenizer& tokenizer,
                    PerplexityRequest* out) {
  constexpr uintmax_t kMaxTextBytes = 256u << 20;
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(flags.perplexity_file, ec);
  if (ec) return Status::Error("cannot read " + flags.perplexity_file + ": " + ec.message());
  if (size > kMaxTextBytes) return Status::Error(flags.perplexity_file + " is over 256 MiB");
  std::ifstream in(flags.perplexity_file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Status::Error("cannot read " + flags.perplexity_file);
  out->tokens = tokenizer.Encode(text, /*bos=*/true);  // as llama-perplexity: the text's stream starts with BOS too
  out->bos = tokenizer.bos();
  out->ctx = flags.context > 0 ? flags.context : config.max_position;
  out->max_chunks = flags.chunks;
  out->vocab = config.vocab_size;
  out->prefill_chunk = flags.prefill_chunk;
  if (out->ctx < 4 || out->ctx > config.max_position) {
    return Status::Error("--ctx must be 4 to the model's context of " + std::to_string(config.max_position) + ", got " +
                         std::to_string(out->ctx));
  }
  if (static_cast<int64_t>(out->tokens.size()) < out->ctx) {
    return Status::Error(flags.perplexity_file + " is " + std::to_string(out->tokens.size()) +
                         " tokens, shorter than one chunk of --ctx " + std::to_string(out->ctx));
  }
  return Status::Ok();
}

// strata perplexity: every chunk in a session of its own, a line per chunk
// on stderr, the result on stdout.
int RunScore(RpcEnv& env, Pipeline& pipeline, const GenerateFlags& flags, PerplexityRequest request, uint64_t session,
             const ShardPlan& plan, const std::vector<NodeCapacity>& capacities) {
  const bool tty = ::isatty(STDERR_FILENO);
  const int64_t ctx = request.ctx;
  PerplexityRun run(pipeline, session, std::move(request), [tty](const PerplexityResult& r, int64_t chunks) {
    std::fprintf(stderr, "%schunk %lld/%lld: ppl %.4f (this chunk %.4f)%s", tty ? "\r" : "",
                 static_cast<long long>(r.chunks), static_cast<long long>(chunks), r.ppl(), r.chunk_ppl.back(),
                 tty ? "" : "\n");
  });
  env.Await(run.Run(), 0, "");
  if (tty) std::fprintf(stderr, "\n");
  const PerplexityResult& r = run.result();
  if (flags.json) {
    std::cout << json{{"perplexity", r.ppl()}, {"mean_nll", r.scored ? r.nll / r.scored : 0.0},
                      {"tokens_scored", r.scored}, {"chunks", r.chunks}, {"ctx", ctx},
                      {"chunk_perplexity", r.chunk_ppl}, {"seconds", r.seconds}, {"dtype", flags.dtype},
                      {"plan", PlanJson(plan, capacities)}}
                     .dump()
              << std::endl;
  } else {
    std::printf("perplexity %.4f over %lld tokens (%lld chunks of %lld)\n", r.ppl(), static_cast<long long>(r.scored),
                static_cast<long long>(r.chunks), static_cast<long long>(ctx));
  }
  std::fprintf(stderr, "scored %lld tokens in %.2f s (%.1f tokens/s) on %zu stages\n", static_cast<long long>(r.scored),
               r.seconds, r.seconds > 0 ? r.scored / r.seconds : 0.0, plan.stages.size());
  return 0;
}

}  // namespace

int RunGenerate(const GenerateFlags& flags) {
  if (flags.cluster.local == 0 && !UsesDiscovery(flags.cluster)) {
    std::vector<std::string> addresses;
    std::string error;
    if (!ResolveStaticAddresses(flags.cluster, &addresses, &error)) return Fail(error);
  }
  if (flags.keep_session && flags.cluster.local > 0) {
    return Fail("--keep-session needs nodes that outlive this run (--nodes or --cluster), not --local");
  }
  Bytes keep_key;
  if (!flags.session.empty() && !ParseSessionId(flags.session, &keep_key)) {
    return Fail("--session wants the 32 hex digits that --keep-session printed, got '" + flags.session + "'");
  }
  const bool resume = !keep_key.empty();
  if (flags.keep_session && !resume) keep_key = RandomBytes(kTicketBytes);
  auto opened = OpenCommandModel(flags);
  if (!opened.ok()) return Fail(opened.status().message());
  const TensorDType dtype = opened->dtype;
  const std::string& model = opened->path;
  const std::unique_ptr<Checkpoint>& ckpt = opened->checkpoint;
  const ModelConfig& config = ckpt->config();
  auto tokenizer = Tokenizer::Load(model, config, ckpt->gguf());
  if (!tokenizer.ok()) return Fail(tokenizer.status().message());
  RunReport report;
  const bool scoring = !flags.perplexity_file.empty();
  PerplexityRequest score;
  if (scoring) {
    Status read = ScoreRequest(flags, config, *tokenizer.value(), &score);
    if (!read.ok()) return Fail(read.message());
  } else if (!flags.prompt_tokens.empty()) {
    if (!ParseTokenIds(flags.prompt_tokens, config.vocab_size, &report.prompt)) {
      return Fail("--prompt-tokens wants comma-separated token ids below the vocabulary size " +
                  std::to_string(config.vocab_size));
    }
  } else {
    report.prompt = tokenizer.value()->Encode(flags.prompt, /*bos=*/!resume);  // a continuation is mid-sequence
  }
  if (report.prompt.empty() && !scoring) return Fail("the prompt is empty");
  if (static_cast<int64_t>(report.prompt.size()) >= config.max_position) {
    return Fail("the prompt is " + std::to_string(report.prompt.size()) + " tokens, longer than the model's context of " +
                std::to_string(config.max_position) + " (it needs room for at least one new token)");
  }
  // A kept conversation may grow to the whole context; its pages are taken
  // only as its tokens arrive.
  int64_t capacity = scoring ? score.ctx
                     : keep_key.empty()
                         ? std::min<int64_t>(config.max_position, static_cast<int64_t>(report.prompt.size()) + flags.max_tokens)
                         : config.max_position;
  std::unique_ptr<std::ofstream> logits_out;
  if (!flags.logits_out.empty()) {
    logits_out = std::make_unique<std::ofstream>(flags.logits_out, std::ios::binary | std::ios::trunc);
    if (!*logits_out) return Fail("cannot write --logits-out file " + flags.logits_out);
  }
  if (config.num_layers < std::max<int64_t>(flags.cluster.local, 1)) {
    return Fail("more nodes (" + std::to_string(flags.cluster.local) + ") than layers (" +
                std::to_string(config.num_layers) + "): every node needs at least one layer");
  }

  auto io = kj::setupAsyncIo();
  auto credentials = LoadCredentials(flags.cluster, io.provider->getTimer(), flags.cluster.local > 0);
  if (!credentials.ok()) return Fail(credentials.status().message());
  char real_model[PATH_MAX];
  const std::string model_dir = ::realpath(model.c_str(), real_model) ? std::string(real_model) : model;
  auto cluster = StartCluster(flags.cluster, credentials.value(), flags.distribute ? "" : model_dir);
  if (!cluster.ok()) return Fail(cluster.status().message());
  Timeouts timeouts;
  timeouts.connect_ms = static_cast<uint32_t>(flags.cluster.connect_timeout_ms);
  timeouts.call_ms = static_cast<uint32_t>(flags.cluster.step_timeout_ms);
  RpcEnv env(io, timeouts, credentials->security());
  std::random_device rd;
  const uint64_t session = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  try {
    std::vector<std::unique_ptr<NodeConnection>> nodes;
    for (const auto& address : cluster->addresses) nodes.push_back(NodeConnection::Connect(env, address));
    Pipeline pipeline(env, std::move(nodes));
    const auto capacities = pipeline.Capacities();
    ShardPlan plan;
    uint32_t base = 0;
    Result<std::unique_ptr<ModelDistribution>> distribution = Status::Error("not distributing");
    const auto t0 = Clock::now();
    if (resume) {
      // The nodes hold the conversation with the shards they have: planning
      // again could move layers and so forget it.
      if (!pipeline.UseLoadedShards(config.num_layers, &plan)) {
        return Fail("the nodes no longer hold a complete pipeline of this model; the kept session is gone");
      }
      const auto [length, held] = pipeline.ResumeSession(session, keep_key);
      base = length;
      capacity = held;
    } else {
      std::string note;
      auto planned = PlanShardsWithNvme(CostsOf(*ckpt, dtype, static_cast<uint64_t>(capacity)), capacities, &note);
      if (!planned.ok()) return Fail(planned.status().message());
      if (!note.empty()) std::cerr << "strata: note: " << note << std::endl;
      plan = planned.value();
      spdlog::info("session={} plan:\n{}", session, plan.Describe(capacities));
      bool distribute = flags.distribute || !flags.model_server.empty();
      if (!distribute && flags.cluster.local == 0) {
        // Nodes elsewhere read a model by path only under their --models-dir.
        const std::vector<std::string> lacking = pipeline.CannotOpen(model_dir, plan);
        distribute = !lacking.empty();
        if (distribute) {
          std::string names;
          for (const auto& n : lacking) names += (names.empty() ? "" : ", ") + n;
          std::cerr << "strata: note: " << names << " cannot read " << model_dir
                    << " by path; distributing the model to the nodes (as --distribute does)" << std::endl;
        }
      }
      if (distribute) {
        distribution = flags.model_server.empty()
                           ? ModelDistribution::Start(io, model_dir, credentials->secret, cluster->addresses, flags.serve,
                                                      ModelCacheDir(flags.model_source))
                           : ModelDistribution::UseServer(flags.model_server, credentials->secret);
        if (!distribution.ok()) return Fail(distribution.status().message());
        pipeline.Load(model_dir, plan, dtype, &distribution.value()->source());
      } else {
        pipeline.Load(model_dir, plan, dtype);
      }
      if (scoring) return RunScore(env, pipeline, flags, std::move(score), session, plan, capacities);
      SamplingParams sampling{static_cast<float>(flags.temperature), static_cast<uint32_t>(flags.top_k),
                              static_cast<float>(flags.top_p), flags.seed};
      pipeline.OpenSession(session, static_cast<uint32_t>(capacity), sampling, keep_key);
    }
    report.load_s = Seconds(t0, Clock::now());
    // The room left: a kept session also needs one position for its last token.
    const int64_t room = capacity - base - static_cast<int64_t>(report.prompt.size()) - (keep_key.empty() ? 0 : 1);
    if (room < 1) {
      pipeline.DetachSession(session);
      return Fail("the conversation holds " + std::to_string(base) + " tokens of its " + std::to_string(capacity) +
                  "; the prompt does not fit in what is left");
    }
    GenerateFlags run = flags;
    run.keep_session = !keep_key.empty();
    run.max_tokens = std::min<int64_t>(flags.max_tokens, room);
    if (run.max_tokens < flags.max_tokens) {
      std::cerr << "strata: note: generating at most " << run.max_tokens << " tokens, the room left in the context of "
                << capacity << std::endl;
    }
    try {
      RunSession(env, pipeline, run, *tokenizer.value(), session, base, logits_out.get(), &report);
    } catch (...) {
      if (keep_key.empty()) pipeline.CloseSession(session);
      throw;
    }
    if (keep_key.empty()) {
      pipeline.CloseSession(session);
    } else {
      pipeline.DetachSession(session);
    }
    if (flags.json) {
      json out = ReportJson(report, plan, capacities, credentials.value());
      if (!keep_key.empty()) out["session_id"] = HexOf(keep_key);
      out["position"] = base;
      if (distribution.ok()) out["model_bytes_served"] = distribution.value()->bytes_served();
      std::cout << out.dump() << std::endl;
    } else {
      std::cout << std::endl;
      PrintSummary(report, plan, capacities, session);
      if (distribution.ok()) {
        std::fprintf(stderr, "model: %.1f MiB served to the nodes (0: their caches were warm)\n",
                     distribution.value()->bytes_served() / 1048576.0);
      }
      if (!keep_key.empty()) {
        std::fprintf(stderr, "session kept: continue it with --session %s\n", HexOf(keep_key).c_str());
      }
    }
  } catch (const PipelineError& e) {
    if (!flags.json && !report.tokens.empty()) std::cout << std::endl;
    return Fail(e.what());
  }
  return 0;
}

int RunPlan(const GenerateFlags& flags) {
  auto opened = OpenCommandModel(flags);
  if (!opened.ok()) return Fail(opened.status().message());
  const TensorDType dtype = opened->dtype;
  const std::unique_ptr<Checkpoint>& ckpt = opened->checkpoint;
  std::vector<NodeCapacity> capacities;
  if (flags.cluster.local > 0) {
    for (int64_t i = 0; i < flags.cluster.local; ++i) {
      capacities.push_back({"local-" + std::to_string(i), "127.0.0.1", AvailableMemoryBytes() / flags.cluster.local});
    }
  } else {
    auto io = kj::setupAsyncIo();
    auto credentials = LoadCredentials(flags.cluster, io.provider->getTimer(), false);
    if (!credentials.ok()) return Fail(credentials.status().message());
    auto members = ResolveMembers(flags.cluster, credentials->secret);
    if (!members.ok()) return Fail(members.status().message());
    const std::vector<std::string>& addresses = members->addresses;
    RpcEnv env(io, Timeouts{}, credentials->security());
    try {
      std::vector<std::unique_ptr<NodeConnection>> nodes;
      for (const auto& a : addresses) nodes.push_back(NodeConnection::Connect(env, a));
      capacities = Pipeline(env, std::move(nodes)).Capacities();
    } catch (const PipelineError& e) {
      return Fail(e.what());
    }
  }
  const int64_t context = flags.context > 0 ? flags.context : ckpt->config().max_position;
  const uint64_t kv_tokens = static_cast<uint64_t>(context) * static_cast<uint64_t>(flags.concurrency);
  std::string note;
  const ModelCosts costs = CostsOf(*ckpt, dtype, kv_tokens);
  auto plan = PlanShardsWithNvme(costs, capacities, &note);
  if (!plan.ok()) return Fail(plan.status().message());
  if (!note.empty()) std::cerr << "strata: note: " << note << std::endl;
  if (flags.json) {
    std::cout << PlanJson(plan.value(), capacities, &costs).dump(2) << std::endl;
  } else {
    std::cout << "plan for " << flags.model << " (" << ckpt->config().num_layers << " layers, " << flags.dtype
              << ") on " << capacities.size() << " nodes, each stage's weights and KV for " << context
              << " tokens x " << flags.concurrency << " sessions:\n"
              << plan->Table(capacities);
  }
  return 0;
}

int RunStatus(const ClusterFlags& flags) {
  auto io = kj::setupAsyncIo();
  auto credentials = LoadCredentials(flags, io.provider->getTimer(), false);
  if (!credentials.ok()) return Fail(credentials.status().message());
  auto members = ResolveMembers(flags, credentials->secret);
  if (!members.ok()) return Fail(members.status().message());
  const std::vector<std::string>& addresses = members->addresses;
  std::printf("%zu nodes from %s\n", addresses.size(), members->source.c_str());
  Timeouts timeouts;
  timeouts.connect_ms = static_cast<uint32_t>(flags.connect_timeout_ms);
  RpcEnv env(io, timeouts, credentials->security());
  int down = 0;
  std::printf("%-16s %-22s %-7s %-4s %-8s %-7s %-12s %-8s %-10s %-10s %-11s %-24s %s\n", "NODE", "ADDRESS", "DEVICE",
              "THR", "GFLOP/s", "GB/s", "LAYERS", "SESSIONS", "FREE MiB", "RSS MiB", "SECURITY", "HEALTH",
              "MEMORY (used/budget MiB) | NVMe SWAP");
  for (size_t i = 0; i < addresses.size(); ++i) {
    const std::string& a = addresses[i];
    try {
      auto node = NodeConnection::Connect(env, a);
      const auto t0 = std::chrono::steady_clock::now();
      const NodeStatus s = node->Status(env);
      // Health: it answered, how fast, and (discovery) how fresh its beacon is.
      char health[64];
      const double rtt_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i < members->seen_ago_s.size()) {
        std::snprintf(health, sizeof health, "ok %.1fms, beacon %.1fs", rtt_ms, members->seen_ago_s[i]);
      } else {
        std::snprintf(health, sizeof health, "ok %.1fms", rtt_ms);
      }
      const std::string layers =
          s.shard_loaded ? "[" + std::to_string(s.first_layer) + ", " + std::to_string(s.end_layer) + ")" : "-";
      const char* security = SecurityText(s.secured, s.tls);
      std::string tiers;
      for (const auto& t : s.tiers) {
        tiers += (tiers.empty() ? "" : ", ") + t.name + " " + std::to_string(t.used >> 20) + "/" +
                 std::to_string(t.budget >> 20);
      }
      std::printf("%-16s %-22s %-7s %-4u %-8.1f %-7.1f %-12s %-8u %-10llu %-10llu %-11s %-24s %s\n", s.name.c_str(),
                  a.c_str(), s.device.c_str(), s.threads, s.compute_gflops, s.bandwidth_gbps, layers.c_str(),
                  s.active_sessions,
                  static_cast<unsigned long long>(s.free_bytes >> 20),
                  static_cast<unsigned long long>(s.resident_bytes >> 20), security, health,
                  (tiers + SwapText(s)).c_str());
      std::printf("%-16s cpu: %s; kernels: %s\n", "", s.cpu_features.empty() ? "?" : s.cpu_features.c_str(),
                  s.kernels.empty() ? "?" : s.kernels.c_str());
    } catch (const PipelineError& e) {
      ++down;
      std::printf("%-16s %-22s DOWN: %s\n", "?", a.c_str(), e.what());
    }
  }
  return down == 0 ? 0 : 1;
}

}  // namespace strata
