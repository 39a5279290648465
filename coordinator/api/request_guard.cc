#include "coordinator/api/request_guard.h"

#include <algorithm>
#include <cctype>

#include "base/escape.h"
#include "base/net_address.h"

namespace strata {
namespace {

// The host of "HOST[:PORT]" (a Host header, an origin's authority), by the
// one HOST:PORT parser; "" when it is not one.
std::string AuthorityHost(const std::string& authority) {
  auto parsed = ParseHostPort(authority);
  if (!parsed.ok()) parsed = ParseHostPort(authority + ":80");  // no port given
  return parsed.ok() ? parsed->host : "";
}

// Whether an Origin ("scheme://host[:port]", or "null") names this machine.
bool LocalOrigin(const std::string& origin) {
  const size_t at = origin.find("://");
  if (at == std::string::npos) return false;  // "null": a sandboxed frame or a file
  const std::string authority = origin.substr(at + 3, origin.find('/', at + 3) - at - 3);
  return authority.find('@') == std::string::npos && IsLoopbackHost(AuthorityHost(authority));
}

bool IsJson(std::string type) {
  type = type.substr(0, type.find(';'));
  type.erase(std::remove_if(type.begin(), type.end(), [](unsigned char c) { return std::isspace(c); }), type.end());
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  return type == "application/json";
}

}  // namespace

std::optional<ApiError> GuardRequest(bool loopback_bind, const RequestFacts& r) {
  if (loopback_bind && r.host && !IsLoopbackHost(AuthorityHost(*r.host))) {
    return ApiError{403, "Host '" + EscapeText(*r.host, 100) + "' is not this server (it serves this machine only)",
                    "invalid_request_error", ""};
  }
  if (loopback_bind && r.origin && !LocalOrigin(*r.origin)) {
    return ApiError{403, "requests from the web page at '" + EscapeText(*r.origin, 100) + "' are not allowed",
                    "invalid_request_error", ""};
  }
  if (r.post && (!r.content_type || !IsJson(*r.content_type))) {
    return ApiError{415, "a POST body must be JSON (Content-Type: application/json)", "invalid_request_error", ""};
  }
  return std::nullopt;
}

}  // namespace strata
