#pragma once
// Beacon: what a node announces by UDP multicast so that coordinators find
// it. One datagram, at most kMaxBeaconBytes:
//
//   "STRB" | version u8 | flags u8 | counter u64 BE | node id [16]
//   | cluster, name, address: each u8 length + bytes | [32-byte HMAC]
//
// `counter` grows with every beacon a node process sends (it starts from a
// random value), so a recorded beacon replayed later is older than what the
// listener has seen and is dropped. With a cluster secret the datagram ends
// in HMAC-SHA256(secret, "strata-beacon-v1" | everything before it), and a
// listener with the secret accepts nothing else; without one, beacons carry
// no MAC and only listeners without a secret take them (loopback clusters).
// `address` is the node's RPC HOST:PORT; a wildcard host (0.0.0.0) means
// "the address this datagram came from".
//
// Thread-safe: pure functions.
#include <cstdint>
#include <string>

#include "base/status.h"
#include "protocol/peer_auth.h"

namespace strata {

inline constexpr size_t kMaxBeaconBytes = 512;
inline constexpr uint8_t kBeaconVersion = 1;
inline constexpr uint8_t kBeaconLeaving = 1;  // flags: the node is shutting down

struct Beacon {
  uint8_t flags = 0;
  uint64_t counter = 0;
  Bytes node_id;          // 16 bytes
  std::string cluster;    // at most 64 bytes
  std::string name;       // at most 64 bytes
  std::string address;    // HOST:PORT, at most 128 bytes
};

// Fails on fields over their limits.
Result<Bytes> EncodeBeacon(const Beacon& beacon, const ClusterSecret& secret);
// Validates every byte before trusting any: length, magic, version, field
// bounds, the MAC (when `secret` is set; a beacon with a MAC is refused by
// a listener without one, and the reverse). The error says which check failed.
Result<Beacon> DecodeBeacon(const uint8_t* data, size_t size, const ClusterSecret& secret);

}  // namespace strata
