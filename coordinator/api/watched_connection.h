#pragma once
// WatchedConnection: a client's HTTP connection that can tell when the
// client has gone. kj-http reads nothing while a request is being answered,
// so a client that hangs up on a non-streamed completion would go unseen
// until the answer is written (TCP shows a close as end-of-file, not as a
// write error). WhenClientGone() reads ahead by one byte while nobody else
// reads: end-of-file means the client left; a byte (a pipelined request) is
// kept and handed to the next read, so the HTTP server loses nothing.
//
// Not thread-safe: the event loop that owns the connection.
#include <kj/async-io.h>

#include "protocol/forwarding_stream.h"

#include <cstdint>

namespace strata {

class WatchedConnection final : public ForwardingStream {
 public:
  explicit WatchedConnection(kj::Own<kj::AsyncIoStream> inner) : ForwardingStream(kj::mv(inner)) {}

  // Resolves when the client closes its end; never, if it sends more first.
  // Only while no read is in flight (between a request's body and its answer).
  kj::Promise<void> WhenClientGone();

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override;

 private:
  kj::Maybe<kj::ForkedPromise<void>> watch_;  // the read-ahead in flight, if any
  bool has_byte_ = false;                     // a byte read ahead, for the next tryRead
  bool eof_ = false;                          // the read-ahead saw end-of-file
  kj::byte byte_ = 0;
};

}  // namespace strata
