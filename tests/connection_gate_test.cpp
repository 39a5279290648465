// protocol/connection_gate at a real node's front door: with every slot
// taken by strangers from many addresses (each within its per-address cap),
// a member that proves the secret still gets in at once, the oldest silent
// stranger making room for it, instead of waiting out their hello deadline.
#include "protocol/connection_gate.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/cluster/local_cluster.h"
#include "tests/raw_peer.h"
#include "tests/serve_util.h"
#include "tests/test_util.h"

namespace strata {
namespace {

constexpr const char* kSecret = "gate-test-secret-0123456789abcdef";

TEST(ConnectionGateTest, SilentStrangersFromManyAddressesCannotKeepAMemberOut) {
  LocalClusterOptions o;
  o.nodes = 1;
  o.node_binary = testing::BinDir() + "/strata-node";
  o.threads = 1;
  o.secret = kSecret;
  o.log_level = "info";
  o.extra_args = {"--max-connections", "16", "--max-connections-per-peer", "4", "--hello-timeout-ms", "60000"};
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  const std::string address = cluster.value()->addresses()[0];
  std::vector<std::unique_ptr<testing::RawClient>> silent;
  for (int a = 2; a <= 6; ++a) {  // 5 addresses x 4: more than the 16 slots
    for (int i = 0; i < 4; ++i) {
      silent.push_back(std::make_unique<testing::RawClient>(address, 0, "127.0.0." + std::to_string(a)));
      ASSERT_TRUE(silent.back()->connected());
    }
  }
  auto io = kj::setupAsyncIo();
  const auto t0 = std::chrono::steady_clock::now();
  auto link = testing::Connect(io, address, kSecret);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << "not after the 60 s hello deadline";
  EXPECT_TRUE(link->info().getSecured());
  int closed = 0;
  for (auto& c : silent) closed += c->ClosedByPeer(100) ? 1 : 0;
  EXPECT_GE(closed, 5) << "the excess and the stranger that made room were closed";
  EXPECT_LT(closed, 20) << "the others wait for their hello deadline as before";
}

}  // namespace
}  // namespace strata
