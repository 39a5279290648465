#include "node/server/stage_step.h"

#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

#include "base/escape.h"
#include "node/server/hand_on_queue.h"
#include "protocol/rpc_error.h"
#include "protocol/tensor_codec.h"

namespace strata {
namespace {

// Positions [start, start + n) must fit the session: checked before a byte
// of the input is copied.
void CheckPositions(uint64_t start, uint64_t n, const SessionEntry& session) {
  if (n == 0) throw RpcError("step: an empty step");
  if (start > session.capacity || n > session.capacity - start) {
    throw RpcError("step: positions [" + std::to_string(start) + ", " + std::to_string(start + n) +
                 ") exceed the session's capacity of " + std::to_string(session.capacity) + " tokens");
  }
}

// Validates a step's input against this stage and copies it out.
StageInput TakeInput(const LoadedShard& shard, const SessionEntry& session, wire::Step::Reader step) {
  StageInput input;
  auto in = step.getInput();
  if (in.isTokens()) {
    if (!shard.is_first()) throw RpcError("step: this stage takes hidden states, got token ids");
    auto tokens = in.getTokens();
    CheckPositions(step.getStartPos(), tokens.size(), session);
    input.tokens.reserve(tokens.size());
    for (uint32_t t : tokens) {
      if (t >= static_cast<uint64_t>(shard.vocab_size)) {
        throw RpcError("step: token id " + std::to_string(t) + " is outside the vocabulary of " +
                     std::to_string(shard.vocab_size));
      }
      input.tokens.push_back(static_cast<int32_t>(t));
    }
    return input;
  }
  if (shard.is_first()) throw RpcError("step: the first stage takes token ids, got hidden states");
  auto hidden = in.getHidden();
  auto shape = hidden.getShape();
  if (shape.size() != 2 || shape[1] != static_cast<uint64_t>(shard.hidden_size)) {
    throw RpcError("step: hidden states must be [tokens, " + std::to_string(shard.hidden_size) + "]");
  }
  CheckPositions(step.getStartPos(), shape[0], session);
  std::string error;
  if (!DecodeTensor(hidden, &input.hidden, &error)) throw RpcError("step: bad hidden states: " + error);
  if (input.hidden.dtype != shard.dtype) {
    throw RpcError(std::string("forward: hidden states must be ") + DTypeName(shard.dtype) + ", got " +
                 DTypeName(input.hidden.dtype));
  }
  if (!AllFinite(input.hidden)) throw RpcError("step: hidden states hold NaN or infinite values");
  return input;
}

void FillLast(const StepOutcome& step, bool want_logits, wire::StepResult::Builder out) {
  out.setToken(static_cast<uint32_t>(std::max(step.token, 0)));
  if (want_logits) {
    HostTensor logits;
    logits.dtype = TensorDType::kF32;
    logits.shape = {static_cast<int64_t>(step.output.logits.size())};
    const auto* bytes = reinterpret_cast<const uint8_t*>(step.output.logits.data());
    logits.data.assign(bytes, bytes + step.output.logits.size() * sizeof(float));
    EncodeTensor(logits, out.initLogits());
  }
  out.initStageMicros(1).set(0, step.micros);
}


// A step that passed every check, ready for the compute thread.
struct Prepared {
  StageStep step;
  SessionEntry session;
  kj::Own<PeerLink> link;             // the next stage (null on the last)
  uint32_t end = 0;                   // the step's positions are [step.start, end)
};

// Feedback is checked with the rest: a one-stage pipeline, sampling, and
// every fed-back position inside the session's capacity.
void TakeFeedBack(const NodeState& state, const LoadedShard& shard, wire::Step::Reader step, Prepared* p) {
  FeedBack& feed_back = p->step.feed_back;
  feed_back.steps = step.getFeedBack();
  auto stops = step.getStopTokens();
  if (feed_back.steps == 0) return;
  if (state.stage_count != 1 || !shard.is_first() || !shard.is_last()) {
    throw RpcError("feedBack: only a pipeline of one stage feeds its tokens back; this one has " +
                 std::to_string(state.stage_count) + " stages");
  }
  if (!p->step.sample) throw RpcError("feedBack: the step does not sample a token to feed back");
  const uint64_t end = p->end;
  if (feed_back.steps > p->session.capacity - end) {
    throw RpcError("feedBack: " + std::to_string(feed_back.steps) + " more positions from " + std::to_string(end) +
                 " exceed the session's capacity of " + std::to_string(p->session.capacity) + " tokens");
  }
  if (stops.size() > wire::MAX_STOP_TOKENS) {
    throw RpcError("feedBack: over " + std::to_string(wire::MAX_STOP_TOKENS) + " stop tokens");
  }
  for (uint32_t t : stops) {  // one outside the vocabulary is never sampled: it can be left out
    if (t < static_cast<uint64_t>(shard.vocab_size)) feed_back.stop_tokens.push_back(static_cast<int32_t>(t));
  }
}

Prepared Prepare(NodeState* state, const Bytes& ticket, uint32_t hop, wire::Step::Reader step) {
  const LoadedShard* shard = nullptr;
  KJ_IF_MAYBE(s, state->shard) { shard = s; }
  if (shard == nullptr) throw RpcError("step: no shard is loaded on node " + state->options().name);
  auto found = state->sessions.find(ticket);
  if (found == state->sessions.end()) throw RpcError("step: no such session on this node (closed, or never opened)");
  Prepared p;
  p.session = found->second;
  // The hop count: a step reaches stage i only as hop i, so a pipeline wired
  // into a loop, or a peer replaying a step, is refused rather than run again.
  if (hop != state->stage_index) {
    throw RpcError("step: a step for stage " + std::to_string(hop) + " reached stage " +
                 std::to_string(state->stage_index) + " of " + std::to_string(state->stage_count));
  }
  const bool has_next = state->stage_index + 1 < state->stage_count;
  if (has_next) {
    KJ_IF_MAYBE(n, state->next) { p.link = kj::addRef(**n); }
    else throw RpcError("step: stage " + std::to_string(state->stage_index) + " has no next stage linked");
  } else if (!shard->is_last()) {
    throw RpcError("step: this stage is not the last and has no next stage");
  }
  p.step.session = p.session.id;
  p.step.input = TakeInput(*shard, p.session, step);
  p.step.start = step.getStartPos();
  p.step.want_logits = step.getWantLogits();
  p.step.sample = step.getSample();
  p.end = p.step.start + static_cast<uint32_t>(p.step.input.positions());  // CheckPositions: within capacity
  TakeFeedBack(*state, *shard, step, &p);
  return p;
}

}  // namespace

namespace {

// The result of a last stage's step to the coordinator.
kj::Promise<void> SendDone(wire::StepSink::Client& sink, uint32_t start, const StepOutcome& step, bool want_logits) {
  auto done = sink.doneRequest();
  done.setStartPos(start);
  FillLast(step, want_logits, done.initResult());
  return done.send().ignoreResult().catch_([](kj::Exception&&) {});
}

// A one-stage pipeline decoding on its own: each sampled token is the next
// step's input, one position on, until the count is spent, a stop token
// comes, or the session is halted, closed or let go. The compute thread
// makes the steps (StepBatcher); every result goes to the session's sink.
class FeedBackRun final : public StepRun {
 public:
  // `state` owns the batcher that holds the run, so it outlives it.
  FeedBackRun(NodeState& state, const Prepared& p)
      : state_(state), sink_(p.session.sink), first_(p.step.start), want_logits_(p.step.want_logits), left_(p.step.feed_back.steps),
        stop_tokens_(p.step.feed_back.stop_tokens), halts_(p.session.halts), epoch_(halts_->load()) {}

  bool live() const override { return halts_->load() == epoch_; }

  bool Next(const StepOutcome& outcome, StageInput* next) override {
    if (left_ == 0 || !live()) return false;
    if (std::find(stop_tokens_.begin(), stop_tokens_.end(), outcome.token) != stop_tokens_.end()) return false;
    --left_;
    next->tokens = {outcome.token};  // sampled from the vocabulary: inside it
    return true;
  }

  void Deliver(uint32_t start, Result<StepOutcome>&& outcome) override {
    if (!outcome.ok()) {
      if (start != first_ && !live()) return;  // a later step of a run that stopped meanwhile
      state_.tasks().add(ReportStepFailure(*sink_, start, state_.stage_index, outcome.status().message()));
      return;
    }
    state_.tasks().add(SendDone(*sink_, start, *outcome, want_logits_));
  }

 private:
  NodeState& state_;
  const std::shared_ptr<wire::StepSink::Client> sink_;  // set: Submit checked
  const uint32_t first_;  // the run's first position
  const bool want_logits_;
  uint32_t left_;  // steps still to make; compute thread only
  const std::vector<int32_t> stop_tokens_;
  const std::shared_ptr<std::atomic<uint64_t>> halts_;
  const uint64_t epoch_;  // the halt count when the run began
};

// The step's input as it will be held, known before it is copied.
uint64_t InputBytes(wire::Step::Reader step) {
  auto in = step.getInput();
  return in.isTokens() ? uint64_t{in.getTokens().size()} * sizeof(int32_t) : in.getHidden().getData().size();
}

// The step's share of the node's queue (node/server/step_quota), taken
// before anything of it is copied.
std::unique_ptr<StepQuota::Hold> TakeQuota(NodeState& state, const Bytes& ticket, wire::Step::Reader step) {
  auto found = state.sessions.find(ticket);
  if (found == state.sessions.end()) throw RpcError("step: no such session on this node (closed, or never opened)");
  auto hold = state.quota().Take(found->second.id, InputBytes(step));
  if (!hold.ok()) throw RpcError(hold.status().message());
  return std::move(hold.value());
}

}  // namespace

kj::Promise<void> SubmitStep(kj::Own<NodeState> ref, const Bytes& ticket, uint32_t hop, wire::Step::Reader step) {
  NodeState* state = ref.get();
  auto hold = TakeQuota(*state, ticket, step);
  auto p = kj::heap<Prepared>(Prepare(state, ticket, hop, step));
  if (!p->session.sink) throw RpcError("submit: the session has no sink (setSink first)");
  wire::StepSink::Client sink = *p->session.sink;
  const uint64_t id = p->session.id;
  const uint32_t stage = state->stage_index;
  state->runtime().Prefetch(id);
  if (p->step.feed_back.steps > 0) {
    auto run = std::make_shared<FeedBackRun>(*state, *p);
    state->batcher().SubmitRun(kj::mv(p->step), kj::mv(run));
    return kj::READY_NOW;
  }
  // The step goes to the batcher; what the next stage needs of it besides
  // its input stays here.
  StageStep onward = StepAt(id, p->step.start, {}, p->step.sample, p->step.want_logits);
  // Batched with other sessions' steps (node/server/step_batcher); a step
  // whose session closes before it starts never starts.
  auto work = state->batcher().Submit(kj::mv(p->step), p->session.closed).attach(kj::mv(hold))
      .then([ref = kj::addRef(*ref), p = kj::mv(p), onward = kj::mv(onward), hop, sink,
             stage](Result<StepOutcome>&& step) mutable -> kj::Promise<void> {
        if (!step.ok()) return ReportStepFailure(sink, onward.start, stage, step.status().message());
        // The last stage: the result goes straight to the coordinator.
        if (p->link.get() == nullptr) return SendDone(sink, onward.start, *step, onward.want_logits);
        // With the other members of its batch, in one message (node/server/hand_on_queue).
        HandOn h;
        h.link = kj::mv(p->link);
        h.ticket = p->session.downstream_ticket;
        h.hop = hop + 1;
        h.step = kj::mv(onward);
        h.step.input.hidden = kj::mv(step->output.hidden);
        h.sink = sink;
        h.stage = stage;
        ref->hand_on().Add(kj::mv(h));
        return kj::READY_NOW;
      });
  state->tasks().add(kj::mv(work));
  return kj::READY_NOW;
}


void SubmitBatchMember(NodeState& state, const Bytes& ticket, uint32_t hop, wire::Step::Reader step) {
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { state.tasks().add(SubmitStep(kj::addRef(state), ticket, hop, step)); })) {
    auto found = state.sessions.find(ticket);
    if (found == state.sessions.end() || !found->second.sink) {
      // Nobody to tell: a stale or guessed ticket.
      if (state.refusals().ShouldLog("batch member")) {
        spdlog::warn("a batch member was refused: {}", EscapeText(e->getDescription().cStr(), 200));
      }
      return;
    }
    state.tasks().add(ReportStepFailure(*found->second.sink, step.getStartPos(), state.stage_index,
                                        e->getDescription().cStr()));
  }
}

}  // namespace strata
