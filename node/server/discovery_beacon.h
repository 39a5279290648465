#pragma once
// BeaconSender: a node's announcement of itself (protocol/beacon.h) to the
// cluster's multicast group, every interval, on the loopback interface (so
// nodes on one machine find each other) and, when the node listens beyond
// loopback, on the interface of the default route too. Multicast TTL 1: a
// beacon never leaves the local network. On destruction it sends one last
// beacon flagged "leaving", so listeners drop the node at once.
//
// Thread-safe: Asio runs on the sender's own thread; the constructor and
// destructor are called from main().
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "protocol/beacon.h"
#include "protocol/discovery_options.h"

namespace strata {

class BeaconSender {
 public:
  static Result<std::unique_ptr<BeaconSender>> Start(const DiscoveryOptions& options, const ClusterSecret& secret,
                                                     const std::string& name, const std::string& rpc_address,
                                                     const Bytes& node_id);
  ~BeaconSender();

  struct Impl;

 private:
  explicit BeaconSender(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
