#pragma once
// The coordinator's key: an Ed25519 key pair that separates the right to
// run a pipeline from membership. The cluster secret makes a process a
// member (it may say hello and pass hidden states on, Upstream); a node
// started with --coordinator-pub grants the coordinator's rights (Control:
// loadShard, setNext, sessions) only to a hello signed with the matching
// private key over this connection's single-use nonces:
//   CoordinatorTranscript = "strata-coordinator-v1" | version | node_id |
//                           server_nonce | client_nonce | len | peer
// so a compromised member, which holds the secret, cannot re-link another
// node's pipeline, swap its model or open its sessions.
//
// Thread-safe once loaded: signing and verifying do not change the keys.
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "protocol/peer_auth.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace strata {

Bytes CoordinatorTranscript(uint32_t version, const Bytes& node_id, const Bytes& server_nonce,
                            const Bytes& client_nonce, const std::string& peer);

// Writes a new key pair: the private key to `key_path` (mode 0600, never
// over an existing file) and the public key to `pub_path` (0644).
Status WriteCoordinatorKeys(const std::string& key_path, const std::string& pub_path);
// Where the public key of `key_path` goes: "x.key" -> "x.pub", else + ".pub".
std::string CoordinatorPubPath(const std::string& key_path);

class CoordinatorKey {
 public:
  // A private key file (PEM, mode 0600: refused when others may read it).
  static Result<std::unique_ptr<CoordinatorKey>> Load(const std::string& path);
  ~CoordinatorKey();
  Bytes Sign(const Bytes& message) const;

 private:
  explicit CoordinatorKey(EVP_PKEY* key) : key_(key) {}
  EVP_PKEY* key_;
};

class CoordinatorPub {
 public:
  static Result<std::unique_ptr<CoordinatorPub>> Load(const std::string& path);
  ~CoordinatorPub();
  bool Verify(const Bytes& message, const Bytes& signature) const;

 private:
  explicit CoordinatorPub(EVP_PKEY* key) : key_(key) {}
  EVP_PKEY* key_;
};

}  // namespace strata
