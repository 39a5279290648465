#include "protocol/peer_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/escape.h"
#include "base/hex.h"
#include "storage/read_file.h"

namespace strata {

void Append(Bytes* out, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + n);
}

void AppendU32(Bytes* out, uint32_t v) {
  const uint8_t le[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  Append(out, le, 4);
}

namespace {

}  // namespace

Bytes Hmac(const ClusterSecret& secret, const Bytes& message) {
  Bytes mac(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.key().data(), static_cast<int>(secret.key().size()), message.data(), message.size(),
       mac.data(), &len);
  mac.resize(len);
  return mac;
}

namespace {

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace

Bytes RandomBytes(size_t n) {
  Bytes out(n);
  if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) std::abort();  // no safe way on without randomness
  return out;
}

Result<ClusterSecret> ClusterSecret::LoadFile(const std::string& path) {
  auto text = ReadPrivateFile(path, "the cluster secret file", 4096);
  if (!text.ok()) return text.status();
  const std::string key = Trim(text.value());
  if (key.size() < kMinSecretBytes) {
    return Status::Error("the cluster secret in " + EscapeText(path) + " is shorter than " +
                         std::to_string(kMinSecretBytes) + " bytes; make one with `strata make-secret`");
  }
  return ClusterSecret(Bytes(key.begin(), key.end()));
}

Result<ClusterSecret> ClusterSecret::FromFlagOrEnv(const std::string& file_flag) {
  if (!file_flag.empty()) return LoadFile(file_flag);
  const char* env = std::getenv("STRATA_CLUSTER_SECRET");
  if (env == nullptr || *env == '\0') return ClusterSecret();
  const std::string key = Trim(env);
  if (key.size() < kMinSecretBytes) {
    return Status::Error("STRATA_CLUSTER_SECRET is shorter than " + std::to_string(kMinSecretBytes) + " bytes");
  }
  return ClusterSecret(Bytes(key.begin(), key.end()));
}

ClusterSecret ClusterSecret::Generate() {
  // The key is the hex text itself, so the file and the variable agree.
  const Bytes raw = RandomBytes(32);
  const std::string hex = HexEncode(raw.data(), raw.size());
  return ClusterSecret(Bytes(hex.begin(), hex.end()));
}

std::string ClusterSecret::Hex() const { return std::string(key_.begin(), key_.end()); }

Bytes ServerProof(const ClusterSecret& secret, uint32_t version, const Bytes& client_nonce, const Bytes& server_nonce) {
  Bytes m;
  Append(&m, "strata-server-v1", 16);
  AppendU32(&m, version);
  Append(&m, client_nonce.data(), client_nonce.size());
  Append(&m, server_nonce.data(), server_nonce.size());
  return Hmac(secret, m);
}

Bytes ClientProof(const ClusterSecret& secret, uint32_t version, uint32_t role, const std::string& peer,
                  const Bytes& server_nonce, const Bytes& client_nonce) {
  Bytes m;
  Append(&m, "strata-client-v1", 16);
  AppendU32(&m, version);
  AppendU32(&m, role);
  AppendU32(&m, static_cast<uint32_t>(peer.size()));
  Append(&m, peer.data(), peer.size());
  Append(&m, server_nonce.data(), server_nonce.size());
  Append(&m, client_nonce.data(), client_nonce.size());
  return Hmac(secret, m);
}

bool ProofsEqual(const Bytes& a, const Bytes& b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool BearerTokenMatches(kj::Maybe<kj::StringPtr> authorization, const std::string& token) {
  const std::string expected = "Bearer " + token;
  KJ_IF_MAYBE(auth, authorization) {
    return ProofsEqual(Bytes(auth->begin(), auth->end()), Bytes(expected.begin(), expected.end()));
  }
  return false;
}

}  // namespace strata
