// Each KV eviction policy evicts in its documented order on one scripted
// access pattern, where the three rules disagree.
#include "node/kv/eviction_policy.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

enum : uint64_t { X = 1, Z = 2, W = 3, Y = 4 };

// X: six accesses long ago. Z: two, a little later. W: busy throughout.
// Y: one, just now. Then W again.
void Script(EvictionPolicy& p) {
  for (int i = 0; i < 6; ++i) p.Touch(X);   // t = 1..6
  for (int i = 0; i < 2; ++i) p.Touch(Z);   // t = 7..8
  for (int i = 0; i < 11; ++i) p.Touch(W);  // t = 9..19
  p.Touch(Y);                               // t = 20
  p.Touch(W);                               // t = 21
}

uint64_t VictimOf(const std::string& name, double lambda = 0.1, uint64_t exclude = 0) {
  auto policy = MakeEvictionPolicy(name, lambda);
  EXPECT_TRUE(policy.ok()) << policy.status().message();
  Script(*policy.value());
  uint64_t victim = 0;
  EXPECT_TRUE(policy.value()->Victim(exclude, &victim));
  return victim;
}

TEST(EvictionPolicy, EachRuleEvictsInItsDocumentedOrder) {
  EXPECT_EQ(VictimOf("lru"), X) << "accessed longest ago";
  EXPECT_EQ(VictimOf("lfu"), Y) << "fewest accesses";
  // CRF at t = 21 with lambda 0.3: X 0.168, Z 0.121, Y 0.81, W about 4: Z is
  // neither the oldest nor the least used, but the least valuable.
  EXPECT_EQ(VictimOf("adaptive", 0.3), Z);
  // lambda = 1 is LRU; a small lambda is LFU.
  EXPECT_EQ(VictimOf("adaptive", 1.0), X);
  EXPECT_EQ(VictimOf("adaptive", 0.001), Y);
}

TEST(EvictionPolicy, NeverTheExcludedSessionAndForgetsClosedOnes) {
  EXPECT_EQ(VictimOf("lru", 0.1, X), Z) << "the session that needs the room is not its own victim";
  EXPECT_EQ(VictimOf("lfu", 0.1, Y), Z);
  auto p = MakeEvictionPolicy("lru");
  ASSERT_TRUE(p.ok());
  uint64_t victim = 0;
  EXPECT_FALSE(p.value()->Victim(0, &victim)) << "nothing to evict";
  p.value()->Touch(7);
  EXPECT_FALSE(p.value()->Victim(7, &victim)) << "only the excluded one";
  p.value()->Touch(8);
  p.value()->Remove(7);
  ASSERT_TRUE(p.value()->Victim(0, &victim));
  EXPECT_EQ(victim, 8u);
}

TEST(EvictionPolicy, UnknownNamesAndBadLambdaAreRefused) {
  EXPECT_NE(MakeEvictionPolicy("fifo").status().message().find("unknown KV eviction policy 'fifo'"),
            std::string::npos);
  EXPECT_FALSE(MakeEvictionPolicy("adaptive", 0).ok());
  EXPECT_FALSE(MakeEvictionPolicy("adaptive", 1.5).ok());
}

}  // namespace
}  // namespace strata
