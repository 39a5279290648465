#include "coordinator/pipeline/perplexity.h"

#include <chrono>
#include <cmath>
#include <utility>

namespace strata {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

double PerplexityResult::ppl() const { return scored > 0 ? std::exp(nll / static_cast<double>(scored)) : 0.0; }

double NegativeLogLikelihood(const std::vector<float>& logits, int64_t vocab, int32_t target) {
  if (static_cast<int64_t>(logits.size()) != vocab || target < 0 || target >= vocab) return NAN;
  double max = -INFINITY;
  for (float v : logits) {
    if (!std::isfinite(v)) return NAN;
    max = std::max<double>(max, v);
  }
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  return std::log(sum) + max - static_cast<double>(logits[static_cast<size_t>(target)]);
}

PerplexityRun::PerplexityRun(Pipeline& pipeline, uint64_t session_base, PerplexityRequest request,
                             std::function<void(const PerplexityResult&, int64_t)> progress)
    : pipeline_(pipeline), session_base_(session_base), request_(std::move(request)), progress_(std::move(progress)) {}

int64_t PerplexityRun::chunks() const {
  const int64_t whole = static_cast<int64_t>(request_.tokens.size()) / request_.ctx;
  return request_.max_chunks > 0 ? std::min(whole, request_.max_chunks) : whole;
}

std::vector<int32_t> PerplexityRun::ChunkTokens(int64_t c) const {
  const auto begin = request_.tokens.begin() + static_cast<long>(c * request_.ctx);
  std::vector<int32_t> chunk(begin, begin + static_cast<long>(request_.ctx));
  if (request_.bos >= 0) chunk[0] = request_.bos;  // as llama-perplexity: the chunk's first token becomes BOS
  return chunk;
}

kj::Promise<void> PerplexityRun::Run() {
  const double t0 = Now();
  return Chunk(0).then([this, t0]() { result_.seconds = Now() - t0; });
}

kj::Promise<void> PerplexityRun::Chunk(int64_t c) {
  if (c >= chunks()) return kj::READY_NOW;
  const uint64_t session = session_base_ + static_cast<uint64_t>(c);
  chunk_ = ChunkTokens(c);
  return pipeline_.OpenSession(session, static_cast<uint32_t>(request_.ctx), SamplingParams{})
      .then([this, session]() { return Context(session, 0); })
      .then([this, session](StepReply&& reply) { return Score(session, request_.ctx / 2, 0.0, kj::mv(reply)); })
      .then([this, session]() { return pipeline_.CloseSession(session); })
      .then([this, c]() {
        if (progress_) progress_(result_, chunks());
        return Chunk(c + 1);
      });
}

// The first half of the chunk from `at` on, in steps of at most
// prefill_chunk; the last step's logits predict the first scored token.
kj::Promise<StepReply> PerplexityRun::Context(uint64_t session, int64_t at) {
  const int64_t first = request_.ctx / 2;
  const int64_t end = std::min(first, at + request_.prefill_chunk);
  std::vector<int32_t> piece(chunk_.begin() + at, chunk_.begin() + end);
  auto step = pipeline_.StepAsync(StepAt(session, static_cast<uint32_t>(at), StageInput::Tokens(kj::mv(piece)), false,
                                         end == first));
  if (end == first) return step;
  return step.then([this, session, end](StepReply&&) { return Context(session, end); });
}

// `reply` holds the logits that predict chunk_[pos].
kj::Promise<void> PerplexityRun::Score(uint64_t session, int64_t pos, double nll, StepReply reply) {
  const double x = NegativeLogLikelihood(reply.logits, request_.vocab, chunk_[static_cast<size_t>(pos)]);
  if (std::isnan(x)) {
    return KJ_EXCEPTION(FAILED, "the last stage sent logits that are not a finite row of the vocabulary's size");
  }
  nll += x;
  if (pos + 1 < request_.ctx) {
    return pipeline_.StepAsync(StepAt(session, static_cast<uint32_t>(pos),
                                      StageInput::Tokens({chunk_[static_cast<size_t>(pos)]}), false, true))
        .then([this, session, pos, nll](StepReply&& next) { return Score(session, pos + 1, nll, kj::mv(next)); });
  }
  const int64_t scored = request_.ctx - request_.ctx / 2;
  result_.nll += nll;
  result_.scored += scored;
  result_.chunk_ppl.push_back(std::exp(nll / static_cast<double>(scored)));
  ++result_.chunks;
  return kj::READY_NOW;
}

}  // namespace strata
