#include "coordinator/pipeline/generation_driver.h"

#include <algorithm>
#include <chrono>

namespace strata {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

GenerationDriver::GenerationDriver(Pipeline& pipeline, const Tokenizer& tokenizer, uint64_t session,
                                   GenerationRequest request, TokenSink* sink)
    : pipeline_(pipeline), tokenizer_(tokenizer), session_(session), request_(std::move(request)), sink_(sink),
      text_(tokenizer) {}

GenerationDriver::~GenerationDriver() {
  if (feeding_ && !finished_) kj::runCatchingExceptions([this]() { pipeline_.HaltAsync(session_); });
}

kj::Promise<void> GenerationDriver::Run() {
  t_start_ = Now();
  if (request_.prompt.empty() || request_.max_tokens < 1) return KJ_EXCEPTION(FAILED, "an empty prompt or no tokens to make");
  return Prefill(0);
}

uint32_t GenerationDriver::NextPos() const {
  // The position of the last sampled token, which the next step runs.
  return request_.base + static_cast<uint32_t>(request_.prompt.size() + result_.tokens.size() - 1);
}

kj::Promise<void> GenerationDriver::Prefill(size_t begin) {
  const size_t n = request_.prompt.size();
  const size_t end = std::min(n, begin + static_cast<size_t>(std::max<int64_t>(1, request_.prefill_chunk)));
  std::vector<int32_t> chunk(request_.prompt.begin() + static_cast<long>(begin), request_.prompt.begin() + static_cast<long>(end));
  const bool last = end == n;
  auto step = pipeline_.StepAsync(StepAt(session_, request_.base + static_cast<uint32_t>(begin),
                                         StageInput::Tokens(kj::mv(chunk)), last, request_.want_logits && last));
  if (!last) return step.then([this, end](StepReply&&) { return Prefill(end); });
  return step.then([this](StepReply&& reply) {
    t_prefilled_ = Now();
    result_.prefill_s = t_prefilled_ - t_start_;
    return Decode(kj::mv(reply));
  });
}

kj::Promise<void> GenerationDriver::Decode(StepReply reply) {
  if (!Accept(reply)) return Finish();
  return NextStep().then([this](StepReply&& next) {
    result_.stage_micros.resize(next.stage_micros.size());
    for (size_t s = 0; s < next.stage_micros.size(); ++s) result_.stage_micros[s] += next.stage_micros[s];
    return Decode(kj::mv(next));
  });
}

kj::Promise<StepReply> GenerationDriver::NextStep() {
  if (feeding_) return pipeline_.ExpectAsync(session_, NextPos());
  // A pipeline of one stage decodes on its own, feeding each token back,
  // and this process only reads the results: no round trip per token. The
  // node stops after an end-of-sequence token or the last one asked for.
  const int64_t more = request_.max_tokens - static_cast<int64_t>(result_.tokens.size()) - 1;
  FeedBack feed_back;
  if (pipeline_.stage_count() == 1 && !request_.want_logits && more > 0) {
    feed_back.steps = static_cast<uint32_t>(more);
    for (int64_t id : tokenizer_.eos_ids()) feed_back.stop_tokens.push_back(static_cast<int32_t>(id));
    feeding_ = feed_back.stop_tokens.size() <= wire::MAX_STOP_TOKENS;
    if (!feeding_) feed_back = FeedBack();
  }
  StageStep step = StepAt(session_, NextPos(), StageInput::Tokens({result_.tokens.back()}), true, request_.want_logits);
  step.feed_back = kj::mv(feed_back);
  return pipeline_.StepAsync(kj::mv(step));
}

bool GenerationDriver::Accept(const StepReply& reply) {
  const double now = Now();
  if (result_.tokens.empty()) {
    result_.first_token_s = now - t_start_;
  } else {
    result_.inter_token_s.push_back(now - t_last_);
  }
  t_last_ = now;
  const int32_t token = reply.token;
  result_.tokens.push_back(token);
  const bool eos = tokenizer_.IsEos(token);
  if (!eos && !stopped_) decoded_ += text_.Push(token);
  const bool length = static_cast<int64_t>(result_.tokens.size()) >= request_.max_tokens;
  if ((eos || length) && !stopped_) decoded_ += text_.Flush();  // an incomplete last character, as it is
  std::string out = Release(eos || length);
  const bool over = eos || stopped_ || length;
  if (over && !stopped_) out += Release(true);
  if (sink_ != nullptr) sink_->OnToken(token, out, reply.logits);
  if (over) result_.finish_reason = (eos || stopped_) ? "stop" : "length";
  return !over;
}

std::string GenerationDriver::Release(bool final) {
  // A stop sequence anywhere in what is not yet released ends the text there.
  size_t cut = std::string::npos;
  for (const auto& stop : request_.stop) {
    if (stop.empty()) continue;
    const size_t from = released_ >= stop.size() ? released_ - stop.size() + 1 : 0;
    const size_t at = decoded_.find(stop, from);
    if (at != std::string::npos && at >= released_) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    decoded_.resize(cut);
    final = true;
  }
  size_t safe = decoded_.size();
  if (!final) {
    // Hold back a tail that could still grow into a stop sequence.
    for (const auto& stop : request_.stop) {
      for (size_t len = std::min(stop.size() - (stop.empty() ? 0 : 1), decoded_.size() - released_); len > 0; --len) {
        if (decoded_.compare(decoded_.size() - len, len, stop, 0, len) == 0) {
          safe = std::min(safe, decoded_.size() - len);
          break;
        }
      }
    }
  }
  if (safe <= released_) return "";
  std::string out = decoded_.substr(released_, safe - released_);
  released_ = safe;
  return out;
}

kj::Promise<void> GenerationDriver::Finish() {
  finished_ = true;
  // A stop sequence ends the text; the node would go on to the token count.
  if (feeding_ && stopped_) pipeline_.HaltAsync(session_);
  result_.decode_s = Now() - t_prefilled_;
  result_.text = decoded_.substr(0, released_);
  if (!request_.run_last_token || result_.tokens.empty()) return kj::READY_NOW;
  // The last token has been sampled but not run; running it leaves the whole
  // conversation in the KV cache, so a continuation starts after it.
  return pipeline_.StepAsync(StepAt(session_, NextPos(), StageInput::Tokens({result_.tokens.back()}))).ignoreResult();
}

}  // namespace strata
