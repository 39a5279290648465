// The node's memory accounting: hard budgets per tier, one clear refusal,
// charges released when dropped, and a budget that holds under threads.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "node/kv/memory_accountant.h"

namespace strata {
namespace {

TierBudgets RamBudget(uint64_t bytes) {
  TierBudgets b;
  b.bytes[static_cast<int>(MemoryTier::kRam)] = bytes;
  return b;
}

TEST(MemoryAccountant, ChargesUpToTheBudgetAndNoFurther) {
  MemoryAccountant memory(RamBudget(100 << 20));
  auto weights = memory.Charge(MemoryTier::kRam, 60 << 20, "shard [0, 4)");
  ASSERT_TRUE(weights.ok());
  EXPECT_EQ(memory.used(MemoryTier::kRam), 60u << 20);
  EXPECT_EQ(memory.free(MemoryTier::kRam), 40u << 20);
  auto too_much = memory.Charge(MemoryTier::kRam, 41 << 20, "a session of 64 tokens: KV cache");
  ASSERT_FALSE(too_much.ok());
  EXPECT_EQ(too_much.status().message(),
            "a session of 64 tokens: KV cache needs 41 MiB but the node's ram budget is 100 MiB (60 MiB in use)");
  EXPECT_FALSE(memory.Charge(MemoryTier::kDevice, 1, "x").ok()) << "a tier without a budget takes nothing";
  EXPECT_FALSE(memory.Charge(MemoryTier::kRam, ~0ull, "x").ok()) << "no overflow";
  auto rest = memory.Charge(MemoryTier::kRam, 40 << 20, "the rest");
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(memory.free(MemoryTier::kRam), 0u);
}

TEST(MemoryAccountant, ChargesAreReleasedWhenDroppedOrMoved) {
  MemoryAccountant memory(RamBudget(10));
  {
    auto a = memory.Charge(MemoryTier::kRam, 6, "a");
    ASSERT_TRUE(a.ok());
    MemoryCharge moved = std::move(a.value());
    EXPECT_EQ(moved.bytes(), 6u);
    EXPECT_EQ(memory.used(MemoryTier::kRam), 6u);
    MemoryCharge other;
    other = std::move(moved);
    EXPECT_EQ(memory.used(MemoryTier::kRam), 6u) << "a move neither charges nor releases";
    other.Reset();
    EXPECT_EQ(memory.used(MemoryTier::kRam), 0u);
    auto b = memory.Charge(MemoryTier::kRam, 10, "b");
    ASSERT_TRUE(b.ok());
  }
  EXPECT_EQ(memory.used(MemoryTier::kRam), 0u);
}

TEST(MemoryAccountant, TheBudgetHoldsUnderConcurrentCharges) {
  MemoryAccountant memory(RamBudget(1000));
  std::vector<std::thread> threads;
  std::atomic<uint64_t> peak{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&]() {
      for (int i = 0; i < 2000; ++i) {
        auto c = memory.Charge(MemoryTier::kRam, 1 + (i * 37) % 300, "x");
        const uint64_t used = memory.used(MemoryTier::kRam);
        uint64_t seen = peak.load();
        while (used > seen && !peak.compare_exchange_weak(seen, used)) {}
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), 1000u);
  EXPECT_EQ(memory.used(MemoryTier::kRam), 0u);
}

}  // namespace
}  // namespace strata
