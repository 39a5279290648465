#pragma once
// Digest: the one hasher of model files, manifests and shards — SHA-256
// (and SHA-1, for a git blob id) through OpenSSL, fed incrementally.
// Not thread-safe; one per stream of bytes.
#include <cstddef>
#include <memory>
#include <string>

struct evp_md_ctx_st;

namespace strata {

class Digest {
 public:
  static Digest Sha256();
  static Digest Sha1();
  Digest(Digest&&) = default;
  Digest& operator=(Digest&&) = default;

  void Update(const void* data, size_t n);
  // The digest in lower-case hex; the Digest is spent.
  std::string HexFinal();

 private:
  explicit Digest(bool sha256);
  std::unique_ptr<evp_md_ctx_st, void (*)(evp_md_ctx_st*)> ctx_;
};

// SHA-256 of a block of bytes, in hex.
std::string Sha256Hex(const void* data, size_t n);

}  // namespace strata
