#include "coordinator/cli/perplexity_command.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "coordinator/cli/command_output.h"

namespace strata {

using json = nlohmann::json;

// The text of --perplexity-file as a scoring request.
Status ReadScoreRequest(const GenerateFlags& flags, const ModelConfig& config, const Tokenizer& tokenizer,
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

}  // namespace strata
