#pragma once
// StepBatcher: the node's queue of validated steps waiting for the compute
// thread, and continuous batching over it. While the compute thread runs a
// forward, new steps wait here; when it is free, every waiting decode step
// (one position each, of different sessions) goes in one forward, up to
// max_batch. So sessions join and leave the batch at token boundaries, and
// the weights are read once per forward, not once per session.
//
// Rules that keep it fair and exact:
// - A session's steps run in the order they arrived: a step waits while an
//   earlier step of its session is queued or running.
// - A long prompt chunk runs alone, with the single forward; after a batch,
//   a waiting long chunk goes next, so prefill is never starved, and
//   decodes run between the chunks of a long prompt.
// - A launch waits until the event loop has nothing else to do
//   (kj::evalLast), so steps that arrived together go in together.
// - After a decode batch, the next one waits until as many decode steps are
//   queued as that batch had, or for a window of a quarter of its compute
//   time (at most 50 ms): its sessions' next steps are on their way back
//   through the coordinator, and launching at once would split the batch
//   in two halves that then alternate for good.
// - A step whose caller went away before it started never runs.
//
// Not thread-safe: lives on the node's event-loop thread; the runtime is
// touched only inside compute.executeAsync.
#include <kj/async.h>
#include <kj/timer.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>

#include "node/stage_runtime.h"

namespace strata {

class StepBatcher {
 public:
  // `compute`, `runtime` and `tasks` are borrowed and outlive the batcher.
  StepBatcher(const kj::Executor& compute, StageRuntime& runtime, kj::Timer& timer, kj::TaskSet& tasks,
              size_t max_batch);

  // Queues a validated step; the promise gives its outcome. Dropping the
  // promise cancels the step if it has not started.
  kj::Promise<Result<StepOutcome>> Submit(uint64_t session, uint32_t start, StageInput input, bool sample);

 private:
  struct Waiting {
    uint64_t session = 0;
    uint32_t start = 0;
    StageInput input;
    bool sample = false;
    kj::Own<kj::PromiseFulfiller<Result<StepOutcome>>> fulfiller;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };
  void Schedule();  // a launch once the event loop is idle (unless gathering)
  void Done(size_t decode_rows, uint64_t micros);  // a batch came back
  size_t QueuedDecodes() const;
  void Launch();    // the next batch to the compute thread, if it is free
  std::vector<Waiting> TakeBatch();

  const kj::Executor& compute_;
  StageRuntime& runtime_;
  kj::Timer& timer_;
  kj::TaskSet& tasks_;
  const size_t max_batch_;
  size_t gather_ = 0;             // >0: waiting for this many queued decode steps (or the window)
  uint64_t gather_generation_ = 0;  // a window's timer does nothing once a later one started
  std::deque<Waiting> queue_;
  std::set<uint64_t> running_sessions_;  // sessions with a step in the running batch
  bool running_ = false;                 // a batch is on the compute thread
  bool scheduled_ = false;               // a Launch is queued (evalLast)
  bool last_was_decode_ = false;         // the running/last batch was decodes: a chunk goes next
};

}  // namespace strata
