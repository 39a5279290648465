// Layer planning: contiguous ranges in proportion to free memory, at least a
// layer each, never more bytes than a node has.
#include "coordinator/shard_plan.h"

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

}  // namespace
}  // namespace strata
