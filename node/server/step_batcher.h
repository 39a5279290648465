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
// - A run (a one-stage pipeline feeding its tokens back) makes each next
//   step on the compute thread from the outcome before, and goes on there,
//   one forward after another, while nothing else waits for the thread: no
//   trip through the event loop per token. Its outcomes cross to the event
//   loop as they come. When another step or call waits, the run's next step
//   joins the queue like any other and shares the next forward.
//
// Not thread-safe: lives on the node's event-loop thread; the runtime is
// touched only inside compute.Run.
#include <kj/async.h>
#include <kj/mutex.h>
#include <kj/timer.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "node/server/compute_thread.h"
#include "node/server/stage_runtime.h"

namespace strata {

// Steps of one session, each made from the outcome of the one before (node/
// stage_step's fed-back decoding). Each step is one position after the last.
class StepRun {
 public:
  virtual ~StepRun() = default;
  // Any thread: false once the run must stop (halted, closed, let go).
  virtual bool live() const = 0;
  // Compute thread: the next step's input after `outcome`, or false where
  // the run ends.
  virtual bool Next(const StepOutcome& outcome, StageInput* next) = 0;
  // Event loop: every step's outcome at its start position, in order, the
  // first step's included.
  virtual void Deliver(uint32_t start, Result<StepOutcome>&& outcome) = 0;
};

class StepBatcher {
 public:
  // `compute`, `runtime` and `errors` are borrowed and outlive the batcher.
  // Its own tasks (a batch on the compute thread, a gathering window) are
  // its own: they go when it goes.
  StepBatcher(const ComputeThread& compute, StageRuntime& runtime, kj::Timer& timer,
              kj::TaskSet::ErrorHandler& errors, size_t max_batch);

  // Queues a validated step; the promise gives its outcome. Dropping the
  // promise, or `closed` (the session's flag, may be null) becoming true,
  // cancels the step if it has not started.
  kj::Promise<Result<StepOutcome>> Submit(StageStep step, std::shared_ptr<const std::atomic<bool>> closed = nullptr);
  // Queues the first step of a run (it samples); its outcomes and those of
  // the steps it makes go to run.Deliver.
  void SubmitRun(StageStep step, std::shared_ptr<StepRun> run);

 private:
  struct Waiting {
    StageStep step;
    kj::Own<kj::PromiseFulfiller<Result<StepOutcome>>> fulfiller;  // null for a run's step
    std::shared_ptr<std::atomic<bool>> cancelled;
    std::shared_ptr<StepRun> run;  // or null
    std::shared_ptr<const std::atomic<bool>> closed;  // the session's; or null
    // Any thread: the step must not start (its caller left, its session
    // closed, or its run stopped).
    bool Stopped() const {
      return cancelled->load() || (closed != nullptr && closed->load()) || (run != nullptr && !run->live());
    }
  };
  // What a batch leaves behind: each plain step's outcome, each run's next
  // step (its outcomes went to the mailbox).
  struct Ran {
    std::vector<Result<StepOutcome>> outcomes;      // [batch]; a run member's is empty
    std::vector<std::optional<Waiting>> next;       // [batch]: a run's next step, to queue
    uint64_t micros = 0;                            // the last forward's
  };
  struct Posted {
    std::shared_ptr<StepRun> run;
    uint32_t start = 0;
    Result<StepOutcome> outcome;
  };
  struct Mailbox {  // a run's outcomes, from the compute thread to the event loop
    std::vector<Posted> posted;
    kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake;  // null once fulfilled, until re-armed
  };
  void Schedule();  // a launch once the event loop is idle (unless gathering)
  void Done(size_t decode_rows, uint64_t micros);  // a batch came back
  size_t QueuedDecodes() const;
  void Launch();    // the next batch to the compute thread, if it is free
  std::vector<Waiting> TakeBatch();
  void Enqueue(Waiting w);
  // Compute thread: the batch's forward, then each run member's next steps.
  Ran RunBatch(std::vector<Waiting>& batch);
  void Post(Posted p);    // compute thread
  void WatchMailbox();    // event loop: delivers posted outcomes as they come
  void DeliverPosted();   // event loop

  const ComputeThread& compute_;
  StageRuntime& runtime_;
  kj::Timer& timer_;
  const size_t max_batch_;
  size_t gather_ = 0;             // >0: waiting for this many queued decode steps (or the window)
  uint64_t gather_generation_ = 0;  // a window's timer does nothing once a later one started
  std::deque<Waiting> queue_;
  std::set<uint64_t> running_sessions_;  // sessions with a step in the running batch
  bool running_ = false;                 // a batch is on the compute thread
  bool scheduled_ = false;               // a Launch is queued (evalLast)
  bool last_was_decode_ = false;         // the running/last batch was decodes: a chunk goes next
  std::atomic<size_t> queued_{0};        // queue_.size(), for a run on the compute thread
  kj::MutexGuarded<Mailbox> mailbox_;
  kj::TaskSet tasks_;  // last: destroyed first, before what its tasks use
};

}  // namespace strata
