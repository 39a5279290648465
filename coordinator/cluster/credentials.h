#pragma once
// Credentials: how the coordinator proves itself to its nodes — the cluster
// secret and, with --tls, the cluster's certificates — read once from the
// flags. `--local` clusters get a fresh secret that lives only as long as
// the command. Not thread-safe.
#include <kj/timer.h>

#include <memory>
#include <string>

#include "coordinator/cluster/cluster_flags.h"
#include "protocol/cluster_tls.h"
#include "protocol/coordinator_key.h"
#include "protocol/peer_link.h"

namespace strata {

// A directory for this run's own credentials (a cluster CA and member
// certificate, a coordinator key pair), made private (0700) under $TMPDIR
// (else /tmp) and removed with everything in it when the run ends.
class EphemeralDir {
 public:
  static Result<std::unique_ptr<EphemeralDir>> Make();
  ~EphemeralDir();
  const std::string& path() const { return path_; }

 private:
  explicit EphemeralDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

struct Credentials {
  ClusterSecret secret;
  bool tls = false;
  TlsFiles tls_files;
  std::unique_ptr<EphemeralDir> ephemeral;  // --local: the run's own CA (with --tls) and coordinator key
  std::unique_ptr<ClusterTls> tls_context;
  // --coordinator-key (with --local, made for the run): signs this
  // process's hellos; coordinator_pub is its public half, for --local nodes.
  std::unique_ptr<CoordinatorKey> coordinator_key;
  std::string coordinator_pub;

  LinkSecurity security() const { return {&secret, tls_context.get(), coordinator_key.get()}; }
};

// Reads --cluster-secret-file (or STRATA_CLUSTER_SECRET) and --tls*. With
// `local` (nodes this command starts and stops), what is not given is made
// for the run alone: a secret, and with --tls a cluster CA and certificate.
Result<Credentials> LoadCredentials(const ClusterFlags& flags, kj::Timer& timer, bool local);

}  // namespace strata
