// base/status: Status and Result, the storage layer's error model.
#include "base/status.h"

#include <gtest/gtest.h>

#include <string>

namespace strata {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::Error(std::to_string(x) + " is odd");
  return x / 2;
}

TEST(Result, HoldsAValueOrTheErrorThatExplainsWhyNot) {
  auto half = Half(8);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half.value(), 4);
  EXPECT_EQ(*half, 4);
  auto odd = Half(7);
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().message(), "7 is odd");
  // An ok Status has no value to give: the Result is an error, not neither.
  Result<int> empty = Status::Ok();
  EXPECT_FALSE(empty.ok());
  EXPECT_FALSE(empty.status().ok());
}

TEST(ResultDeathTest, ValueOnAnErrorStopsNamingTheError) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(Half(7).value(), "Result::value\\(\\) on an error: 7 is odd");
  const Result<std::string> missing = Status::Error("no such file");
  EXPECT_DEATH(missing->size(), "no such file");
}

}  // namespace
}  // namespace strata
