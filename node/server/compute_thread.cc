#include "node/server/compute_thread.h"

namespace strata {

ComputeThread::ComputeThread(std::function<void()> init)
    : thread_([this, init = std::move(init)]() {
        kj::EventLoop loop;
        kj::WaitScope wait_scope(loop);
        init();
        auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
        stop_ = kj::mv(paf.fulfiller);
        *ready_.lockExclusive() = kj::getCurrentThreadExecutor();
        paf.promise.wait(wait_scope);
      }) {
  auto lock = ready_.lockExclusive();
  lock.wait([](const kj::Maybe<const kj::Executor&>& e) { return e != nullptr; });
  KJ_IF_MAYBE(e, *lock) { executor_ = e; }
}

ComputeThread::~ComputeThread() {
  // Fulfilling from this thread is safe: the fulfiller is cross-thread.
  stop_->fulfill();
  // kj::Thread's destructor joins.
}

}  // namespace strata
