#include "node/server/hand_on_queue.h"

#include <map>

#include "base/escape.h"
#include "protocol/step.h"

namespace strata {

kj::Promise<void> ReportStepFailure(wire::StepSink::Client sink, uint32_t start, uint32_t stage,
                                    const std::string& why) {
  auto request = sink.failedRequest();
  request.setStartPos(start);
  request.setStage(stage);
  request.setMessage(EscapeText(why, 600));
  return request.send().ignoreResult().catch_([](kj::Exception&&) {});  // the coordinator is gone: nothing to tell
}

void HandOnQueue::Add(HandOn step) {
  pending_.push_back(kj::mv(step));
  if (scheduled_) return;
  scheduled_ = true;
  // Once the loop is idle: every member of the batch has been added by then.
  tasks_.add(kj::evalLast([this]() { Flush(); }));
}

void HandOnQueue::Flush() {
  scheduled_ = false;
  std::map<PeerLink*, std::vector<HandOn>> by_link;  // a setNext may have changed the link mid-batch
  for (auto& h : pending_) by_link[h.link.get()].push_back(kj::mv(h));
  pending_.clear();
  for (auto& [link, steps] : by_link) tasks_.add(Send(kj::mv(steps)));
}

kj::Promise<void> HandOnQueue::Send(std::vector<HandOn> steps) {
  PeerLink& link = *steps.front().link;
  kj::Promise<void> sent = nullptr;
  if (steps.size() == 1) {
    const HandOn& h = steps.front();
    auto request = link.upstream.submitRequest();
    request.setTicket(kj::arrayPtr(h.ticket.data(), h.ticket.size()));
    request.setHop(h.hop);
    FillStep(h.step, request.initStep());
    sent = request.send().ignoreResult();
  } else {
    auto request = link.upstream.submitBatchRequest();
    request.setHop(steps.front().hop);
    auto list = request.initSteps(static_cast<unsigned>(steps.size()));
    for (size_t i = 0; i < steps.size(); ++i) {
      list[i].setTicket(kj::arrayPtr(steps[i].ticket.data(), steps[i].ticket.size()));
      FillStep(steps[i].step, list[i].initStep());
    }
    sent = request.send().ignoreResult();
  }
  const std::string address = link.address;
  auto members = kj::heap<std::vector<HandOn>>(kj::mv(steps));  // the links ride along until the send is done
  auto& ref = *members;
  return timer_.timeoutAfter(timeout_ms_ * kj::MILLISECONDS, kj::mv(sent))
      .catch_([&ref, address](kj::Exception&& e) -> kj::Promise<void> {
        kj::Vector<kj::Promise<void>> reports;
        for (HandOn& h : ref) {
          reports.add(ReportStepFailure(h.sink, h.step.start, h.stage,
                                        "next stage at " + EscapeText(address) + " failed: " + e.getDescription().cStr()));
        }
        return kj::joinPromises(reports.releaseAsArray());
      })
      .attach(kj::mv(members));
}

}  // namespace strata
