#include "coordinator/api/admission.h"

namespace strata {

kj::Maybe<kj::Promise<void>> Admission::Admit(int64_t need) {
  if (queue_.empty() && Fits(need)) {
    ++running_;
    kv_reserved_ += need;
    return kj::Promise<void>(kj::READY_NOW);
  }
  if (waiting() >= max_queue_) return nullptr;
  auto paf = kj::newPromiseAndFulfiller<void>();
  queue_.push_back({kj::mv(paf.fulfiller), need});
  return kj::mv(paf.promise);
}

void Admission::Release(int64_t need) {
  --running_;
  kv_reserved_ -= need;
  // The next in line whose caller is still there, in order, while they fit.
  while (!queue_.empty()) {
    if (!queue_.front().admit->isWaiting()) {
      queue_.pop_front();
      continue;
    }
    if (!Fits(queue_.front().need)) break;
    ++running_;
    kv_reserved_ += queue_.front().need;
    auto next = kj::mv(queue_.front().admit);
    queue_.pop_front();
    next->fulfill();
  }
}

}  // namespace strata
