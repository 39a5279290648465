#include "base/net_address.h"

#include <cctype>

#include "base/escape.h"

namespace strata {
namespace {

bool NameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_'; }

Status Bad(const std::string& text, const std::string& why) {
  return Status::Error("'" + EscapeText(text, 96) + "' is not HOST:PORT: " + why);
}

}  // namespace

Result<HostPort> ParseHostPort(const std::string& text) {
  if (text.empty() || text.size() > 255) return Bad(text, "it must be 1..255 bytes");
  HostPort out;
  size_t colon;
  if (text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Bad(text, "an IPv6 host is [ADDRESS]:PORT");
    }
    out.host = text.substr(1, close - 1);
    if (out.host.empty() || out.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      return Bad(text, "the bracketed host is not an IPv6 address");
    }
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string::npos) return Bad(text, "no ':PORT'");
    out.host = text.substr(0, colon);
    if (out.host.empty()) return Bad(text, "no host before ':'");
    if (out.host != "*") {
      for (char c : out.host) {
        if (!NameChar(c)) return Bad(text, "a host is a name or address (an IPv6 one in brackets)");
      }
    }
  }
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return Bad(text, "the port must be a number 0..65535");
  }
  out.port = static_cast<uint32_t>(std::stoul(port));
  return out;
}

std::string HostOf(const std::string& address) {
  auto parsed = ParseHostPort(address);
  return parsed.ok() ? parsed->host : "";
}

std::string JoinHostPort(const std::string& host, uint32_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  // 127.x.y.z: four dotted numbers, the first 127.
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return dots == 3;
}

bool IsWildcardHost(const std::string& host) { return host == "0.0.0.0" || host == "::" || host == "*"; }

}  // namespace strata
