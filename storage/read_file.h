#pragma once
// Reading small files whole, bounded: ReadSmallFile for any (a mark, a
// config), and ReadPrivateFile, the one way Strata reads a file that holds a secret (the
// cluster secret, an API key, a TLS private key). It is refused, with the
// command that fixes it, when its group or others may read or write it, and
// when it is not a regular file or is over `max_bytes`: a secret that other
// users of the machine can read is no secret.
//
// Thread-safe: a plain function.
#include <cstddef>
#include <string>

#include "base/status.h"

namespace strata {

// The whole of a regular file of at most `max_bytes`; `what` names it in
// errors ("the API key file").
Result<std::string> ReadSmallFile(const std::string& path, const std::string& what, size_t max_bytes);
// The same, refused when its group or others may read or write it.
Result<std::string> ReadPrivateFile(const std::string& path, const std::string& what, size_t max_bytes);

}  // namespace strata
