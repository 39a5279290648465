#include "storage/digest.h"

#include <openssl/evp.h>

#include "base/hex.h"

namespace strata {

Digest::Digest(bool sha256) : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  EVP_DigestInit_ex(ctx_.get(), sha256 ? EVP_sha256() : EVP_sha1(), nullptr);
}

Digest Digest::Sha256() { return Digest(true); }
Digest Digest::Sha1() { return Digest(false); }

void Digest::Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }

std::string Digest::HexFinal() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_.get(), digest, &len);
  return HexEncode(digest, len);
}

std::string Sha256Hex(const void* data, size_t n) {
  Digest d = Digest::Sha256();
  d.Update(data, n);
  return d.HexFinal();
}

}  // namespace strata
