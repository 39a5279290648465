#include "coordinator/cli/generate_command.h"

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

#include "base/hex.h"
#include "base/system_memory.h"
#include "coordinator/cli/command_output.h"
#include "coordinator/cli/perplexity_command.h"
#include "coordinator/cluster/cluster_start.h"
#include "coordinator/cluster/credentials.h"
#include "coordinator/cluster/distribute.h"
#include "coordinator/cluster/local_cluster.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/pipeline/generation_driver.h"
#include "coordinator/pipeline/perplexity.h"
#include "coordinator/pipeline/pipeline.h"
#include "coordinator/pipeline/shard_plan.h"
#include "coordinator/pipeline/tokenizer.h"
#include "protocol/peer_auth.h"
#include "storage/checkpoint.h"

namespace strata {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

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

void PrintSummary(const RunReport& r, const ShardPlan& plan, const std::vector<NodeCapacity>& nodes, uint64_t session) {
  const double prompt_tps = r.prefill_s > 0 ? r.prompt.size() / r.prefill_s : 0;
  const size_t decoded = r.tokens.empty() ? 0 : r.tokens.size() - 1;  // the first token comes from the prefill
  const double decode_tps = r.decode_s > 0 ? decoded / r.decode_s : 0;
  std::fprintf(stderr, "\n--- strata: session %016llx, %zu stages\n%s", static_cast<unsigned long long>(session),
               plan.stages.size(), plan.Describe(nodes).c_str());
  std::fprintf(stderr, "load %.2f s | prompt %zu tokens in %.3f s (%.1f tok/s) | decode %zu tokens in %.3f s (%.2f tok/s)\n",
               r.load_s, r.prompt.size(), r.prefill_s, prompt_tps, decoded, r.decode_s, decode_tps);
}

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


// What a generate run starts from once its flags are checked: the model, its
// tokenizer, the prompt (or the text to score), the kept session's key and
// the session's capacity in positions.
struct GenerateInput {
  CommandModel model;
  std::string model_dir;  // the model's real path, as nodes that read it by path see it
  std::unique_ptr<Tokenizer> tokenizer;
  Bytes keep_key;         // the kept session's key (empty: none)
  bool resume = false;    // continues the kept session keep_key
  bool scoring = false;   // --perplexity-file
  PerplexityRequest score;
  int64_t capacity = 0;
  std::unique_ptr<std::ofstream> logits_out;
};

Status CheckGenerateFlags(const GenerateFlags& flags, GenerateInput* in) {
  if (flags.cluster.local == 0 && !UsesDiscovery(flags.cluster)) {
    auto addresses = ResolveStaticAddresses(flags.cluster);  // checked before the model is opened
    if (!addresses.ok()) return addresses.status();
  }
  if (flags.keep_session && flags.cluster.local > 0) {
    return Status::Error("--keep-session needs nodes that outlive this run (--nodes or --cluster), not --local");
  }
  if (!flags.session.empty() && !ParseSessionId(flags.session, &in->keep_key)) {
    return Status::Error("--session wants the 32 hex digits that --keep-session printed, got '" + flags.session + "'");
  }
  in->resume = !in->keep_key.empty();
  if (flags.keep_session && !in->resume) in->keep_key = RandomBytes(kTicketBytes);
  return Status::Ok();
}

// The prompt's tokens (or the scoring request) and the session's capacity.
Status ReadPrompt(const GenerateFlags& flags, GenerateInput* in, std::vector<int32_t>* prompt) {
  const ModelConfig& config = in->model.checkpoint->config();
  in->scoring = !flags.perplexity_file.empty();
  if (in->scoring) {
    Status read = ReadScoreRequest(flags, config, *in->tokenizer, &in->score);
    if (!read.ok()) return read;
  } else if (!flags.prompt_tokens.empty()) {
    if (!ParseTokenIds(flags.prompt_tokens, config.vocab_size, prompt)) {
      return Status::Error("--prompt-tokens wants comma-separated token ids below the vocabulary size " +
                           std::to_string(config.vocab_size));
    }
  } else {
    *prompt = in->tokenizer->Encode(flags.prompt, /*bos=*/!in->resume);  // a continuation is mid-sequence
  }
  if (prompt->empty() && !in->scoring) return Status::Error("the prompt is empty");
  if (static_cast<int64_t>(prompt->size()) >= config.max_position) {
    return Status::Error("the prompt is " + std::to_string(prompt->size()) +
                         " tokens, longer than the model's context of " + std::to_string(config.max_position) +
                         " (it needs room for at least one new token)");
  }
  // A kept conversation may grow to the whole context; its pages are taken
  // only as its tokens arrive.
  const int64_t asked = static_cast<int64_t>(prompt->size()) + flags.max_tokens;
  in->capacity = in->scoring ? in->score.ctx
                 : in->keep_key.empty() ? std::min<int64_t>(config.max_position, asked)
                                        : config.max_position;
  return Status::Ok();
}

Result<GenerateInput> PrepareGenerate(const GenerateFlags& flags, std::vector<int32_t>* prompt) {
  GenerateInput in;
  Status checked = CheckGenerateFlags(flags, &in);
  if (!checked.ok()) return checked;
  auto opened = OpenCommandModel(flags.model, flags.model_source, flags.dtype);
  if (!opened.ok()) return opened.status();
  in.model = std::move(opened.value());
  const ModelConfig& config = in.model.checkpoint->config();
  auto tokenizer = Tokenizer::Load(in.model.path, config, in.model.checkpoint->gguf());
  if (!tokenizer.ok()) return tokenizer.status();
  in.tokenizer = std::move(tokenizer.value());
  Status read = ReadPrompt(flags, &in, prompt);
  if (!read.ok()) return read;
  if (!flags.logits_out.empty()) {
    in.logits_out = std::make_unique<std::ofstream>(flags.logits_out, std::ios::binary | std::ios::trunc);
    if (!*in.logits_out) return Status::Error("cannot write --logits-out file " + flags.logits_out);
  }
  if (config.num_layers < std::max<int64_t>(flags.cluster.local, 1)) {
    return Status::Error("more nodes (" + std::to_string(flags.cluster.local) + ") than layers (" +
                         std::to_string(config.num_layers) + "): every node needs at least one layer");
  }
  char real_model[PATH_MAX];
  in.model_dir = ::realpath(in.model.path.c_str(), real_model) ? std::string(real_model) : in.model.path;
  return in;
}

// Whether the nodes must fetch the model: asked for, or a node elsewhere
// cannot read it by path (only under its --models-dir).
bool MustDistribute(const GenerateFlags& flags, RpcEnv& env, Pipeline& pipeline, const std::string& model_dir,
                    const ShardPlan& plan) {
  if (flags.distribute || !flags.model_server.empty()) return true;
  if (flags.cluster.local > 0) return false;
  const std::vector<std::string> lacking = env.Await(pipeline.CannotOpen(model_dir, plan), 0, "");
  if (lacking.empty()) return false;
  std::string names;
  for (const auto& n : lacking) names += (names.empty() ? "" : ", ") + n;
  std::cerr << "strata: note: " << names << " cannot read " << model_dir
            << " by path; distributing the model to the nodes (as --distribute does)" << std::endl;
  return true;
}

// Plans a split for the session's capacity and loads it, serving the model
// to the nodes when they must fetch it. Pipeline failures throw PipelineError.
Status PlanAndLoad(RpcEnv& env, const GenerateFlags& flags, const GenerateInput& in, Pipeline& pipeline,
                   const std::vector<NodeCapacity>& capacities, const Credentials& credentials,
                   const std::vector<std::string>& addresses, uint64_t session, ShardPlan* plan,
                   std::unique_ptr<ModelDistribution>* distribution) {
  std::string note;
  const ModelCosts costs = CostsOf(*in.model.checkpoint, in.model.dtype, static_cast<uint64_t>(in.capacity));
  auto planned = PlanShardsWithNvme(costs, capacities, &note);
  if (!planned.ok()) return planned.status();
  if (!note.empty()) std::cerr << "strata: note: " << note << std::endl;
  *plan = planned.value();
  spdlog::info("session={} plan:\n{}", session, plan->Describe(capacities));
  if (!MustDistribute(flags, env, pipeline, in.model_dir, *plan)) {
    env.Await(pipeline.Load(in.model_dir, *plan, in.model.dtype), 0, "");
    return Status::Ok();
  }
  auto started = flags.model_server.empty()
                     ? ModelDistribution::Start(env.io(), in.model_dir, credentials.secret, addresses, flags.serve,
                                                ModelCacheDir(flags.model_source), credentials.tls_context.get())
                     : ModelDistribution::UseServer(flags.model_server, credentials.secret);
  if (!started.ok()) return started.status();
  *distribution = std::move(started.value());
  env.Await(pipeline.Load(in.model_dir, *plan, in.model.dtype, &(*distribution)->source()), 0, "");
  return Status::Ok();
}

// The run's result: JSON on stdout, or the summary on stderr.
void ReportRun(const GenerateFlags& flags, const RunReport& report, const ShardPlan& plan,
               const std::vector<NodeCapacity>& capacities, const Credentials& credentials, const GenerateInput& in,
               uint32_t base, const ModelDistribution* distribution, uint64_t session) {
  if (flags.json) {
    json out = ReportJson(report, plan, capacities, credentials);
    if (!in.keep_key.empty()) out["session_id"] = HexOf(in.keep_key);
    out["position"] = base;
    if (distribution != nullptr) out["model_bytes_served"] = distribution->bytes_served();
    std::cout << out.dump() << std::endl;
    return;
  }
  std::cout << std::endl;
  PrintSummary(report, plan, capacities, session);
  if (distribution != nullptr) {
    std::fprintf(stderr, "model: %.1f MiB served to the nodes (0: their caches were warm)\n",
                 distribution->bytes_served() / 1048576.0);
  }
  if (!in.keep_key.empty()) std::fprintf(stderr, "session kept: continue it with --session %s\n", HexOf(in.keep_key).c_str());
}

// Closes the session on every stage; a node that is gone, or Ctrl-C, must
// not hide the error being reported.
void CloseQuietly(RpcEnv& env, Pipeline& pipeline, uint64_t session) {
  try {
    env.Await(pipeline.CloseSession(session), 0, "");
  } catch (const PipelineError&) {
  }
}

// Generates on an opened session at position `base`, within the room left.
int GenerateOnSession(RpcEnv& env, Pipeline& pipeline, const GenerateFlags& flags, GenerateInput& in, uint64_t session,
                      uint32_t base, RunReport* report) {
  // The room left: a kept session also needs one position for its last token.
  const int64_t room = in.capacity - base - static_cast<int64_t>(report->prompt.size()) - (in.keep_key.empty() ? 0 : 1);
  if (room < 1) {
    pipeline.DetachSession(session);
    return Fail("the conversation holds " + std::to_string(base) + " tokens of its " + std::to_string(in.capacity) +
                "; the prompt does not fit in what is left");
  }
  GenerateFlags run = flags;
  run.keep_session = !in.keep_key.empty();
  run.max_tokens = std::min<int64_t>(flags.max_tokens, room);
  if (run.max_tokens < flags.max_tokens) {
    std::cerr << "strata: note: generating at most " << run.max_tokens << " tokens, the room left in the context of "
              << in.capacity << std::endl;
  }
  try {
    RunSession(env, pipeline, run, *in.tokenizer, session, base, in.logits_out.get(), report);
  } catch (...) {
    if (in.keep_key.empty()) CloseQuietly(env, pipeline, session);
    throw;
  }
  if (in.keep_key.empty()) {
    CloseQuietly(env, pipeline, session);
  } else {
    pipeline.DetachSession(session);
  }
  return 0;
}

}  // namespace

int RunGenerate(const GenerateFlags& flags) {
  RunReport report;
  auto prepared = PrepareGenerate(flags, &report.prompt);
  if (!prepared.ok()) return Fail(prepared.status().message());
  GenerateInput& in = prepared.value();
  auto io = kj::setupAsyncIo();
  auto credentials = LoadCredentials(flags.cluster, io.provider->getTimer(), flags.cluster.local > 0);
  if (!credentials.ok()) return Fail(credentials.status().message());
  auto cluster = StartCluster(flags.cluster, credentials.value(), flags.distribute ? "" : in.model_dir);
  if (!cluster.ok()) return Fail(cluster.status().message());
  RpcEnv env(io, TimeoutsOf(flags.cluster), credentials->security());
  std::random_device rd;
  const uint64_t session = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  try {
    Pipeline pipeline(env, env.Await(ConnectNodes(env, cluster->addresses, cluster->discovered), 0, ""),
                      static_cast<uint32_t>(in.model.checkpoint->config().vocab_size));
    const auto capacities = pipeline.Capacities();
    ShardPlan plan;
    uint32_t base = 0;
    std::unique_ptr<ModelDistribution> distribution;
    const auto t0 = Clock::now();
    if (in.resume) {
      // The nodes hold the conversation with the shards they have: planning
      // again could move layers and so forget it.
      if (!pipeline.UseLoadedShards(in.model.checkpoint->config().num_layers, &plan)) {
        return Fail("the nodes no longer hold a complete pipeline of this model; the kept session is gone");
      }
      const auto [length, held] = env.Await(pipeline.ResumeSession(session, in.keep_key), 0, "");
      base = length;
      in.capacity = held;
    } else {
      Status loaded = PlanAndLoad(env, flags, in, pipeline, capacities, credentials.value(), cluster->addresses, session,
                                  &plan, &distribution);
      if (!loaded.ok()) return Fail(loaded.message());
      if (in.scoring) return RunScore(env, pipeline, flags, std::move(in.score), session, plan, capacities);
      SamplingParams sampling{static_cast<float>(flags.temperature), static_cast<uint32_t>(flags.top_k),
                              static_cast<float>(flags.top_p), flags.seed};
      env.Await(pipeline.OpenSession(session, static_cast<uint32_t>(in.capacity), sampling, in.keep_key), 0, "");
    }
    report.load_s = Seconds(t0, Clock::now());
    const int code = GenerateOnSession(env, pipeline, flags, in, session, base, &report);
    if (code != 0) return code;
    ReportRun(flags, report, plan, capacities, credentials.value(), in, base, distribution.get(), session);
  } catch (const PipelineError& e) {
    if (!flags.json && !report.tokens.empty()) std::cout << std::endl;
    return Fail(e.what());
  }
  return 0;
}

}  // namespace strata
