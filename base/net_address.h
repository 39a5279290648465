#pragma once
// HOST:PORT, read one way everywhere: the nodes' and the coordinator's
// listen flags, node lists, cluster files, beacons and peer links. A host is
// a name or IPv4 address (letters, digits, '.', '-', '_'), "*", or an IPv6
// address in brackets ("[::1]:7700"); a port is 0..65535. And which hosts
// are this machine only (loopback) or every interface (wildcard), the checks
// behind "no open doors": a listener off loopback needs a secret or a key.
//
// Thread-safe: pure functions.
#include <cstdint>
#include <string>

#include "base/status.h"

namespace strata {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 address
  uint32_t port = 0;
};

// One error naming the text and what is wrong with it.
Result<HostPort> ParseHostPort(const std::string& text);
// The host of HOST:PORT; "" when the text does not parse.
std::string HostOf(const std::string& address);
// HOST:PORT again, an IPv6 host in brackets.
std::string JoinHostPort(const std::string& host, uint32_t port);

// 127.0.0.0/8, ::1 and localhost: no other machine reaches them.
bool IsLoopbackHost(const std::string& host);
// 0.0.0.0, :: and *: every interface.
bool IsWildcardHost(const std::string& host);

}  // namespace strata
