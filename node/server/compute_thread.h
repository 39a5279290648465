#pragma once
// ComputeThread: the thread where LibTorch math runs, never the event loop.
// It runs its own KJ event loop so the RPC thread can hand it work with
// Run(...) and get a promise back on its own loop.
// Thread-safe: Run() and others_waiting() may be used from any thread.
#include <kj/async.h>
#include <kj/mutex.h>
#include <kj/thread.h>

#include <atomic>
#include <functional>

namespace strata {

class ComputeThread {
 public:
  // `init` runs first on the new thread (e.g. to set its OpenMP thread count).
  explicit ComputeThread(std::function<void()> init);
  ~ComputeThread();  // stops the loop and joins

  // Runs `func` on the compute thread; the promise is on the caller's loop,
  // and dropping it before `func` starts means `func` never runs.
  template <typename Func>
  kj::PromiseForResult<Func, void> Run(Func&& func) const {
    return executor_->executeAsync([queued = Queued(queued_), func = kj::fwd<Func>(func)]() mutable {
      queued.Release();
      return func();
    });
  }
  // Whether a Run waits for the thread: long work on it (a run of fed-back
  // steps) yields at its next step.
  bool others_waiting() const { return queued_.load(std::memory_order_relaxed) > 0; }

 private:
  // Counts a Run from its posting until it starts or is dropped.
  class Queued {
   public:
    explicit Queued(std::atomic<int>& n) : n_(&n) { n.fetch_add(1, std::memory_order_relaxed); }
    Queued(Queued&& other) noexcept : n_(other.n_) { other.n_ = nullptr; }
    Queued& operator=(Queued&&) = delete;
    ~Queued() { Release(); }
    void Release() {
      if (n_ != nullptr) n_->fetch_sub(1, std::memory_order_relaxed);
      n_ = nullptr;
    }

   private:
    std::atomic<int>* n_;
  };
  mutable std::atomic<int> queued_{0};
  kj::MutexGuarded<kj::Maybe<const kj::Executor&>> ready_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // guarded by ready_ handshake: set before executor_
  const kj::Executor* executor_ = nullptr;
  kj::Thread thread_;
};

}  // namespace strata
