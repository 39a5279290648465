#include "coordinator/cluster/membership.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "base/net_address.h"
#include "coordinator/cluster/discovery.h"

namespace strata {
namespace {

bool ValidAddress(const std::string& a) {
  auto parsed = ParseHostPort(a);
  return parsed.ok() && parsed->port >= 1;
}

}  // namespace

bool UsesDiscovery(const ClusterFlags& flags) {
  return flags.nodes.empty() && flags.cluster_file.empty() && flags.local == 0;
}

Result<std::vector<std::string>> ResolveStaticAddresses(const ClusterFlags& flags) {
  using json = nlohmann::json;
  std::vector<std::string> out;
  if (!flags.cluster_file.empty()) {
    std::ifstream in(flags.cluster_file);
    if (!in) return Status::Error("cannot read cluster file " + flags.cluster_file);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("nodes") || !j["nodes"].is_array()) {
      return Status::Error("cluster file " + flags.cluster_file +
                           " must be a JSON object with a \"nodes\" array of \"HOST:PORT\"");
    }
    for (const auto& n : j["nodes"]) {
      if (!n.is_string()) {
        return Status::Error("cluster file " + flags.cluster_file + ": every node must be a \"HOST:PORT\" string");
      }
      out.push_back(n.get<std::string>());
    }
  } else {
    std::stringstream ss(flags.nodes);
    std::string item;
    while (std::getline(ss, item, ',')) if (!item.empty()) out.push_back(item);
  }
  for (const auto& a : out) {
    if (!ValidAddress(a)) return Status::Error("bad node address '" + a + "': want HOST:PORT");
  }
  if (out.empty()) return Status::Error("no nodes: give --nodes HOST:PORT,..., --cluster FILE or --local N");
  return out;
}

Result<Members> ResolveMembers(const ClusterFlags& flags, const ClusterSecret& secret) {
  Members members;
  if (!UsesDiscovery(flags)) {
    auto addresses = ResolveStaticAddresses(flags);
    if (!addresses.ok()) return addresses.status();
    members.addresses = std::move(addresses.value());
    members.source = flags.cluster_file.empty() ? "--nodes" : "cluster file " + flags.cluster_file;
    return members;
  }
  DiscoveryOptions options = flags.discovery;
  options.port = static_cast<uint16_t>(flags.discovery_port);
  auto listener = DiscoveryListener::Start(options, secret);
  if (!listener.ok()) return listener.status();
  // Every member beacons once an interval: a little over two of them finds all.
  for (const Member& m : listener.value()->WaitFor(SIZE_MAX, std::chrono::milliseconds(flags.discovery_wait_ms))) {
    if (!ValidAddress(m.address)) continue;
    members.addresses.push_back(m.address);
    members.names.push_back(m.name);
    members.seen_ago_s.push_back(m.seen_ago_s);
  }
  members.source = "discovery in cluster '" + flags.discovery.cluster + "'";
  if (members.addresses.empty()) {
    const DiscoveryStats s = listener.value()->stats();
    std::string dropped;
    if (s.forged + s.malformed + s.other_cluster + s.replayed + s.off_host > 0) {
      dropped = " (ignored: " + std::to_string(s.forged) + " forged or unsigned, " + std::to_string(s.other_cluster) +
                " of other clusters, " + std::to_string(s.malformed) + " malformed, " + std::to_string(s.off_host) +
                " unsigned from other machines: give a cluster secret, or --insecure-discovery)";
    }
    return Status::Error("no nodes: none beaconed in cluster '" + flags.discovery.cluster + "' on " +
                         options.group + ":" + std::to_string(options.port) + " within " +
                         std::to_string(flags.discovery_wait_ms) + " ms" + dropped +
                         "; start nodes, or give --nodes, --cluster FILE or --local N");
  }
  return members;
}

}  // namespace strata
