#include "coordinator/cluster/credentials.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "coordinator/cluster/make_secret.h"

namespace strata {

Result<std::unique_ptr<EphemeralTlsDir>> EphemeralTlsDir::Make() {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/strata-tls-XXXXXX";
  if (::mkdtemp(path.data()) == nullptr) {  // mode 0700
    return Status::Error("cannot make a directory for this run's TLS files (" + path + "): " + std::strerror(errno));
  }
  std::unique_ptr<EphemeralTlsDir> dir(new EphemeralTlsDir(path));
  Status written = WriteClusterTls(path, 2);
  if (!written.ok()) return written;
  return dir;
}

EphemeralTlsDir::~EphemeralTlsDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

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
  const bool no_files = c.tls_files.cert.empty() && c.tls_files.key.empty() && c.tls_files.ca.empty();
  if (no_files && local) {
    auto dir = EphemeralTlsDir::Make();
    if (!dir.ok()) return dir.status();
    c.ephemeral_tls = std::move(dir.value());
    c.tls_files = TlsFilesIn(c.ephemeral_tls->path());
  }
  if (c.tls_files.cert.empty() || c.tls_files.key.empty() || c.tls_files.ca.empty()) {
    return Status::Error("--tls needs --tls-dir DIR, or all of --tls-cert, --tls-key and --tls-ca");
  }
  auto context = ClusterTls::Load(c.tls_files, timer);
  if (!context.ok()) return context.status();
  c.tls_context = std::move(context.value());
  return c;
}

}  // namespace strata
