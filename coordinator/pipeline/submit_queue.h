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

#include "protocol/step.h"
#include "strata.capnp.h"

namespace strata {

class SubmitQueue {
 public:
  // `control` reaches the first stage's node, which issued every session
  // submitted here.
  explicit SubmitQueue(wire::Control::Client control) : control_(kj::mv(control)), tasks_(errors_) {}

  // Resolves once the first stage has taken the step, or fails naming why.
  // `step` carries token ids; `session` names it on the first stage.
  kj::Promise<void> Submit(wire::Session::Client session, StageStep step);

 private:
  struct Queued {
    wire::Session::Client session;
    StageStep step;
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
