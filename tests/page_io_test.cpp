// storage/page_io: pages round-trip bit-exact through io_uring (O_DIRECT,
// registered buffers, queue depth 32) and through the fallback thread pool;
// ENOSPC, EIO and short reads injected through the Env fail only the ops
// they hit, each with a clear error.
#include "storage/page_io.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "storage/fault_env.h"
#include "tests/test_util.h"

namespace strata {
namespace {

PageIoOptions Options() {
  PageIoOptions o;
  o.page_bytes = 256u << 10;
  o.file_bytes = 64ull * (256u << 10);
  o.buffers = 64;
  o.queue_depth = 32;
  return o;
}

// Writes 64 pages of random bytes, reads them back into other buffers.
void ExpectRoundTrip(PageIo& io) {
  std::mt19937 rng(3);
  const size_t P = io.page_bytes();
  std::vector<std::vector<uint8_t>> pages(32, std::vector<uint8_t>(P));
  std::vector<PageIo::Op> writes, reads;
  for (uint32_t i = 0; i < 32; ++i) {
    for (auto& b : pages[i]) b = static_cast<uint8_t>(rng());
    std::memcpy(io.buffer(i), pages[i].data(), P);
    writes.push_back({true, uint64_t{(i * 7) % 64} * P, i});
    reads.push_back({false, uint64_t{(i * 7) % 64} * P, 32 + i});
  }
  for (const Status& st : RunPageIo(io, writes)) ASSERT_TRUE(st.ok()) << st.message();
  for (const Status& st : RunPageIo(io, reads)) ASSERT_TRUE(st.ok()) << st.message();
  for (uint32_t i = 0; i < 32; ++i) {
    ASSERT_EQ(std::memcmp(io.buffer(32 + i), pages[i].data(), P), 0) << "page " << i << " via " << io.kind();
  }
}

TEST(PageIo, IoUringRoundTripIsBitExact) {
  testing::TempDir dir;
  PosixEnv env;
  std::string note;
  auto io = OpenPageIo(env, dir / "swap", Options(), &note);
  ASSERT_TRUE(io.ok()) << io.status().message();
  if (std::string(io.value()->kind()) != "io_uring") GTEST_SKIP() << "io_uring unavailable: " << note;
  EXPECT_EQ(note, "");
  ExpectRoundTrip(*io.value());
  // A bad op fails alone.
  auto mixed = RunPageIo(*io.value(), {{false, 0, 0}, {false, 100, 1}, {false, 0, 999}});
  EXPECT_TRUE(mixed[0].ok());
  EXPECT_NE(mixed[1].message().find("unaligned"), std::string::npos);
  EXPECT_NE(mixed[2].message().find("buffer 999"), std::string::npos);
}

TEST(PageIo, FallbackThreadPoolRoundTripIsBitExact) {
  testing::TempDir dir;
  PosixEnv env;
  auto io = OpenEnvPageIo(env, dir / "swap", Options());
  ASSERT_TRUE(io.ok()) << io.status().message();
  EXPECT_STREQ(io.value()->kind(), "pread");
  ExpectRoundTrip(*io.value());
}

// Swap pages and streamed layers go to a scratch file that is the node's
// own: a fresh random name, unlinked once open (nothing left behind, nothing
// for another user to plant or open), bit-exact on both I/O paths.
TEST(PageIo, ScratchFilesAreNewPrivateAndLeaveNothing) {
  testing::TempDir dir;
  PosixEnv env;
  for (bool pool : {false, true}) {
    std::string note;
    auto io = OpenScratchPageIo(env, dir.path(), "strata-kv", Options(), pool, &note);
    ASSERT_TRUE(io.ok()) << io.status().message();
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "unlinked once open";
    ExpectRoundTrip(*io.value());
  }
}

TEST(PageIo, InjectedFaultsFailOnlyTheOpsTheyHit) {
  testing::TempDir dir;
  PosixEnv posix;
  FaultInjectionEnv env(posix);
  PageIoOptions o = Options();
  // A full disk at open: the reservation fails, clearly.
  env.FailWritesAfter(1 << 20);
  auto refused = OpenEnvPageIo(env, dir / "full", o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("No space left on device"), std::string::npos);
  env.Heal();
  o.file_bytes = 0;
  auto io = OpenEnvPageIo(env, dir / "swap", o, 1);
  ASSERT_TRUE(io.ok());
  const size_t P = io.value()->page_bytes();
  std::memset(io.value()->buffer(0), 5, P);
  // ENOSPC part-way through a batch: the first two pages land, the third fails.
  env.FailWritesAfter(2 * P);
  auto w = RunPageIo(*io.value(), {{true, 0, 0}, {true, P, 0}, {true, 2 * P, 0}});
  EXPECT_TRUE(w[0].ok());
  EXPECT_TRUE(w[1].ok());
  ASSERT_FALSE(w[2].ok());
  EXPECT_NE(w[2].message().find("No space left on device"), std::string::npos);
  env.Heal();
  // EIO, then short reads: errors, never silently partial pages.
  env.FailReads(EIO);
  auto r = RunPageIo(*io.value(), {{false, 0, 1}});
  EXPECT_NE(r[0].message().find("Input/output error"), std::string::npos);
  env.Heal();
  env.ShortReads(P / 2);
  r = RunPageIo(*io.value(), {{false, P, 1}});
  EXPECT_NE(r[0].message().find("was short: 131072 of 262144 bytes"), std::string::npos) << r[0].message();
  env.Heal();
  r = RunPageIo(*io.value(), {{false, P, 1}});
  ASSERT_TRUE(r[0].ok());
  EXPECT_EQ(std::memcmp(io.value()->buffer(1), io.value()->buffer(0), P), 0) << "the page that landed is intact";
}

}  // namespace
}  // namespace strata
