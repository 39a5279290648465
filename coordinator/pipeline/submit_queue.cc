#include "coordinator/pipeline/submit_queue.h"

namespace strata {

kj::Promise<void> SubmitQueue::Submit(wire::Session::Client session, StageStep step) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  queued_.push_back({kj::mv(session), kj::mv(step), kj::mv(paf.fulfiller)});
  if (!scheduled_) {
    scheduled_ = true;
    // Once the loop is idle: every session whose token arrived has submitted by then.
    tasks_.add(kj::evalLast([this]() { Flush(); }));
  }
  return kj::mv(paf.promise);
}

void SubmitQueue::Flush() {
  scheduled_ = false;
  auto batch = kj::heap<std::vector<Queued>>(kj::mv(queued_));
  queued_.clear();
  if (batch->empty()) return;
  kj::Promise<void> sent = nullptr;
  if (batch->size() == 1) {
    Queued& q = batch->front();
    auto request = q.session.submitRequest();
    FillStep(q.step, request.initStep());
    sent = request.send().ignoreResult();
  } else {
    auto request = control_.submitBatchRequest();
    auto list = request.initSteps(static_cast<unsigned>(batch->size()));
    for (size_t i = 0; i < batch->size(); ++i) {
      Queued& q = (*batch)[i];
      list[static_cast<unsigned>(i)].setSession(q.session);
      FillStep(q.step, list[static_cast<unsigned>(i)].initStep());
    }
    sent = request.send().ignoreResult();
  }
  auto& members = *batch;
  tasks_.add(sent.then(
                     [&members]() {
                       for (auto& q : members) q.taken->fulfill();
                     },
                     [&members](kj::Exception&& e) {
                       for (auto& q : members) q.taken->reject(kj::cp(e));
                     })
                 .attach(kj::mv(batch)));
}

}  // namespace strata
