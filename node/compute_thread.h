#pragma once
// ComputeThread: the thread where LibTorch math runs, never the event loop.
// It runs its own KJ event loop so the RPC thread can hand it work with
// executor().executeAsync(...) and get a promise back on its own loop.
// Thread-safe: executor() may be used from any thread.
#include <kj/async.h>
#include <kj/mutex.h>
#include <kj/thread.h>

#include <functional>

namespace strata {

class ComputeThread {
 public:
  // `init` runs first on the new thread (e.g. to set its OpenMP thread count).
  explicit ComputeThread(std::function<void()> init);
  ~ComputeThread();  // stops the loop and joins

  const kj::Executor& executor() const { return *executor_; }

 private:
  kj::MutexGuarded<kj::Maybe<const kj::Executor&>> ready_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // guarded by ready_ handshake: set before executor_
  const kj::Executor* executor_ = nullptr;
  kj::Thread thread_;
};

}  // namespace strata
