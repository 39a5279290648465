// The CLI flag parser: values, ranges, and one clear error per bad flag.
#include "coordinator/cli/flags.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

struct Args {
  explicit Args(std::vector<std::string> a) : storage(std::move(a)) {
    for (auto& s : storage) ptrs.push_back(s.data());
  }
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
};

TEST(FlagsTest, ParsesEveryKind) {
  std::string s;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  uint64_t u = 0;
  FlagSet f("u", "d");
  f.String("name", &s, "");
  f.Int("count", &i, 1, 10, "");
  f.Float("temp", &d, 0, 2, "");
  f.Bool("json", &b, "");
  f.UInt64("seed", &u, "");
  Args a({"strata", "cmd", "--name", "x", "--count=7", "--temp", "0.5", "--json", "--seed", "18446744073709551615"});
  std::string error;
  bool help;
  ASSERT_TRUE(f.Parse(static_cast<int>(a.ptrs.size()), a.ptrs.data(), 2, &error, &help)) << error;
  EXPECT_EQ(s, "x");
  EXPECT_EQ(i, 7);
  EXPECT_DOUBLE_EQ(d, 0.5);
  EXPECT_TRUE(b);
  EXPECT_EQ(u, 18446744073709551615ull);
  EXPECT_TRUE(f.WasSet("count"));
}

TEST(FlagsTest, ReportsBadValues) {
  int64_t i = 0;
  FlagSet f("u", "d");
  f.Int("count", &i, 1, 10, "");
  std::string error;
  bool help;
  Args a({"strata", "cmd", "--count", "11"});
  EXPECT_FALSE(f.Parse(4, a.ptrs.data(), 2, &error, &help));
  EXPECT_EQ(error, "--count wants an integer in 1..10, got '11'");
  Args b({"strata", "cmd", "--bogus"});
  EXPECT_FALSE(f.Parse(3, b.ptrs.data(), 2, &error, &help));
  EXPECT_NE(error.find("unknown option '--bogus'"), std::string::npos);
  Args c({"strata", "cmd", "--count"});
  EXPECT_FALSE(f.Parse(3, c.ptrs.data(), 2, &error, &help));
  EXPECT_EQ(error, "--count needs a value");
}

}  // namespace
}  // namespace strata
