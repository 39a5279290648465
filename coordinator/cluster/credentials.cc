#include "coordinator/cluster/credentials.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "coordinator/cluster/make_secret.h"

namespace strata {

Result<std::unique_ptr<EphemeralDir>> EphemeralDir::Make() {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/strata-run-XXXXXX";
  if (::mkdtemp(path.data()) == nullptr) {  // mode 0700
    return Status::Error("cannot make a directory for this run's credentials (" + path + "): " + std::strerror(errno));
  }
  return std::unique_ptr<EphemeralDir>(new EphemeralDir(path));
}

EphemeralDir::~EphemeralDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

// --coordinator-key, or for --local nodes a key pair made for the run.
Status LoadCoordinatorKey(const ClusterFlags& flags, bool local, Credentials* c) {
  std::string key = flags.coordinator_key;
  if (key.empty() && local) {
    key = c->ephemeral->path() + "/coordinator.key";
    c->coordinator_pub = CoordinatorPubPath(key);
    Status written = WriteCoordinatorKeys(key, c->coordinator_pub);
    if (!written.ok()) return written;
  } else if (local) {
    c->coordinator_pub = CoordinatorPubPath(key);
  }
  if (key.empty()) return Status::Ok();
  auto loaded = CoordinatorKey::Load(key);
  if (!loaded.ok()) return loaded.status();
  c->coordinator_key = std::move(loaded.value());
  return Status::Ok();
}

}  // namespace

Result<Credentials> LoadCredentials(const ClusterFlags& flags, kj::Timer& timer, bool local) {
  Credentials c;
  auto secret = ClusterSecret::FromFlagOrEnv(flags.secret_file);
  if (!secret.ok()) return secret.status();
  c.secret = secret.value();
  // The single-machine mode stays one command and still has no open door:
  // its nodes accept only this run's own secret.
  if (c.secret.empty() && local) c.secret = ClusterSecret::Generate();
  if (local) {
    auto dir = EphemeralDir::Make();
    if (!dir.ok()) return dir.status();
    c.ephemeral = std::move(dir.value());
  }
  Status keyed = LoadCoordinatorKey(flags, local, &c);
  if (!keyed.ok()) return keyed;
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
    const std::string tls_dir = c.ephemeral->path() + "/tls";
    Status written = WriteClusterTls(tls_dir, 2);
    if (!written.ok()) return written;
    c.tls_files = TlsFilesIn(tls_dir);
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
