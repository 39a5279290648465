#pragma once
// A malicious last stage for the coordinator's tests: a real Cap'n Proto
// server on loopback (its own thread and event loop) that says hello as a
// node without a secret, takes any shard, opens sessions, and answers every
// submitted step with a reply it should not send. The coordinator under
// test is a real `strata` process pointed at it with --nodes.
#include <kj/thread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace strata::testing {

enum class Lie {
  kTokenOutsideVocabulary,  // token id 1 << 20
  kNanLogits,               // [vocab] logits holding a NaN
  kShortLogits,             // 3 logits instead of [vocab]
  kManyStageTimes,          // 100,000 stageMicros entries
};

class LyingStage {
 public:
  LyingStage(Lie lie, uint32_t vocab);
  ~LyingStage();  // stops the server and joins its thread
  const std::string& address() const { return address_; }

 private:
  std::string address_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<kj::Thread> thread_;
};

}  // namespace strata::testing
