#pragma once
// HandOnQueue: submitted steps this stage has computed, on their way to the
// next stage. Every step handed on in one event-loop turn — the members of
// one batch, whose outcomes arrive together — goes in one
// Upstream.submitBatch message (a lone step as Upstream.submit), so the next
// stage receives the batch whole and computes it whole. A send that fails is
// reported to each member's session sink, naming the next stage.
//
// Not thread-safe: the node's event-loop thread only.
#include <kj/async.h>
#include <kj/timer.h>

#include <cstdint>
#include <string>
#include <vector>

#include "node/engine/llama_shard.h"
#include "protocol/host_tensor.h"
#include "protocol/peer_link.h"
#include "strata.capnp.h"

namespace strata {

// One step for the next stage.
struct HandOn {
  kj::Own<PeerLink> link;            // the next stage, as linked when the step was taken
  Bytes ticket;                      // the next stage's ticket for the session
  uint32_t hop = 0;                  // the next stage's index
  StageStep step;                    // its input: this stage's output [tokens, hidden]
  wire::StepSink::Client sink = nullptr;  // the coordinator's, for failures
  uint32_t stage = 0;                // this stage's index, for failure reports
};

// Tells a session's sink that its step failed at `stage`; never fails itself.
kj::Promise<void> ReportStepFailure(wire::StepSink::Client sink, uint32_t start, uint32_t stage,
                                    const std::string& why);

class HandOnQueue {
 public:
  // `timer` and `errors` are borrowed; a send waits at most `timeout_ms`.
  // Its sends are its own tasks: they go when it goes.
  HandOnQueue(kj::Timer& timer, kj::TaskSet::ErrorHandler& errors, uint32_t timeout_ms)
      : timer_(timer), timeout_ms_(timeout_ms), tasks_(errors) {}

  void Add(HandOn step);

 private:
  void Flush();
  // Sends steps that share one link; `steps` is not empty.
  kj::Promise<void> Send(std::vector<HandOn> steps);

  kj::Timer& timer_;
  const uint32_t timeout_ms_;
  std::vector<HandOn> pending_;
  bool scheduled_ = false;  // a Flush is queued (evalLast)
  kj::TaskSet tasks_;       // last: destroyed first, before what its tasks use
};

}  // namespace strata
