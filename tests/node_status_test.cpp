// NodeStatus: a node's NodeInfo read once (a peer's strings escaped and
// bounded) and rendered once as Prometheus text.
#include "protocol/node_status.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <string>

#include "base/escape.h"

namespace strata {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(NodeStatusTest, ReadsEveryFieldAndBoundsAPeersText) {
  capnp::MallocMessageBuilder message;
  auto info = message.initRoot<wire::NodeInfo>();
  info.setName("evil\n\"node\"" + std::string(200, 'x'));
  info.setActiveSessions(3);
  info.setStepsComputed(41);
  info.setComputeMicros(250000);
  info.setUptimeMicros(1000000);
  auto tiers = info.initTiers(12);  // more than anybody has
  for (unsigned i = 0; i < tiers.size(); ++i) {
    tiers[i].setTier("ram");
    tiers[i].setUsedBytes(i);
    tiers[i].setBudgetBytes(100);
  }
  info.getSwap().setBytesOut(7);
  info.getSwap().setRamMisses(2);
  const NodeStatus s = ReadNodeInfo(info.asReader(), "10.0.0.1:7700");
  EXPECT_EQ(s.address, "10.0.0.1:7700");
  EXPECT_EQ(s.name.find('\n'), std::string::npos) << "a peer's newline is escaped";
  EXPECT_LE(s.name.size(), 64u + 8u) << "and its name bounded";
  EXPECT_EQ(s.tiers.size(), 8u) << "at most eight tiers are kept";
  EXPECT_EQ(s.active_sessions, 3u);
  EXPECT_EQ(s.steps, 41u);
  EXPECT_EQ(s.swap.bytes_out, 7u);
  EXPECT_EQ(s.swap.ram_misses, 2u);
}

TEST(NodeStatusTest, RendersEachFamilyOnceWithEveryNodesSamples) {
  NodeStatus a;
  a.name = "a";
  a.active_sessions = 2;
  a.compute_micros = 250000;
  a.uptime_micros = 1000000;
  a.tiers = {{"ram", 10, 100}};
  NodeStatus b = a;
  b.name = "b\"";
  const std::string text = NodeMetricsText({{"stage=\"0\",node=\"a\"", true, a},
                                            {"stage=\"1\",node=\"" + EscapePromLabel(b.name) + "\"", true, b},
                                            {"stage=\"2\",node=\"c\"", false, NodeStatus{}}});
  EXPECT_EQ(Count(text, "# HELP strata:node_active_sessions "), 1u) << text;
  EXPECT_EQ(Count(text, "# TYPE strata:node_steps_total counter"), 1u) << text;
  EXPECT_NE(text.find("strata:node_active_sessions{stage=\"0\",node=\"a\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("strata:node_active_sessions{stage=\"1\",node=\"b\\\"\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("strata:node_idle_fraction{stage=\"0\",node=\"a\"} 0.75\n"), std::string::npos) << text;
  EXPECT_NE(text.find("strata:node_memory_budget_bytes{stage=\"0\",node=\"a\",tier=\"ram\"} 100\n"), std::string::npos);
  EXPECT_NE(text.find("strata:node_up{stage=\"2\",node=\"c\"} 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("strata:node_active_sessions{stage=\"2\""), std::string::npos) << "a node that is down has only node_up";
}

}  // namespace
}  // namespace strata
