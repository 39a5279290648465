// The coordinator key (protocol/coordinator_key): a node started with
// --coordinator-pub grants the coordinator's rights only to a hello signed
// with the matching private key over that connection's nonces. A member
// holding only the cluster secret gets the upstream link and nothing else;
// the real coordinator, with its key, runs the pipeline as before.
#include "protocol/coordinator_key.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "coordinator/cluster/local_cluster.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::BinDir;
using testing::RunProcess;
using testing::TempDir;

TEST(CoordinatorKeyTest, SignaturesBindTheNodeAndTheNonces) {
  TempDir dir;
  ASSERT_TRUE(WriteCoordinatorKeys(dir / "c.key", dir / "c.pub").ok());
  struct stat st;
  ASSERT_EQ(::stat((dir / "c.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(WriteCoordinatorKeys(dir / "c.key", dir / "c.pub").ok()) << "never over an existing key";
  auto key = CoordinatorKey::Load(dir / "c.key");
  auto pub = CoordinatorPub::Load(dir / "c.pub");
  ASSERT_TRUE(key.ok() && pub.ok());
  const Bytes node(16, 1), nonce(32, 2), client(32, 3);
  const Bytes signature = key.value()->Sign(CoordinatorTranscript(5, node, nonce, client, "coordinator"));
  EXPECT_TRUE(pub.value()->Verify(CoordinatorTranscript(5, node, nonce, client, "coordinator"), signature));
  EXPECT_FALSE(pub.value()->Verify(CoordinatorTranscript(5, node, Bytes(32, 9), client, "coordinator"), signature))
      << "another connection's nonce: a recorded hello proves nothing";
  EXPECT_FALSE(pub.value()->Verify(CoordinatorTranscript(5, Bytes(16, 7), nonce, client, "coordinator"), signature))
      << "another node";
  EXPECT_FALSE(pub.value()->Verify(CoordinatorTranscript(5, node, nonce, client, "coordinator"), Bytes(64, 0)));
  EXPECT_EQ(CoordinatorPubPath("a/coordinator.key"), "a/coordinator.pub");
  ::chmod((dir / "c.key").c_str(), 0644);
  auto open = CoordinatorKey::Load(dir / "c.key");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("readable by others"), std::string::npos);
  auto wrong = CoordinatorPub::Load(dir / "c.key");
  EXPECT_FALSE(wrong.ok()) << "a private key is not a public key file";
}

constexpr const char* kSecret = "coordinator-key-test-0123456789abcdef";

TEST(CoordinatorKeyTest, OnlyTheKeyHolderCoordinatesAMemberOnlyForwards) {
  TempDir dir;
  auto made = RunProcess({BinDir() + "/strata", "make-secret", "--out", dir / "secret", "--coordinator-key",
                          dir / "coordinator.key"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  TempDir other;
  ASSERT_TRUE(WriteCoordinatorKeys(other / "x.key", other / "x.pub").ok());
  TestModelSpec spec;
  spec.layers = 2;
  testing::MakeModel(dir / "m", spec);
  LocalClusterOptions o;
  o.nodes = 1;
  o.node_binary = BinDir() + "/strata-node";
  o.models_dirs = {testing::TempRoot()};
  o.threads = 1;
  o.secret = kSecret;
  o.extra_args = {"--coordinator-pub", dir / "coordinator.pub"};
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  const std::string address = cluster.value()->addresses()[0];
  auto io = kj::setupAsyncIo();
  // The secret alone: a coordinator's hello is refused, a member's is let in.
  const std::string refused = testing::ErrorOf([&]() { testing::Connect(io, address, kSecret); });
  EXPECT_NE(refused.find("not signed with this cluster's coordinator key"), std::string::npos) << refused;
  auto member = testing::Connect(io, address, kSecret, wire::PeerRole::STAGE);
  EXPECT_NE(testing::ErrorOf([&]() { member->control.infoRequest().send().wait(io.waitScope); }), "")
      << "a member has no Control";
  // The coordinator with its key runs the pipeline; without it, or with another key, it cannot.
  std::ofstream(dir / "cs") << kSecret << "\n";
  ::chmod((dir / "cs").c_str(), 0600);
  auto generate = [&](const std::string& key) {
    std::vector<std::string> argv = {BinDir() + "/strata", "generate", "--model", dir / "m", "--nodes", address,
                                     "--cluster-secret-file", dir / "cs", "--prompt", "hello", "--max-tokens", "3"};
    if (!key.empty()) argv.insert(argv.end(), {"--coordinator-key", key});
    return RunProcess(argv, 60);
  };
  auto keyed = generate(dir / "coordinator.key");
  EXPECT_EQ(keyed.exit_code, 0) << keyed.err;
  for (const std::string& key : {std::string(), other / "x.key"}) {
    auto r = generate(key);
    EXPECT_EQ(r.exit_code, 1) << key;
    EXPECT_NE(r.err.find("not signed with this cluster's coordinator key"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace strata
