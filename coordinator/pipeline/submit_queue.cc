#include "coordinator/pipeline/submit_queue.h"

namespace strata {

void FillFirstStep(wire::Step::Builder step, uint32_t start_pos, const std::vector<int32_t>& tokens,
                   bool want_logits, bool sample, const FeedBack& feed_back) {
  step.setStartPos(start_pos);
  step.setWantLogits(want_logits);
  step.setSample(sample);
  auto ids = step.initInput().initTokens(static_cast<unsigned>(tokens.size()));
  for (size_t i = 0; i < tokens.size(); ++i) ids.set(static_cast<unsigned>(i), static_cast<uint32_t>(tokens[i]));
  if (feed_back.steps == 0) return;
  step.setFeedBack(feed_back.steps);
  auto stops = step.initStopTokens(static_cast<unsigned>(feed_back.stop_tokens.size()));
  for (size_t i = 0; i < feed_back.stop_tokens.size(); ++i) {
    stops.set(static_cast<unsigned>(i), static_cast<uint32_t>(feed_back.stop_tokens[i]));
  }
}

kj::Promise<void> SubmitQueue::Submit(wire::Session::Client session, uint32_t start_pos, std::vector<int32_t> tokens,
                                      bool want_logits, bool sample, FeedBack feed_back) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  queued_.push_back({kj::mv(session), start_pos, kj::mv(tokens), want_logits, sample, kj::mv(feed_back),
                     kj::mv(paf.fulfiller)});
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
    FillFirstStep(request.initStep(), q.start_pos, q.tokens, q.want_logits, q.sample, q.feed_back);
    sent = request.send().ignoreResult();
  } else {
    auto request = control_.submitBatchRequest();
    auto list = request.initSteps(static_cast<unsigned>(batch->size()));
    for (size_t i = 0; i < batch->size(); ++i) {
      Queued& q = (*batch)[i];
      list[static_cast<unsigned>(i)].setSession(q.session);
      FillFirstStep(list[static_cast<unsigned>(i)].initStep(), q.start_pos, q.tokens, q.want_logits, q.sample,
                    q.feed_back);
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
