#include "coordinator/credentials.h"

namespace strata {

Result<Credentials> LoadCredentials(const ClusterFlags& flags, kj::Timer& timer, bool local) {
  Credentials c;
  auto secret = ClusterSecret::FromFlagOrEnv(flags.secret_file);
  if (!secret.ok()) return secret.status();
  c.secret = secret.value();
  // The single-machine mode stays one command and still has no open door:
  // its nodes accept only this run's own secret.
  if (c.secret.empty() && local) c.secret = ClusterSecret::Generate();
  c.tls_files = {flags.tls_cert, flags.tls_key, flags.tls_ca};
  if (!flags.tls_dir.empty()) {
    const TlsFiles in_dir = TlsFilesIn(flags.tls_dir);
    if (c.tls_files.cert.empty()) c.tls_files.cert = in_dir.cert;
    if (c.tls_files.key.empty()) c.tls_files.key = in_dir.key;
    if (c.tls_files.ca.empty()) c.tls_files.ca = in_dir.ca;
  }
  c.tls = flags.tls || !flags.tls_dir.empty();
  if (!c.tls) return c;
  if (c.tls_files.cert.empty() || c.tls_files.key.empty() || c.tls_files.ca.empty()) {
    return Status::Error("--tls needs --tls-dir DIR, or all of --tls-cert, --tls-key and --tls-ca");
  }
  auto context = ClusterTls::Load(c.tls_files, timer);
  if (!context.ok()) return context.status();
  c.tls_context = std::move(context.value());
  return c;
}

}  // namespace strata
