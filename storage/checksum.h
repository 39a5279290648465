#pragma once
// Checksum64: a fast 64-bit checksum of a block of bytes, for pages that go
// to disk and must come back exactly as they left (a swapped KV page). Four
// independent multiply-rotate lanes over 32-byte blocks, so it runs near
// memory speed; not cryptographic — it detects corruption, not forgery.
//
// Thread-safe (a pure function).
#include <cstddef>
#include <cstdint>

namespace strata {

uint64_t Checksum64(const void* data, size_t n);

}  // namespace strata
