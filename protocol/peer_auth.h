#pragma once
// PeerAuth: the mutual challenge-response of a hello. Both ends hold the
// cluster secret; neither sends it. The client sends a fresh nonce; the node
// answers with its own nonce and ServerProof (so the client knows it reached
// a member, not whatever listens on that port); the client answers with
// ClientProof over both nonces. The node's nonce is single-use and belongs
// to one connection, so a recorded hello cannot be replayed.
//
//   ServerProof = HMAC-SHA256(secret, "strata-server-v1" | version | client_nonce | server_nonce)
//   ClientProof = HMAC-SHA256(secret, "strata-client-v1" | version | role | len | peer | server_nonce | client_nonce)
//
// Thread-safe: everything here is a pure function or immutable.
#include <kj/string.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace strata {

using Bytes = std::vector<uint8_t>;

inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kProofBytes = 32;  // SHA-256
inline constexpr size_t kMinSecretBytes = 16;
inline constexpr size_t kTicketBytes = 16;

// The cluster secret. An empty one means "no secret" (insecure mode).
class ClusterSecret {
 public:
  ClusterSecret() = default;
  explicit ClusterSecret(Bytes key) : key_(std::move(key)) {}

  // A file written by `strata make-secret`: its trimmed contents are the key.
  // Refuses a file others may read, and a key shorter than 16 bytes.
  static Result<ClusterSecret> LoadFile(const std::string& path);
  // From --cluster-secret-file, else the STRATA_CLUSTER_SECRET variable,
  // else no secret.
  static Result<ClusterSecret> FromFlagOrEnv(const std::string& file_flag);
  static ClusterSecret Generate();  // 32 random bytes

  bool empty() const { return key_.empty(); }
  const Bytes& key() const { return key_; }
  std::string Hex() const;  // what make-secret writes and --local passes on

 private:
  Bytes key_;
};

Bytes RandomBytes(size_t n);  // OpenSSL RAND_bytes; aborts if the RNG fails

Bytes ServerProof(const ClusterSecret& secret, uint32_t version, const Bytes& client_nonce, const Bytes& server_nonce);
Bytes ClientProof(const ClusterSecret& secret, uint32_t version, uint32_t role, const std::string& peer,
                  const Bytes& server_nonce, const Bytes& client_nonce);
Bytes Hmac(const ClusterSecret& secret, const Bytes& message);  // HMAC-SHA256
// Constant-time comparison (CRYPTO_memcmp); false on different lengths.
bool ProofsEqual(const Bytes& a, const Bytes& b);
// Whether an HTTP Authorization header (none: false) is "Bearer TOKEN", in
// constant time: the one check of the API key and of a model server's token.
bool BearerTokenMatches(kj::Maybe<kj::StringPtr> authorization, const std::string& token);

// Transcript builders (what is MACed or signed): raw bytes, and a uint32
// little-endian.
void Append(Bytes* out, const void* data, size_t n);
void AppendU32(Bytes* out, uint32_t v);

}  // namespace strata
