#include "coordinator/cluster/make_secret.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <tuple>

#include <openssl/bn.h>

#include "protocol/cluster_tls.h"
#include "protocol/peer_auth.h"

namespace strata {
namespace {

struct Freer {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Freer>;
using Cert = std::unique_ptr<X509, Freer>;

// Creates `path` exclusively with `mode` and writes `text` to it.
Status WriteNew(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return Status::Error("cannot create " + path + ": " + std::strerror(errno) +
                         (errno == EEXIST ? " (remove it first; make-secret never overwrites)" : ""));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(path.c_str());
      return Status::Error("cannot write " + path + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return Status::Error("cannot write " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

Key NewKey() { return Key(EVP_EC_gen("P-256")); }

// A certificate for `cn` with `key`, signed by `issuer_key` (self-signed
// when issuer is null).
Cert NewCert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca, int days) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  const Bytes serial = RandomBytes(16);
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_clear_bit(bn, 127);  // positive
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Strata cluster"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::string san = std::string("DNS:") + kTlsPeerName;
  const std::pair<int, std::string> extensions[] = {
      {NID_basic_constraints, ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE"},
      {NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyAgreement"},
      {NID_ext_key_usage, "serverAuth,clientAuth"},
      {NID_subject_alt_name, san},
      {NID_subject_key_identifier, "hash"}};
  for (const auto& [nid, value] : extensions) {
    if (ca && (nid == NID_ext_key_usage || nid == NID_subject_alt_name)) continue;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) return nullptr;
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) == 0) return nullptr;
  return cert;
}

template <typename WriteFn>
std::string Pem(WriteFn write) {
  std::unique_ptr<BIO, Freer> bio(BIO_new(BIO_s_mem()));
  if (!write(bio.get())) return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string KeyPem(EVP_PKEY* key) {
  return Pem([key](BIO* b) { return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1; });
}
std::string CertPem(X509* cert) {
  return Pem([cert](BIO* b) { return PEM_write_bio_X509(b, cert) == 1; });
}

}  // namespace

Status WriteClusterSecret(const std::string& secret_path) {
  return WriteNew(secret_path, ClusterSecret::Generate().Hex() + "\n", 0600);
}

Status WriteClusterTls(const std::string& dir, int days) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Error("cannot create " + dir + ": " + std::strerror(errno));
  }
  Key ca_key = NewKey(), member_key = NewKey();
  if (!ca_key || !member_key) return Status::Error("OpenSSL could not make a P-256 key");
  Cert ca = NewCert("Strata cluster CA", ca_key.get(), nullptr, nullptr, true, days);
  if (!ca) return Status::Error("OpenSSL could not make the cluster CA certificate");
  Cert member = NewCert(kTlsPeerName, member_key.get(), ca.get(), ca_key.get(), false, days);
  if (!member) return Status::Error("OpenSSL could not make the member certificate");
  for (const auto& [name, text, mode] : {std::tuple<const char*, std::string, mode_t>{"ca.key", KeyPem(ca_key.get()), 0600},
                                         {"ca.pem", CertPem(ca.get()), 0644},
                                         {"key.pem", KeyPem(member_key.get()), 0600},
                                         {"cert.pem", CertPem(member.get()), 0644}}) {
    if (text.empty()) return Status::Error(std::string("OpenSSL could not encode ") + name);
    Status st = WriteNew(dir + "/" + name, text, mode);
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace strata
