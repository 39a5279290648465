// The CLI's flags (CLI11): values, ranges, sizes, exclusive groups, and one
// clear error per bad flag.
#include "coordinator/cli/flags.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

struct Args {
  explicit Args(std::vector<std::string> a) : storage(std::move(a)) {
    for (auto& s : storage) ptrs.push_back(s.data());
  }
  int argc() const { return static_cast<int>(ptrs.size()); }
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
};

TEST(FlagsTest, ParsesEveryKind) {
  std::string s;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  uint64_t u = 0, size = 0;
  FlagSet f("u", "d");
  f.String("name", &s, "");
  f.Int("count", &i, 1, 10, "");
  f.Float("temp", &d, 0, 2, "");
  f.Bool("json", &b, "");
  f.UInt64("seed", &u, "");
  f.Size("limit", &size, "");
  Args a({"strata", "cmd", "--name", "x", "--count=7", "--temp", "0.5", "--json", "--seed", "18446744073709551615",
          "--limit", "3GiB"});
  std::string error;
  bool help = true;
  ASSERT_TRUE(f.Parse(a.argc(), a.ptrs.data(), 2, &error, &help)) << error;
  EXPECT_FALSE(help);
  EXPECT_EQ(s, "x");
  EXPECT_EQ(i, 7);
  EXPECT_DOUBLE_EQ(d, 0.5);
  EXPECT_TRUE(b);
  EXPECT_EQ(u, 18446744073709551615ull);
  EXPECT_EQ(size, 3ull << 30);
  EXPECT_TRUE(f.WasSet("count"));
  EXPECT_FALSE(FlagSet("u", "d").WasSet("count")) << "a flag never added was never set";
}

TEST(FlagsTest, ReportsBadValues) {
  int64_t i = 0;
  uint64_t size = 0;
  FlagSet f("u", "d");
  f.Int("count", &i, 1, 10, "");
  f.Size("limit", &size, "");
  std::string error;
  bool help = false;
  Args a({"strata", "cmd", "--count", "11"});
  EXPECT_FALSE(f.Parse(a.argc(), a.ptrs.data(), 2, &error, &help));
  EXPECT_EQ(error, "--count: Value 11 not in range 1 to 10 (see --help)");
  Args b({"strata", "cmd", "--bogus"});
  EXPECT_FALSE(f.Parse(b.argc(), b.ptrs.data(), 2, &error, &help));
  EXPECT_NE(error.find("not expected: --bogus"), std::string::npos) << error;
  Args c({"strata", "cmd", "--count"});
  EXPECT_FALSE(f.Parse(c.argc(), c.ptrs.data(), 2, &error, &help));
  EXPECT_NE(error.find("--count: 1 required"), std::string::npos) << error;
  Args d({"strata", "cmd", "--limit", "8 parsecs"});
  EXPECT_FALSE(f.Parse(d.argc(), d.ptrs.data(), 2, &error, &help));
  EXPECT_NE(error.find("--limit"), std::string::npos) << error;
  EXPECT_EQ(size, 0u) << "a refused value is not stored";
}

TEST(FlagsTest, ExclusiveFlagsAreRefusedTogetherAndShownInHelp) {
  std::string nodes, cluster;
  int64_t local = 0;
  FlagSet f("u", "d");
  f.String("nodes", &nodes, "");
  f.String("cluster", &cluster, "");
  f.Int("local", &local, 0, 64, "");
  f.Exclusive({"nodes", "cluster", "local"});
  std::string error;
  bool help = false;
  Args a({"strata", "cmd", "--nodes", "a:1", "--local", "2"});
  EXPECT_FALSE(f.Parse(a.argc(), a.ptrs.data(), 2, &error, &help));
  EXPECT_EQ(error, "--nodes excludes --local (see --help)");
  std::string nodes2;
  int64_t local2 = 0;
  FlagSet g("u", "d");
  g.String("nodes", &nodes2, "");
  g.Int("local", &local2, 0, 64, "the local nodes");
  g.Exclusive({"nodes", "local"});
  Args b({"strata", "cmd", "--help"});
  ASSERT_TRUE(g.Parse(b.argc(), b.ptrs.data(), 2, &error, &help));
  EXPECT_TRUE(help);
  const std::string text = g.Help();
  EXPECT_EQ(text.rfind("usage: u\n\nd", 0), 0u) << text;
  EXPECT_NE(text.find("Excludes: --nodes"), std::string::npos) << text;
  EXPECT_NE(text.find("[0 - 64]=0"), std::string::npos) << "the range and the default" << text;
}

}  // namespace
}  // namespace strata
