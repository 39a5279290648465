#pragma once
// StepQuota: the work a node has taken but not yet run, bounded before a
// byte of it is copied. Session.submit and submitBatch return once a step is
// queued, so Cap'n Proto's flow limit never applied to them: a peer could
// queue any number of steps (131,072 in 1.4 s, +318 MiB). Now a step is
// taken only within max_per_session steps of its session, max_steps in all
// and max_bytes of queued input; past them it is refused, naming the limit.
//
// Not thread-safe: the event loop's (holds are released there too).
#include <cstdint>
#include <map>
#include <memory>

#include "base/status.h"

namespace strata {

struct QuotaLimits {
  uint32_t max_steps = 1024;
  uint32_t max_per_session = 8;
  uint64_t max_bytes = 256ull << 20;
};

class StepQuota {
 public:
  explicit StepQuota(QuotaLimits limits) : limits_(limits) {}

  // One queued step's share, given back when it is destroyed (its step ran,
  // failed, or was dropped). Must not outlive the quota.
  class Hold {
   public:
    Hold(StepQuota& quota, uint64_t session, uint64_t bytes) : quota_(quota), session_(session), bytes_(bytes) {}
    ~Hold() { quota_.Give(session_, bytes_); }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    StepQuota& quota_;
    const uint64_t session_, bytes_;
  };

  // A share for a step of `session` whose input is `bytes`, or why not.
  Result<std::unique_ptr<Hold>> Take(uint64_t session, uint64_t bytes);

  uint32_t steps() const { return steps_; }
  uint64_t bytes() const { return bytes_; }

 private:
  void Give(uint64_t session, uint64_t bytes);

  const QuotaLimits limits_;
  uint32_t steps_ = 0;
  uint64_t bytes_ = 0;
  std::map<uint64_t, uint32_t> per_session_;
};

}  // namespace strata
