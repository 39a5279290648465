#pragma once
// `strata make-secret`: a new cluster secret, and with --tls a cluster CA and
// a member certificate signed by it (OpenSSL, ECDSA P-256, SHA-256). Every
// private file is created mode 0600 and never overwritten.
#include <string>

#include "base/status.h"

namespace strata {

// Writes the secret to `secret_path`.
Status WriteClusterSecret(const std::string& secret_path);
// Writes ca.pem, ca.key, cert.pem and key.pem into `dir` (created if needed):
// the member certificate names kTlsPeerName and is valid for `days` days.
Status WriteClusterTls(const std::string& dir, int days);

}  // namespace strata
