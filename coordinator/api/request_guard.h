#pragma once
// RequestGuard: what every API request must show before any handler sees
// it, against a web page in the user's own browser.
// - DNS rebinding: on a loopback bind (no API key needed), the Host header
//   must name this machine (127.0.0.0/8, ::1, localhost), so a page whose
//   name was re-pointed at 127.0.0.1 cannot read the API.
// - CSRF: an Origin header, where a browser sends one, must name this
//   machine on a loopback bind; and a POST must say Content-Type:
//   application/json, which no cross-site form can send without a CORS
//   preflight, which this server never grants.
// A request the guard refuses gets 403 (Host, Origin) or 415 (Content-Type).
//
// Thread-safe: plain functions of their arguments.
#include <optional>
#include <string>

#include "coordinator/api/openai_api.h"

namespace strata {

struct RequestFacts {
  bool post = false;
  std::optional<std::string> host, origin, content_type;  // nullopt: no such header
};

// nullopt when the request may go on; else the error to answer it with.
std::optional<ApiError> GuardRequest(bool loopback_bind, const RequestFacts& request);

}  // namespace strata
