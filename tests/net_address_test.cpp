// base/net_address: the one HOST:PORT parser and loopback check.
#include "base/net_address.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(NetAddress, ParsesNamesIpv4AndBracketedIpv6) {
  struct Case {
    const char* text;
    const char* host;
    uint32_t port;
  };
  for (const Case& c : {Case{"127.0.0.1:7700", "127.0.0.1", 7700}, Case{"box-a.lan:80", "box-a.lan", 80},
                        Case{"[::1]:7700", "::1", 7700}, Case{"[fe80::1:2]:0", "fe80::1:2", 0},
                        Case{"*:8000", "*", 8000}, Case{"0.0.0.0:65535", "0.0.0.0", 65535}}) {
    auto parsed = ParseHostPort(c.text);
    ASSERT_TRUE(parsed.ok()) << c.text << ": " << parsed.status().message();
    EXPECT_EQ(parsed->host, c.host) << c.text;
    EXPECT_EQ(parsed->port, c.port) << c.text;
    EXPECT_EQ(JoinHostPort(parsed->host, parsed->port), c.text);
  }
}

TEST(NetAddress, RefusesWhatIsNotHostPortNamingIt) {
  for (const char* text : {"", "127.0.0.1", ":80", "host:", "host:65536", "host:8x", "::1:7700", "[::1]7700",
                           "[]:80", "[::g]:80", "a b:80", "host:80/path", "unix:/tmp/socket", "h\n:80"}) {
    auto parsed = ParseHostPort(text);
    EXPECT_FALSE(parsed.ok()) << "'" << text << "' parsed";
    if (!parsed.ok()) EXPECT_NE(parsed.status().message().find("is not HOST:PORT"), std::string::npos);
  }
  EXPECT_NE(ParseHostPort("h\n:80").status().message().find("h\\x0a"), std::string::npos) << "escaped";
  EXPECT_EQ(HostOf("nonsense"), "");
}

TEST(NetAddress, LoopbackIsOnlyThisMachine) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) EXPECT_TRUE(IsLoopbackHost(host)) << host;
  // A name that starts like a loopback address is somebody's machine.
  for (const char* host : {"127.0.0.1.evil.example", "127.example", "0.0.0.0", "10.0.0.1", "*", "", "[::1]"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "*"}) EXPECT_TRUE(IsWildcardHost(host)) << host;
  EXPECT_FALSE(IsWildcardHost("127.0.0.1"));
}

}  // namespace
}  // namespace strata
