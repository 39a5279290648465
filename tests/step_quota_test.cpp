// The node's queue of taken steps is bounded (node/server/step_quota): per
// session, in all and in bytes, each share given back when its step is done.
// Against a real node: a flood of submitted steps from a peer holding the
// secret is refused past the quota, nothing of it runs beyond what the quota
// took, and the node goes on serving.
#include "node/server/step_quota.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/cluster/local_cluster.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

TEST(StepQuotaTest, SessionsStepsAndBytesAreBoundedAndGivenBack) {
  StepQuota quota(QuotaLimits{5, 2, 1000});
  std::vector<std::unique_ptr<StepQuota::Hold>> held;
  for (int i = 0; i < 2; ++i) {
    auto h = quota.Take(1, 100);
    ASSERT_TRUE(h.ok()) << h.status().message();
    held.push_back(std::move(h.value()));
  }
  auto third = quota.Take(1, 100);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.status().message().find("already has 2 steps queued"), std::string::npos)
      << third.status().message();
  auto big = quota.Take(2, 801);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("MiB of queued inputs"), std::string::npos) << big.status().message();
  for (uint64_t s = 2; s < 5; ++s) {
    auto h = quota.Take(s, 10);
    ASSERT_TRUE(h.ok());
    held.push_back(std::move(h.value()));
  }
  auto sixth = quota.Take(9, 10);
  ASSERT_FALSE(sixth.ok());
  EXPECT_NE(sixth.status().message().find("5 steps queued (at most 5)"), std::string::npos);
  EXPECT_EQ(quota.steps(), 5u);
  EXPECT_EQ(quota.bytes(), 230u);
  held.clear();
  EXPECT_EQ(quota.steps(), 0u);
  EXPECT_EQ(quota.bytes(), 0u);
  EXPECT_TRUE(quota.Take(1, 1000).ok()) << "every share came back";
}

constexpr const char* kSecret = "quota-test-secret-0123456789abcdef";

TEST(StepQuotaTest, AFloodOfStepsIsRefusedPastTheQuotaAndTheNodeServesOn) {
  testing::TempDir dir;
  TestModelSpec spec;
  spec.layers = 2;
  spec.context = 2048;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  LocalClusterOptions o;
  o.nodes = 1;
  o.node_binary = testing::BinDir() + "/strata-node";
  o.models_dirs = {testing::TempRoot()};
  o.threads = 1;
  o.secret = kSecret;
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  const std::string address = cluster.value()->addresses()[0];
  auto io = kj::setupAsyncIo();
  auto link = testing::Connect(io, address, kSecret);
  testing::Load(io, *link, dir / "m", 0, 2);
  testing::SetNext(io, *link, "", 0, 1);
  auto steps = [&]() { return link->control.infoRequest().send().wait(io.waitScope).getInfo().getStepsComputed(); };
  const uint64_t before = steps();
  testing::Opened s = testing::Open(io, *link, 2048);
  testing::SinkOnStages sink = testing::SetSink(io, {&s.session});
  // 256 prompt steps of 1,000 tokens each, all sent before any is answered.
  std::vector<kj::Promise<void>> sent;
  for (int i = 0; i < 256; ++i) {
    auto req = s.session.submitRequest();
    auto ids = req.initStep().initInput().initTokens(1000);
    for (unsigned j = 0; j < 1000; ++j) ids.set(j, 1 + j % 150);
    sent.push_back(req.send().ignoreResult());
  }
  int refused = 0;
  std::string why;
  for (auto& p : sent) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { p.wait(io.waitScope); })) {
      ++refused;
      why = e->getDescription().cStr();
    }
  }
  EXPECT_GE(refused, 256 - 8) << "at most the session's quota was taken";
  EXPECT_NE(why.find("steps queued on this node (at most 8)"), std::string::npos) << why;
  // What was taken runs and its shares come back: the session is served again.
  testing::Opened next = testing::Open(io, *link, 16);
  EXPECT_LT(testing::SubmitTokens(io, next.session, 0, {1, 2, 3}), static_cast<uint32_t>(spec.vocab));
  EXPECT_LE(steps() - before, 8u + 1u) << "nothing past the quota ran";
}

}  // namespace
}  // namespace strata
