#include "node/step_batcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "node/engine/matmul.h"
#include "node/node_state.h"

namespace strata {
namespace {

// Whether a step may share a forward: a decode step, or a prompt chunk short
// enough for the kernels whose rows are independent (LlamaShard::ForwardBatch
// runs it alone where they are not).
bool Joins(const StageInput& input) { return input.positions() <= kMaxKernelRows; }

}  // namespace

StepBatcher::StepBatcher(const kj::Executor& compute, StageRuntime& runtime, kj::Timer& timer, kj::TaskSet& tasks,
                         size_t max_batch)
    : compute_(compute), runtime_(runtime), timer_(timer), tasks_(tasks), max_batch_(max_batch == 0 ? 1 : max_batch) {}

size_t StepBatcher::QueuedDecodes() const {
  std::set<uint64_t> sessions;
  for (const Waiting& w : queue_) {
    if (Joins(w.input)) sessions.insert(w.session);
  }
  return sessions.size();
}

kj::Promise<Result<StepOutcome>> StepBatcher::Submit(uint64_t session, uint32_t start, StageInput input,
                                                    bool sample) {
  auto paf = kj::newPromiseAndFulfiller<Result<StepOutcome>>();
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  queue_.push_back(Waiting{session, start, kj::mv(input), sample, kj::mv(paf.fulfiller), cancelled});
  Schedule();
  return paf.promise.attach(kj::defer([cancelled]() { cancelled->store(true); }));
}

void StepBatcher::Schedule() {
  if (running_ || scheduled_) return;
  if (gather_ > 0) {
    if (QueuedDecodes() < gather_) return;  // the window's timer launches otherwise
    gather_ = 0;
  }
  scheduled_ = true;
  tasks_.add(kj::evalLast([this]() {
    scheduled_ = false;
    Launch();
  }));
}

std::vector<StepBatcher::Waiting> StepBatcher::TakeBatch() {
  // Steps whose caller left go first, unrun.
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (!it->cancelled->load()) {
      ++it;
      continue;
    }
    spdlog::info("session={} step at {} skipped: its caller went away", HexId(it->session), it->start);
    it->fulfiller->fulfill(Status::Error("cancelled: the caller went away"));
    it = queue_.erase(it);
  }
  std::vector<Waiting> batch;
  if (queue_.empty()) return batch;
  // Decode steps and short prompt chunks share forwards. A long chunk at the
  // head goes alone after a batch (or when nothing else can go), so long
  // prefills and decodes take turns.
  const bool head_is_chunk = !Joins(queue_.front().input);
  std::set<uint64_t> seen = running_sessions_;  // a session's later steps wait for its earlier ones
  if (!(head_is_chunk && last_was_decode_)) {
    for (auto it = queue_.begin(); it != queue_.end() && batch.size() < max_batch_;) {
      const bool first_of_session = seen.insert(it->session).second;
      if (first_of_session && Joins(it->input)) {
        batch.push_back(kj::mv(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (batch.empty() && head_is_chunk) {
    batch.push_back(kj::mv(queue_.front()));
    queue_.pop_front();
  }
  last_was_decode_ = !batch.empty() && Joins(batch.front().input);
  return batch;
}

void StepBatcher::Launch() {
  if (running_) return;
  auto batch = kj::heap<std::vector<Waiting>>(TakeBatch());
  if (batch->empty()) return;
  running_ = true;
  for (const Waiting& w : *batch) running_sessions_.insert(w.session);
  std::vector<BatchedStep> steps;
  for (const Waiting& w : *batch) steps.push_back({w.session, static_cast<int64_t>(w.start), &w.input, w.sample});
  auto run = [this, steps = kj::mv(steps), batch = batch.get()]() {
    // A caller that left while the batch crossed threads: drop its step here.
    std::vector<BatchedStep> live;
    std::vector<size_t> index;
    for (size_t i = 0; i < steps.size(); ++i) {
      if ((*batch)[i].cancelled->load()) continue;
      live.push_back(steps[i]);
      index.push_back(i);
    }
    std::vector<Result<StepOutcome>> outcomes(steps.size(), Result<StepOutcome>(Status::Error("cancelled: the caller went away")));
    if (live.empty()) return outcomes;
    auto ran = runtime_.StepBatch(live);
    for (size_t k = 0; k < ran.size(); ++k) outcomes[index[k]] = kj::mv(ran[k]);
    return outcomes;
  };
  const size_t decode_rows = Joins(batch->front().input) ? batch->size() : 0;
  tasks_.add(compute_.executeAsync(kj::mv(run)).then(
      [this, batch = kj::mv(batch), decode_rows](std::vector<Result<StepOutcome>>&& outcomes) mutable {
        uint64_t micros = 0;
        for (size_t i = 0; i < batch->size(); ++i) {
          if (outcomes[i].ok()) micros = std::max(micros, outcomes[i]->micros);
          (*batch)[i].fulfiller->fulfill(kj::mv(outcomes[i]));
        }
        Done(decode_rows, micros);
      },
      [this](kj::Exception&& e) {
        Done(0, 0);
        kj::throwFatalException(kj::mv(e));
      }));
}

void StepBatcher::Done(size_t decode_rows, uint64_t micros) {
  running_ = false;
  running_sessions_.clear();
  if (decode_rows > 1 && QueuedDecodes() < decode_rows) {
    // Gather: the batch's sessions come back through the coordinator.
    gather_ = decode_rows;
    const uint64_t generation = ++gather_generation_;
    const uint64_t window_us = std::min<uint64_t>(std::max<uint64_t>(micros / 4, 200), 50000);
    tasks_.add(timer_.afterDelay(window_us * kj::MICROSECONDS).then([this, generation]() {
      if (generation != gather_generation_ || gather_ == 0) return;
      gather_ = 0;
      Schedule();
    }));
    return;
  }
  gather_ = 0;
  Schedule();
}

}  // namespace strata
