#pragma once
// WriteDeadlineStream: a connection whose every write must be taken by the
// peer within a deadline, or fails (DISCONNECTED). A client that stops
// reading would otherwise hold what it asked for — a request's slot and its
// KV on every stage, a model server's connection — for as long as it likes,
// since TCP lets a writer wait forever.
//
// Thread-safety: that of the wrapped stream (its event loop's thread).
#include <kj/async-io.h>
#include <kj/debug.h>
#include <kj/timer.h>

#include <cstdint>

#include "protocol/forwarding_stream.h"

namespace strata {

class WriteDeadlineStream final : public ForwardingStream {
 public:
  // `timer` is borrowed; 0 ms: writes wait as long as the peer does.
  WriteDeadlineStream(kj::Own<kj::AsyncIoStream> inner, kj::Timer& timer, uint32_t timeout_ms)
      : ForwardingStream(kj::mv(inner)), timer_(timer), timeout_ms_(timeout_ms) {}

  kj::Promise<void> write(const void* buffer, size_t size) override { return Bounded(inner_->write(buffer, size)); }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return Bounded(inner_->write(pieces));
  }

 private:
  kj::Promise<void> Bounded(kj::Promise<void> write) {
    if (timeout_ms_ == 0) return write;
    const uint32_t ms = timeout_ms_;
    return write.exclusiveJoin(timer_.afterDelay(ms * kj::MILLISECONDS).then([ms]() -> kj::Promise<void> {
      return KJ_EXCEPTION(DISCONNECTED, "the peer read nothing for the write timeout (ms)", ms);
    }));
  }

  kj::Timer& timer_;
  const uint32_t timeout_ms_;
};

}  // namespace strata
