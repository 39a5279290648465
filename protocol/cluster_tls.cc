#include "protocol/cluster_tls.h"

#include "base/escape.h"
#include "storage/read_file.h"

namespace strata {
namespace {

Result<std::string> ReadPem(const std::string& path, const char* what) {
  auto text = ReadSmallFile(path, std::string("the TLS ") + what + " file", 1u << 20);
  if (text.ok() && text->find("-----BEGIN ") == std::string::npos) {
    return Status::Error("the TLS " + std::string(what) + " file " + EscapeText(path) + " is not PEM");
  }
  return text;
}

}  // namespace

TlsFiles TlsFilesIn(const std::string& dir) { return {dir + "/cert.pem", dir + "/key.pem", dir + "/ca.pem"}; }

ClusterTls::~ClusterTls() = default;

Result<std::unique_ptr<ClusterTls>> ClusterTls::Load(const TlsFiles& files, kj::Timer& timer) {
  return Make(files, timer, /*verify_clients=*/true);
}

Result<std::unique_ptr<ClusterTls>> ClusterTls::LoadServer(const std::string& cert, const std::string& key,
                                                           kj::Timer& timer) {
  return Make(TlsFiles{cert, key, ""}, timer, /*verify_clients=*/false);
}

Result<std::unique_ptr<ClusterTls>> ClusterTls::Make(const TlsFiles& files, kj::Timer& timer, bool verify_clients) {
  auto cert = ReadPem(files.cert, "certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPrivateFile(files.key, "the TLS key file", 1u << 20);
  if (key.ok() && key->find("-----BEGIN ") == std::string::npos) {
    key = Status::Error("the TLS key file " + EscapeText(files.key) + " is not PEM");
  }
  if (!key.ok()) return key.status();
  Result<std::string> ca = std::string();
  if (verify_clients) ca = ReadPem(files.ca, "CA");
  if (!ca.ok()) return ca.status();
  std::unique_ptr<ClusterTls> tls(new ClusterTls());
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    tls->keypair_ = kj::heap<kj::TlsKeypair>(
        kj::TlsKeypair{kj::TlsPrivateKey(key->c_str()), kj::TlsCertificate(cert->c_str())});
    kj::TlsContext::Options options;
    options.useSystemTrustStore = false;
    options.verifyClients = verify_clients;
    if (verify_clients) {
      tls->ca_ = kj::heap<kj::TlsCertificate>(ca->c_str());
      options.trustedCertificates = kj::arrayPtr(tls->ca_.get(), 1);
    }
    options.defaultKeypair = *tls->keypair_;
    options.minVersion = kj::TlsVersion::TLS_1_2;
    options.timer = timer;
    options.acceptTimeout = 10 * kj::SECONDS;
    tls->context_ = kj::heap<kj::TlsContext>(kj::mv(options));
  })) {
    return Status::Error("bad TLS files (" + EscapeText(files.cert) + ", " + EscapeText(files.key) +
                         (verify_clients ? ", " + EscapeText(files.ca) : std::string()) +
                         "): " + EscapeText(e->getDescription().cStr(), 160));
  }
  return tls;
}

}  // namespace strata
