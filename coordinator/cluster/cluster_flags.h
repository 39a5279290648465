#pragma once
// ClusterFlags: the flags every cluster command shares — where its nodes
// come from (coordinator/cluster/membership), how it proves itself to them
// (coordinator/cluster/credentials) and its timeouts.
#include <cstdint>
#include <string>

#include "protocol/discovery_options.h"

namespace strata {

// Where the nodes come from (coordinator/cluster/membership): explicit addresses, a
// cluster file, N local processes started (and stopped) by the command
// itself, or discovery.
struct ClusterFlags {
  std::string nodes;          // "HOST:PORT,HOST:PORT"
  std::string cluster_file;   // JSON {"nodes": ["HOST:PORT", ...]}
  int64_t local = 0;
  int64_t threads = 0;        // per local node
  std::string node_binary;    // strata-node for --local
  uint64_t connect_timeout_ms = 10000;
  uint64_t step_timeout_ms = 120000;
  std::string secret_file;    // --cluster-secret-file (else $STRATA_CLUSTER_SECRET)
  bool tls = false;
  std::string tls_dir, tls_cert, tls_key, tls_ca;
  std::string coordinator_key;  // --coordinator-key: signs this process's hellos as coordinator
  DiscoveryOptions discovery;       // group and cluster name (the port is discovery_port)
  std::string kv_dtype;       // --local nodes' --kv-dtype ("": theirs)
  int64_t discovery_port = 7788;
  uint64_t discovery_wait_ms = 2500;
};

}  // namespace strata
