#pragma once
// LocalCluster: the single-machine multi-node mode. Starts N strata-node
// processes on loopback ports, knows their addresses, and stops them when it
// is destroyed (normal exit, error or Ctrl-C). Children also get
// PR_SET_PDEATHSIG, so a coordinator killed outright takes its nodes along.
// Not thread-safe.
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace strata {

struct LocalClusterOptions {
  int nodes = 1;
  std::string node_binary;       // path to strata-node
  int threads = 0;               // per node; 0 = node default
  uint64_t memory_per_node = 0;  // 0 = node default
  std::string log_level = "warn";
  std::string secret;            // the cluster secret the nodes get (through their environment)
  std::string tls_cert, tls_key, tls_ca;  // set: the nodes speak TLS with these files
  std::vector<std::string> extra_args;    // more strata-node flags, for every node
  std::vector<std::vector<std::string>> node_args;  // and for node i alone, where given
  bool discovery = false;                 // let the nodes beacon (a command's own nodes stay unannounced)
  // Measure each node's speed at its start. A command's own nodes share this
  // machine, so a plan splits them by memory anyway, and a calibration would
  // only compete with the command's first steps.
  bool calibrate = false;
  std::string log_path;                   // set: the nodes' stderr goes to this file (appended)
  std::vector<std::string> models_dirs;   // the nodes may load models by path from under these (--models-dir)
};

class LocalCluster {
 public:
  static Result<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  ~LocalCluster();  // SIGTERM, then SIGKILL after 3 s; reaps every child

  const std::vector<std::string>& addresses() const { return addresses_; }
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  LocalCluster() = default;
  std::vector<pid_t> pids_;
  std::vector<std::string> addresses_;
};

// The strata-node next to the running binary.
std::string SiblingBinary(const std::string& name);

}  // namespace strata
