// A node's memory under load: 64 sessions of random lengths on one real
// strata-node with a small RAM budget. Its accounting of weights, KV pages
// and buffers never exceeds the budget; what does not fit is refused with
// one clear error naming the tier and its budget, and the node serves on.
#include <gtest/gtest.h>

#include <kj/vector.h>

#include <random>

#include "coordinator/local_cluster.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

uint64_t RamUsed(kj::AsyncIoContext& io, PeerLink& link, uint64_t* budget) {
  auto info = link.control.infoRequest().send().wait(io.waitScope).getInfo();
  for (auto t : info.getTiers()) {
    if (std::string(t.getTier().cStr()) == "ram") {
      *budget = t.getBudgetBytes();
      return t.getUsedBytes();
    }
  }
  ADD_FAILURE() << "no ram tier in the node's info";
  return 0;
}

TEST(NodeMemoryTest, BudgetHoldsWith64SessionsOfRandomLengths) {
  testing::TempDir dir;
  TestModelSpec spec;
  spec.layers = 4;
  spec.hidden = 128;
  spec.heads = 4;
  spec.kv_heads = 4;
  spec.context = 2048;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  LocalClusterOptions o;
  o.nodes = 1;
  o.node_binary = testing::BinDir() + "/strata-node";
  o.threads = 1;
  o.memory_per_node = 24u << 20;  // weights ~3 MiB; KV 4 KiB a token: room for a few thousand tokens
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  auto io = kj::setupAsyncIo();
  auto link = testing::Connect(io, cluster.value()->addresses()[0], "");
  auto load = link->control.loadShardRequest();
  load.initSpec().setModelDir(dir / "m");
  load.getSpec().setEndLayer(4);
  load.send().wait(io.waitScope);
  auto next = link->control.setNextRequest();
  next.setStageCount(1);
  next.send().wait(io.waitScope);

  std::mt19937 rng(7);
  std::vector<wire::Session::Client> sessions;
  std::vector<uint32_t> lengths;
  for (int i = 0; i < 64; ++i) {
    auto open = link->control.openSessionRequest();
    open.setCapacity(2048);
    open.initSampling().setTopP(1.0f);
    sessions.push_back(open.send().wait(io.waitScope).getSession());
    lengths.push_back(0);
  }
  uint64_t budget = 0, peak = 0;
  int refused = 0, served = 0;
  for (int round = 0; round < 6; ++round) {
    // Every session asks at once: the node sees 64 concurrent steps.
    kj::Vector<kj::Promise<void>> steps;
    std::vector<std::string> errors(sessions.size());
    for (size_t i = 0; i < sessions.size(); ++i) {
      const uint32_t n = 1 + rng() % 160;
      auto req = sessions[i].forwardRequest();
      req.initStep().setStartPos(lengths[i]);
      auto ids = req.getStep().initInput().initTokens(n);
      for (uint32_t j = 0; j < n; ++j) ids.set(j, 1 + (j * 7 + i) % 400);
      steps.add(req.send().then(
          [&, i, n](auto&&) { lengths[i] += n; ++served; },
          [&, i](kj::Exception&& e) { errors[i] = e.getDescription().cStr(); ++refused; }));
    }
    kj::joinPromises(steps.releaseAsArray()).wait(io.waitScope);
    for (const auto& e : errors) {
      if (e.empty()) continue;
      EXPECT_NE(e.find("but the node's ram budget is"), std::string::npos) << e;
    }
    peak = std::max(peak, RamUsed(io, *link, &budget));
    // Half the sessions end; new ones take their place.
    for (size_t i = round % 2; i < sessions.size(); i += 2) {
      sessions[i] = nullptr;
      auto open = link->control.openSessionRequest();
      open.setCapacity(2048);
      open.initSampling().setTopP(1.0f);
      sessions[i] = open.send().wait(io.waitScope).getSession();
      lengths[i] = 0;
    }
  }
  EXPECT_EQ(budget, 24u << 20);
  EXPECT_LE(peak, budget) << "the node's accounting went over its budget";
  EXPECT_GT(served, 64) << "most steps fit";
  EXPECT_GT(refused, 0) << "the budget was small enough to refuse some";
  RecordProperty("steps_served", served);
  RecordProperty("steps_refused", refused);
  // The node serves on.
  sessions.clear();
  auto open = link->control.openSessionRequest();
  open.setCapacity(16);
  open.initSampling().setTopP(1.0f);
  auto s = open.send().wait(io.waitScope).getSession();
  auto req = s.forwardRequest();
  req.initStep().initInput().initTokens(1).set(0, 1);
  req.send().wait(io.waitScope);
}

}  // namespace
}  // namespace strata
