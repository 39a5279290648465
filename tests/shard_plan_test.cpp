// Layer planning: contiguous ranges in proportion to free memory, at least a
// layer each, never more bytes than a node has.
#include "coordinator/pipeline/shard_plan.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

ModelCosts Uniform(int layers, uint64_t layer_bytes, uint64_t embed, uint64_t head) {
  ModelCosts c;
  c.layer_bytes.assign(layers, layer_bytes);
  c.embed_bytes = embed;
  c.head_bytes = head;
  return c;
}

std::vector<NodeCapacity> Nodes(std::vector<uint64_t> free) {
  std::vector<NodeCapacity> out;
  for (size_t i = 0; i < free.size(); ++i) out.push_back({"n" + std::to_string(i), "h:" + std::to_string(i), free[i]});
  return out;
}

void ExpectCovers(const ShardPlan& p, int layers) {
  ASSERT_FALSE(p.stages.empty());
  EXPECT_EQ(p.stages.front().first_layer, 0);
  EXPECT_EQ(p.stages.back().end_layer, layers);
  for (size_t i = 0; i < p.stages.size(); ++i) {
    EXPECT_LT(p.stages[i].first_layer, p.stages[i].end_layer);
    if (i > 0) EXPECT_EQ(p.stages[i].first_layer, p.stages[i - 1].end_layer);
  }
}

TEST(ShardPlanTest, EqualNodesSplitEvenly) {
  auto p = PlanShards(Uniform(22, 100, 150, 150), Nodes({10000, 10000, 10000}));
  ASSERT_TRUE(p.ok()) << p.status().message();
  ExpectCovers(p.value(), 22);
  for (const auto& s : p->stages) EXPECT_NEAR(static_cast<double>(s.bytes), 2500.0 / 3, 110.0);
}

TEST(ShardPlanTest, ProportionalToFreeMemory) {
  auto p = PlanShards(Uniform(12, 100, 0, 0), Nodes({3000, 1000}));
  ASSERT_TRUE(p.ok());
  ExpectCovers(p.value(), 12);
  EXPECT_EQ(p->stages[0].end_layer, 9);
}

TEST(ShardPlanTest, EveryNodeGetsALayer) {
  auto p = PlanShards(Uniform(4, 100, 0, 0), Nodes({1000000, 1000, 1000, 1000}));
  ASSERT_TRUE(p.ok());
  ExpectCovers(p.value(), 4);
  for (const auto& s : p->stages) EXPECT_EQ(s.end_layer - s.first_layer, 1);
}

TEST(ShardPlanTest, RefusesMoreNodesThanLayers) {
  auto p = PlanShards(Uniform(2, 100, 0, 0), Nodes({1000, 1000, 1000}));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("more nodes (3) than layers (2)"), std::string::npos);
}

TEST(ShardPlanTest, RefusesToOvercommitANode) {
  auto p = PlanShards(Uniform(4, 1 << 20, 0, 0), Nodes({3 << 20, (1 << 20) - 1}));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("but has only"), std::string::npos) << p.status().message();
}

// The speed-aware split: measured bandwidths, memory bounds, nodes left out.
std::vector<NodeCapacity> Measured(std::vector<std::pair<uint64_t, double>> nodes) {
  std::vector<NodeCapacity> out;
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeCapacity c{"n" + std::to_string(i), "host" + std::to_string(i) + ":7700", nodes[i].first};
    c.bandwidth_gbps = nodes[i].second;
    out.push_back(c);
  }
  return out;
}

int Layers(const StageAssignment& s) { return static_cast<int>(s.end_layer - s.first_layer); }

TEST(ShardPlanTest, FasterNodesGetMoreLayers) {
  // 24 layers of 100 MB; node 0 twice as fast as the others.
  auto p = PlanShardsBySpeed(Uniform(24, 100'000'000, 0, 0), Measured({{1ull << 40, 40}, {1ull << 40, 20}, {1ull << 40, 20}}));
  ASSERT_TRUE(p.ok()) << p.status().message();
  ExpectCovers(p.value(), 24);
  ASSERT_EQ(p->stages.size(), 3u);
  EXPECT_EQ(Layers(p->stages[0]), 12);
  EXPECT_EQ(Layers(p->stages[1]), 6);
  EXPECT_EQ(Layers(p->stages[2]), 6);
  EXPECT_NEAR(p->slowest_ms, 30.0, 1e-9);  // 600 MB at 20 GB/s, 1200 MB at 40 GB/s
  EXPECT_NEAR(p->tokens_per_s, 1000.0 / (90.0 + 2 * kHopMs), 1e-9);
  EXPECT_TRUE(p->left_out.empty());
}

TEST(ShardPlanTest, MemoryBoundsTheFastNode) {
  // Node 0 is fastest but holds only 3 layers.
  auto p = PlanShardsBySpeed(Uniform(12, 100, 0, 0), Measured({{300, 100}, {1ull << 30, 10}, {1ull << 30, 10}}));
  ASSERT_TRUE(p.ok()) << p.status().message();
  ExpectCovers(p.value(), 12);
  ASSERT_EQ(p->stages.size(), 3u);
  EXPECT_EQ(Layers(p->stages[0]), 3);
  for (const auto& s : p->stages) EXPECT_LE(s.bytes, 1ull << 30);
}

TEST(ShardPlanTest, NodesThatWouldNotHelpAreLeftOutWithTheirReason) {
  // Node 1 is 100 times slower: any layer on it would be the slowest stage.
  // Node 2 has no room for one layer.
  auto p = PlanShardsBySpeed(Uniform(8, 1000, 0, 0), Measured({{1ull << 30, 50}, {1ull << 30, 0.5}, {999, 50}, {1ull << 30, 50}}));
  ASSERT_TRUE(p.ok()) << p.status().message();
  ExpectCovers(p.value(), 8);
  ASSERT_EQ(p->stages.size(), 2u);
  EXPECT_EQ(p->stages[0].node, 0u);
  EXPECT_EQ(p->stages[1].node, 3u);
  ASSERT_EQ(p->left_out.size(), 2u);
  EXPECT_EQ(p->left_out[0].node, 1u);
  EXPECT_NE(p->left_out[0].why.find("would not make the slowest stage faster"), std::string::npos) << p->left_out[0].why;
  EXPECT_EQ(p->left_out[1].node, 2u);
  EXPECT_NE(p->left_out[1].why.find("no room for one layer"), std::string::npos) << p->left_out[1].why;
  const std::string table = p->Table(Measured({{1ull << 30, 50}, {1ull << 30, 0.5}, {999, 50}, {1ull << 30, 50}}));
  EXPECT_NE(table.find("left out: n1"), std::string::npos) << table;
  EXPECT_NE(table.find("tokens/s"), std::string::npos) << table;
}

TEST(ShardPlanTest, SpeedPlanIsDeterministicAndFallsBackWithoutMeasurements) {
  auto nodes = Measured({{1ull << 30, 13}, {1ull << 30, 17}, {1ull << 30, 11}});
  auto a = PlanShardsBySpeed(Uniform(22, 12345, 999, 777), nodes);
  auto b = PlanShardsBySpeed(Uniform(22, 12345, 999, 777), nodes);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->Table(nodes), b->Table(nodes));
  nodes[1].bandwidth_gbps = 0;  // one node not measured: split by memory
  auto c = PlanShardsBySpeed(Uniform(22, 12345, 999, 777), nodes);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->slowest_ms, 0.0);
  ExpectCovers(c.value(), 22);
  // Nodes of one machine share its memory bus: split by memory too.
  auto one = Measured({{1ull << 30, 13}, {1ull << 30, 17}});
  for (auto& n : one) n.address = "127.0.0.1:" + n.name;
  auto d = PlanShardsBySpeed(Uniform(22, 12345, 999, 777), one);
  ASSERT_TRUE(d.ok());
  EXPECT_NE(d->basis.find("share one machine"), std::string::npos) << d->basis;
}

}  // namespace
}  // namespace strata
