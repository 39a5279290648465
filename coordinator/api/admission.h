#pragma once
// Admission: which requests of `strata serve` may generate now. A request
// needs a slot (at most `max_running` generate at once) and KV: the prompt
// plus max_tokens positions, reserved from what the cluster's stages hold
// (`kv_tokens`; 0: unbounded), so that admitted requests never run a stage
// out of KV pages. Others wait in FIFO order, at most `max_queue`; a
// request that finds the queue full is turned away (the caller answers 429).
// A queued request whose caller went away is skipped when its turn comes.
//
// Not thread-safe: the coordinator's event loop only.
#include <kj/async.h>

#include <cstdint>
#include <deque>

namespace strata {

class Admission {
 public:
  Admission(int64_t max_running, int64_t max_queue, int64_t kv_tokens)
      : max_running_(max_running), max_queue_(max_queue), kv_tokens_(kv_tokens) {}

  // Ready now, or once admitted after a wait; null when the queue is full.
  // Whoever is admitted must Release(need) once done.
  kj::Maybe<kj::Promise<void>> Admit(int64_t need);
  void Release(int64_t need);

  int64_t running() const { return running_; }
  int64_t waiting() const { return static_cast<int64_t>(queue_.size()); }
  int64_t kv_reserved() const { return kv_reserved_; }
  int64_t kv_tokens() const { return kv_tokens_; }

 private:
  bool Fits(int64_t need) const {
    return running_ < max_running_ && (kv_tokens_ == 0 || kv_reserved_ + need <= kv_tokens_);
  }
  struct Waiting {
    kj::Own<kj::PromiseFulfiller<void>> admit;
    int64_t need = 0;  // KV positions
  };
  const int64_t max_running_, max_queue_, kv_tokens_;
  int64_t running_ = 0;
  int64_t kv_reserved_ = 0;    // invariant: the sum of the running requests' needs
  std::deque<Waiting> queue_;  // FIFO
};

}  // namespace strata
