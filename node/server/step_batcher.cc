#include "node/server/step_batcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "node/engine/matmul.h"
#include "node/server/node_state.h"

namespace strata {
namespace {

// Whether a step may share a forward: a decode step, or a prompt chunk short
// enough for the kernels whose rows are independent (LlamaShard::ForwardBatch
// runs it alone where they are not).
bool Joins(const StageInput& input) { return input.positions() <= kMaxKernelRows; }

}  // namespace

StepBatcher::StepBatcher(const ComputeThread& compute, StageRuntime& runtime, kj::Timer& timer,
                         kj::TaskSet::ErrorHandler& errors, size_t max_batch)
    : compute_(compute), runtime_(runtime), timer_(timer), max_batch_(max_batch == 0 ? 1 : max_batch), tasks_(errors) {
  WatchMailbox();
}

size_t StepBatcher::QueuedDecodes() const {
  std::set<uint64_t> sessions;
  for (const Waiting& w : queue_) {
    if (Joins(w.step.input)) sessions.insert(w.step.session);
  }
  return sessions.size();
}

void StepBatcher::Enqueue(Waiting w) {
  queue_.push_back(kj::mv(w));
  queued_.store(queue_.size(), std::memory_order_relaxed);
  Schedule();
}

kj::Promise<Result<StepOutcome>> StepBatcher::Submit(StageStep step, std::shared_ptr<const std::atomic<bool>> closed) {
  auto paf = kj::newPromiseAndFulfiller<Result<StepOutcome>>();
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  Enqueue(Waiting{kj::mv(step), kj::mv(paf.fulfiller), cancelled, nullptr, kj::mv(closed)});
  return paf.promise.attach(kj::defer([cancelled]() { cancelled->store(true); }));
}

void StepBatcher::SubmitRun(StageStep step, std::shared_ptr<StepRun> run) {
  step.sample = true;
  Enqueue(Waiting{kj::mv(step), {}, std::make_shared<std::atomic<bool>>(false), kj::mv(run), nullptr});
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
  // Steps whose caller left, or whose session closed, go first, unrun.
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->run != nullptr || !it->Stopped()) {
      ++it;
      continue;
    }
    const char* why = it->cancelled->load() ? "its caller went away" : "its session closed";
    spdlog::info("session={} step at {} skipped: {}", HexId(it->step.session), it->step.start, why);
    it->fulfiller->fulfill(Status::Error(std::string("cancelled: ") + why));
    it = queue_.erase(it);
  }
  // So do runs that were halted or closed while their next step waited.
  for (auto it = queue_.begin(); it != queue_.end();) {
    it = it->run != nullptr && !it->run->live() ? queue_.erase(it) : std::next(it);
  }
  std::vector<Waiting> batch;
  if (queue_.empty()) return batch;
  // Decode steps and short prompt chunks share forwards. A long chunk at the
  // head goes alone after a batch (or when nothing else can go), so long
  // prefills and decodes take turns.
  const bool head_is_chunk = !Joins(queue_.front().step.input);
  std::set<uint64_t> seen = running_sessions_;  // a session's later steps wait for its earlier ones
  if (!(head_is_chunk && last_was_decode_)) {
    for (auto it = queue_.begin(); it != queue_.end() && batch.size() < max_batch_;) {
      const bool first_of_session = seen.insert(it->step.session).second;
      if (first_of_session && Joins(it->step.input)) {
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
  last_was_decode_ = !batch.empty() && Joins(batch.front().step.input);
  queued_.store(queue_.size(), std::memory_order_relaxed);
  return batch;
}

StepBatcher::Ran StepBatcher::RunBatch(std::vector<Waiting>& batch) {
  Ran ran;
  ran.outcomes.resize(batch.size(), Result<StepOutcome>(Status::Error("cancelled: the caller went away")));
  ran.next.resize(batch.size());
  // A caller that left, or a run that stopped, while the batch crossed
  // threads: its step is dropped here.
  std::vector<const StageStep*> live;
  std::vector<size_t> index;  // live[k] is batch[index[k]]
  for (size_t i = 0; i < batch.size(); ++i) {
    const Waiting& w = batch[i];
    if (w.Stopped()) continue;
    live.push_back(&w.step);
    index.push_back(i);
  }
  while (!live.empty()) {
    auto outcomes = runtime_.StepBatch(live);
    for (size_t k = 0; k < outcomes.size(); ++k) {
      Waiting& w = batch[index[k]];
      if (outcomes[k].ok()) ran.micros = std::max(ran.micros, outcomes[k]->micros);
      if (w.run == nullptr) {
        ran.outcomes[index[k]] = kj::mv(outcomes[k]);
        continue;
      }
      StageStep next = StepAt(w.step.session, w.step.start + static_cast<uint32_t>(w.step.input.positions()), {},
                              true, w.step.want_logits);
      const bool more = outcomes[k].ok() && w.run->Next(*outcomes[k], &next.input);
      Post({w.run, w.step.start, kj::mv(outcomes[k])});
      if (more) ran.next[index[k]] = Waiting{kj::mv(next), {}, w.cancelled, w.run, w.closed};
    }
    // A run alone goes on here, step after step, while nothing else waits
    // for the thread; otherwise its next step queues for the next batch.
    live.clear();
    if (batch.size() == 1 && ran.next[0] && queued_.load(std::memory_order_relaxed) == 0 &&
        !compute_.others_waiting()) {
      batch[0] = kj::mv(*ran.next[0]);
      ran.next[0].reset();
      live.push_back(&batch[0].step);
      index = {0};
    }
  }
  return ran;
}

void StepBatcher::Post(Posted p) {
  auto lock = mailbox_.lockExclusive();
  lock->posted.push_back(kj::mv(p));
  if (lock->wake.get() != nullptr) {
    lock->wake->fulfill();
    lock->wake = nullptr;
  }
}

void StepBatcher::WatchMailbox() {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    auto lock = mailbox_.lockExclusive();
    if (lock->posted.empty()) {
      lock->wake = kj::mv(paf.fulfiller);
    } else {
      paf.fulfiller->fulfill();
    }
  }
  tasks_.add(paf.promise.then([this]() {
    DeliverPosted();
    WatchMailbox();
  }));
}

void StepBatcher::DeliverPosted() {
  std::vector<Posted> posted;
  posted.swap(mailbox_.lockExclusive()->posted);
  for (Posted& p : posted) p.run->Deliver(p.start, kj::mv(p.outcome));
}

void StepBatcher::Launch() {
  if (running_) return;
  auto batch = std::make_shared<std::vector<Waiting>>(TakeBatch());
  if (batch->empty()) return;
  running_ = true;
  for (const Waiting& w : *batch) running_sessions_.insert(w.step.session);
  const size_t decode_rows = Joins(batch->front().step.input) ? batch->size() : 0;
  tasks_.add(compute_.Run([this, batch]() { return RunBatch(*batch); })
                 .then(
                     [this, batch, decode_rows](Ran&& ran) {
                       DeliverPosted();  // the runs' outcomes so far, in order
                       for (size_t i = 0; i < batch->size(); ++i) {
                         Waiting& w = (*batch)[i];
                         if (w.run == nullptr) w.fulfiller->fulfill(kj::mv(ran.outcomes[i]));
                       }
                       for (auto& next : ran.next) {
                         if (next) Enqueue(kj::mv(*next));
                       }
                       Done(decode_rows, ran.micros);
                     },
                     [this, batch](kj::Exception&& e) {
                       DeliverPosted();
                       for (Waiting& w : *batch) {
                         if (w.run != nullptr) w.run->Deliver(w.step.start, Status::Error(e.getDescription().cStr()));
                       }
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
