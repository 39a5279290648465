// Admission by slots and KV: requests reserve prompt + max_tokens positions
// of the cluster's KV; those that do not fit wait in FIFO order (a small one
// does not overtake a big one), a full queue turns requests away, and a
// waiter whose caller left is skipped.
#include "coordinator/api/admission.h"

#include <gtest/gtest.h>
#include <kj/async.h>
#include <kj/debug.h>

namespace strata {
namespace {

bool Ready(kj::Promise<void>& p, kj::WaitScope& ws) { return p.poll(ws); }

TEST(AdmissionTest, KvCapacityAdmitsQueuesAndTurnsAway) {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  Admission a(/*max_running=*/8, /*max_queue=*/2, /*kv_tokens=*/100);
  auto first = a.Admit(60);
  KJ_IF_MAYBE(p, first) { EXPECT_TRUE(Ready(*p, ws)); } else { FAIL() << "room for the first"; }
  EXPECT_EQ(a.kv_reserved(), 60);
  auto big = a.Admit(50);    // 110 > 100: waits
  auto small = a.Admit(10);  // would fit, but waits behind the big one (FIFO)
  ASSERT_TRUE(big != nullptr && small != nullptr);
  kj::Promise<void> big_p = kj::mv(KJ_ASSERT_NONNULL(big)), small_p = kj::mv(KJ_ASSERT_NONNULL(small));
  EXPECT_FALSE(Ready(big_p, ws));
  EXPECT_FALSE(Ready(small_p, ws));
  EXPECT_EQ(a.waiting(), 2);
  EXPECT_TRUE(a.Admit(1) == nullptr) << "the queue is full";
  a.Release(60);
  EXPECT_TRUE(Ready(big_p, ws));
  EXPECT_TRUE(Ready(small_p, ws)) << "50 + 10 fit in 100 together";
  EXPECT_EQ(a.running(), 2);
  EXPECT_EQ(a.kv_reserved(), 60);
  a.Release(50);
  a.Release(10);
  EXPECT_EQ(a.kv_reserved(), 0);
  EXPECT_EQ(a.running(), 0);
}

TEST(AdmissionTest, SlotsBoundRunningAndLeftWaitersAreSkipped) {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  Admission a(/*max_running=*/1, /*max_queue=*/4, /*kv_tokens=*/0);
  auto one = a.Admit(1000000);  // no KV bound
  ASSERT_TRUE(one != nullptr);
  {
    auto left = a.Admit(1);  // its caller goes away
    ASSERT_TRUE(left != nullptr);
  }
  auto next = a.Admit(1);
  ASSERT_TRUE(next != nullptr);
  kj::Promise<void> next_p = kj::mv(KJ_ASSERT_NONNULL(next));
  EXPECT_FALSE(Ready(next_p, ws));
  a.Release(1000000);
  EXPECT_TRUE(Ready(next_p, ws)) << "the waiter that left was skipped";
  EXPECT_EQ(a.running(), 1);
  EXPECT_EQ(a.waiting(), 0);
}

}  // namespace
}  // namespace strata
