#pragma once
// Credentials: how the coordinator proves itself to its nodes — the cluster
// secret and, with --tls, the cluster's certificates — read once from the
// flags. `--local` clusters get a fresh secret that lives only as long as
// the command. Not thread-safe.
#include <kj/timer.h>

#include <memory>
#include <string>

#include "coordinator/generate.h"
#include "protocol/cluster_tls.h"
#include "protocol/peer_link.h"

namespace strata {

struct Credentials {
  ClusterSecret secret;
  bool tls = false;
  TlsFiles tls_files;
  std::unique_ptr<ClusterTls> tls_context;

  LinkSecurity security() const { return {&secret, tls_context.get()}; }
};

// Reads --cluster-secret-file (or STRATA_CLUSTER_SECRET) and --tls*; with
// no secret given and `local`, makes an ephemeral one.
Result<Credentials> LoadCredentials(const ClusterFlags& flags, kj::Timer& timer, bool local);

}  // namespace strata
