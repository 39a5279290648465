#pragma once
// ClusterTls: the TLS side of a cluster (`--tls`). Every member presents a
// certificate signed by the cluster's CA and trusts that CA alone (never the
// system store); servers demand a client certificate too. Certificates name
// kTlsPeerName rather than a host, so members may sit at any address; the
// hello's HMAC then proves the cluster secret inside the encrypted channel.
//
// Not thread-safe: use it on the event-loop thread that created it.
#include <kj/compat/tls.h>
#include <kj/timer.h>

#include <memory>
#include <string>

#include "base/status.h"

namespace strata {

inline constexpr const char* kTlsPeerName = "strata-node";

struct TlsFiles {
  std::string cert;  // PEM: this member's certificate (chain)
  std::string key;   // PEM: its private key
  std::string ca;    // PEM: the cluster CA
};

class ClusterTls {
 public:
  // Reads and checks the three files; one clear error names a bad one.
  static Result<std::unique_ptr<ClusterTls>> Load(const TlsFiles& files, kj::Timer& timer);
  // A server's side only (the API's --http-cert/--http-key): its certificate
  // and key, no CA, clients not asked for a certificate.
  static Result<std::unique_ptr<ClusterTls>> LoadServer(const std::string& cert, const std::string& key,
                                                        kj::Timer& timer);
  ~ClusterTls();

  kj::TlsContext& context() { return *context_; }

 private:
  static Result<std::unique_ptr<ClusterTls>> Make(const TlsFiles& files, kj::Timer& timer, bool verify_clients);
  ClusterTls() = default;
  kj::Own<kj::TlsKeypair> keypair_;             // borrowed by context_
  kj::Own<kj::TlsCertificate> ca_;              // borrowed by context_
  kj::Own<kj::TlsContext> context_;
};

// The --tls-* files in a directory written by `strata make-secret --tls`.
TlsFiles TlsFilesIn(const std::string& dir);

}  // namespace strata
