#pragma once
// SubmitQueue: steps on their way to a pipeline's first stage. Every step
// submitted in one event-loop turn — the next tokens of every session whose
// result just came back — goes in one Control.submitBatch message, each
// member named by its Session capability; a lone step goes as
// Session.submit. The first stage so receives a batch whole and computes it
// in one forward (continuous batching).
//
// Not thread-safe: the coordinator's event loop only.
#include <kj/async.h>

#include <cstdint>
#include <vector>

#include "strata.capnp.h"

namespace strata {

// Decoding on a one-stage pipeline without a round trip per token: the
// node feeds each sampled token back as its next step, `steps` more times,
// ending early after a stop token (wire Step.feedBack).
struct FeedBack {
  uint32_t steps = 0;
  std::vector<int32_t> stop_tokens;
};

// A first-stage step of `tokens` at [start_pos, start_pos + n).
void FillFirstStep(wire::Step::Builder step, uint32_t start_pos, const std::vector<int32_t>& tokens,
                   bool want_logits, bool sample, const FeedBack& feed_back = {});

class SubmitQueue {
 public:
  // `control` reaches the first stage's node, which issued every session
  // submitted here.
  explicit SubmitQueue(wire::Control::Client control) : control_(kj::mv(control)), tasks_(errors_) {}

  // Resolves once the first stage has taken the step, or fails naming why.
  kj::Promise<void> Submit(wire::Session::Client session, uint32_t start_pos, std::vector<int32_t> tokens,
                           bool want_logits, bool sample, FeedBack feed_back = {});

 private:
  struct Queued {
    wire::Session::Client session;
    uint32_t start_pos = 0;
    std::vector<int32_t> tokens;
    bool want_logits = false, sample = false;
    FeedBack feed_back;
    kj::Own<kj::PromiseFulfiller<void>> taken;
  };
  void Flush();

  struct Errors final : kj::TaskSet::ErrorHandler {
    void taskFailed(kj::Exception&&) override {}  // each member's promise carries its own failure
  };
  wire::Control::Client control_;
  std::vector<Queued> queued_;
  bool scheduled_ = false;  // a Flush is queued (evalLast)
  Errors errors_;
  kj::TaskSet tasks_;       // the queued Flush and the sends: cancelled with the queue
};

}  // namespace strata
