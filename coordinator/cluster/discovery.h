#pragma once
// DiscoveryListener: the coordinator's live member list, from the beacons of
// protocol/beacon.h. It listens on the cluster's multicast group (joined on
// the loopback interface and on the default route's), and keeps for every
// node id the latest beacon it accepted: name, RPC address, when it was first
// and last seen. A node that stops beaconing is gone after 3.5 intervals; one
// that says it is leaving, at once. Datagrams that are stray (not beacons),
// malformed, forged (bad or missing MAC), of another cluster, or replayed
// (a counter not above the last one seen) are dropped and counted.
//
// Thread-safe: Asio runs on the listener's own thread; mu_ guards members_
// and stats_, which any thread may read.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "protocol/beacon.h"
#include "protocol/discovery_options.h"

namespace strata {

struct Member {
  std::string name;
  std::string address;   // HOST:PORT of its RPC listener
  std::string node_id;   // hex
  double seen_ago_s = 0; // since its last beacon
  double age_s = 0;      // since its first
};

struct DiscoveryStats {
  uint64_t accepted = 0;
  uint64_t malformed = 0;      // not a beacon, or a broken one
  uint64_t forged = 0;         // a bad or missing MAC
  uint64_t other_cluster = 0;
  uint64_t replayed = 0;
  uint64_t off_host = 0;       // unsigned, from another machine, to a listener without a secret
  uint64_t joins = 0, leaves = 0;
};

class DiscoveryListener {
 public:
  static Result<std::unique_ptr<DiscoveryListener>> Start(const DiscoveryOptions& options, const ClusterSecret& secret);
  ~DiscoveryListener();

  // The live members, by name then address (a deterministic order).
  std::vector<Member> Members();
  DiscoveryStats stats() const;
  // Waits up to `timeout` for at least `count` members; returns the members.
  std::vector<Member> WaitFor(size_t count, std::chrono::milliseconds timeout);

  struct Impl;

 private:
  explicit DiscoveryListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
