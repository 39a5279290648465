#pragma once
// Where a cluster's beacons go: one UDP multicast group and port, and the
// cluster's name (nodes of other clusters on the same group are ignored).
// Shared by the node's sender and the coordinator's listener.
#include <cstdint>
#include <string>

namespace strata {

struct DiscoveryOptions {
  std::string group = "239.255.77.77";  // administratively scoped (RFC 2365): stays on the site
  uint16_t port = 7788;
  std::string cluster = "strata";
  uint32_t interval_ms = 1000;          // a node beacons this often; a listener forgets it after 3.5 intervals
  // A listener without a cluster secret takes unsigned beacons only from
  // this machine: anyone on the LAN could otherwise add a stage that sees
  // the prompt or forges the output. True: from the whole LAN (--insecure-discovery).
  bool insecure = false;
};

}  // namespace strata
