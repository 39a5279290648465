#include "protocol/coordinator_key.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/escape.h"
#include "storage/read_file.h"

namespace strata {
namespace {

// `text` written to a new file `path` with `mode`; an existing one is an error.
Status WriteNewFile(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Status::Error("cannot create " + EscapeText(path) + ": " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  return ok ? Status::Ok() : Status::Error("cannot write " + EscapeText(path));
}

template <typename Write>
std::string Pem(Write write) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string out;
  if (bio != nullptr && write(bio)) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

// A PEM key read by `read` from the file's text, or an error naming the file.
template <typename Read>
Result<EVP_PKEY*> ParseKey(const std::string& path, const std::string& text, Read read) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  EVP_PKEY* key = bio != nullptr ? read(bio) : nullptr;
  BIO_free(bio);
  if (key == nullptr || EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    return Status::Error(EscapeText(path) + " is not an Ed25519 key in PEM (`strata make-secret --coordinator-key`)");
  }
  return key;
}

}  // namespace

Bytes CoordinatorTranscript(uint32_t version, const Bytes& node_id, const Bytes& server_nonce,
                            const Bytes& client_nonce, const std::string& peer) {
  Bytes out;
  const std::string tag = "strata-coordinator-v1";
  Append(&out, tag.data(), tag.size());
  AppendU32(&out, version);
  for (const Bytes* b : {&node_id, &server_nonce, &client_nonce}) {
    AppendU32(&out, static_cast<uint32_t>(b->size()));
    Append(&out, b->data(), b->size());
  }
  AppendU32(&out, static_cast<uint32_t>(peer.size()));
  Append(&out, peer.data(), peer.size());
  return out;
}

std::string CoordinatorPubPath(const std::string& key_path) {
  const std::string ext = ".key";
  if (key_path.size() > ext.size() && key_path.compare(key_path.size() - ext.size(), ext.size(), ext) == 0) {
    return key_path.substr(0, key_path.size() - ext.size()) + ".pub";
  }
  return key_path + ".pub";
}

Status WriteCoordinatorKeys(const std::string& key_path, const std::string& pub_path) {
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  const bool made = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &key) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!made) return Status::Error("OpenSSL could not make an Ed25519 key");
  const std::string priv = Pem([key](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  });
  const std::string pub = Pem([key](BIO* b) { return PEM_write_bio_PUBKEY(b, key) == 1; });
  EVP_PKEY_free(key);
  if (priv.empty() || pub.empty()) return Status::Error("OpenSSL could not encode the coordinator key");
  Status st = WriteNewFile(key_path, priv, 0600);
  if (st.ok()) st = WriteNewFile(pub_path, pub, 0644);
  return st;
}

Result<std::unique_ptr<CoordinatorKey>> CoordinatorKey::Load(const std::string& path) {
  auto text = ReadPrivateFile(path, "the coordinator key file", 64 << 10);
  if (!text.ok()) return text.status();
  auto key = ParseKey(path, text.value(), [](BIO* b) { return PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr); });
  if (!key.ok()) return key.status();
  return std::unique_ptr<CoordinatorKey>(new CoordinatorKey(key.value()));
}

CoordinatorKey::~CoordinatorKey() { EVP_PKEY_free(key_); }

Bytes CoordinatorKey::Sign(const Bytes& message) const {
  Bytes signature(64);
  size_t length = signature.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_) == 1 &&
                  EVP_DigestSign(ctx, signature.data(), &length, message.data(), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return {};
  signature.resize(length);
  return signature;
}

Result<std::unique_ptr<CoordinatorPub>> CoordinatorPub::Load(const std::string& path) {
  auto text = ReadSmallFile(path, "the coordinator's public key file", 64 << 10);
  if (!text.ok()) return text.status();
  auto key = ParseKey(path, text.value(), [](BIO* b) { return PEM_read_bio_PUBKEY(b, nullptr, nullptr, nullptr); });
  if (!key.ok()) return key.status();
  return std::unique_ptr<CoordinatorPub>(new CoordinatorPub(key.value()));
}

CoordinatorPub::~CoordinatorPub() { EVP_PKEY_free(key_); }

bool CoordinatorPub::Verify(const Bytes& message, const Bytes& signature) const {
  if (signature.size() != 64) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key_) == 1 &&
                  EVP_DigestVerify(ctx, signature.data(), signature.size(), message.data(), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace strata
