#include "coordinator/api/watched_connection.h"

#include <cstring>

namespace strata {

kj::Promise<void> WatchedConnection::WhenClientGone() {
  if (eof_) return kj::READY_NOW;
  if (has_byte_) return kj::NEVER_DONE;  // it is sending: not gone
  KJ_IF_MAYBE(w, watch_) { return w->addBranch(); }
  auto read = inner_->tryRead(&byte_, 1, 1).then([this](size_t n) -> kj::Promise<void> {
    if (n == 0) {
      eof_ = true;
      return kj::READY_NOW;
    }
    has_byte_ = true;
    return kj::NEVER_DONE;
  });
  auto fork = read.fork();
  auto branch = fork.addBranch();
  watch_ = kj::mv(fork);
  return branch;
}

kj::Promise<size_t> WatchedConnection::tryRead(void* buffer, size_t min_bytes, size_t max_bytes) {
  // The server reads again: the read-ahead stops (a byte it got is kept).
  watch_ = nullptr;
  if (eof_) return size_t(0);
  if (!has_byte_ || max_bytes == 0) return inner_->tryRead(buffer, min_bytes, max_bytes);
  auto* out = static_cast<kj::byte*>(buffer);
  out[0] = byte_;
  has_byte_ = false;
  if (min_bytes <= 1) return size_t(1);
  return inner_->tryRead(out + 1, min_bytes - 1, max_bytes - 1).then([](size_t n) { return n + 1; });
}

}  // namespace strata
