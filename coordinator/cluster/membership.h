#pragma once
// Membership: the one place a command's nodes come from. Exactly one source:
//   --nodes A,B,...   a static list, in pipeline order;
//   --cluster FILE    the same list in a cluster file (cluster-configs/);
//   discovery         neither given: the nodes of the cluster that beacon
//                     on the multicast group within --discovery-wait-ms.
// (--local N nodes are started by the command itself: coordinator/cluster/local_cluster.)
//
// Thread-compatible.
#include <string>
#include <vector>

#include "base/status.h"
#include "coordinator/cluster/cluster_flags.h"
#include "protocol/peer_auth.h"

namespace strata {

struct Members {
  std::vector<std::string> addresses;  // HOST:PORT, validated
  std::vector<std::string> names;      // discovery only: each member's name
  std::vector<double> seen_ago_s;      // discovery only: since its last beacon
  std::string source;                  // "--nodes", "cluster file F" or "discovery in cluster 'C'"
};

// Every address is checked (HOST:PORT); an empty result is an error that
// says which source found nothing.
Result<Members> ResolveMembers(const ClusterFlags& flags, const ClusterSecret& secret);
// The static sources only (no waiting): for checking flags up front.
Result<std::vector<std::string>> ResolveStaticAddresses(const ClusterFlags& flags);
bool UsesDiscovery(const ClusterFlags& flags);

}  // namespace strata
