// The NVMe tier of the KV cache: sessions swapped out to disk and brought
// back compute exactly what they computed in RAM (F32 and BF16); budgets
// hold while they do; and every disk fault — a full filesystem, ENOSPC, EIO,
// short reads, a page corrupted on disk — fails only the session it touches,
// with an error that says what happened, while the others go on.
#include "node/engine/llama_shard.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "node/kv/kv_page_pool.h"
#include "storage/fault_env.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

PosixEnv posix_;

constexpr int64_t kPageTokens = 16;
constexpr int64_t kCapacity = 64;

std::unique_ptr<LlamaShard> Load(const std::string& model, TensorDType dtype, ShardOptions o) {
  auto ckpt = Checkpoint::Open(model);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().message();
  o.first_layer = 0;
  o.end_layer = 4;
  o.dtype = dtype;
  o.kv_page_tokens = kPageTokens;
  auto shard = LlamaShard::Load(std::move(ckpt.value()), o);
  EXPECT_TRUE(shard.ok()) << shard.status().message();
  return shard.ok() ? std::move(shard.value()) : nullptr;
}

// One conversation: a prompt, then greedy tokens one at a time.
struct Conversation {
  std::vector<int32_t> next;  // what the next step feeds
  int64_t pos = 0;
};

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Steps sessions of one shard, each a conversation of its own.
class Driver {
 public:
  explicit Driver(LlamaShard& shard) : shard_(shard) {}
  void Open(uint64_t id) {
    ASSERT_TRUE(shard_.OpenSession(id, kCapacity).ok());
    std::vector<int32_t> prompt;
    for (int i = 0; i < 9; ++i) prompt.push_back(static_cast<int32_t>((id * 37 + i * 11) % 500 + 1));
    conversations_[id] = Conversation{prompt, 0};
  }
  Result<std::vector<float>> Step(uint64_t id) {
    Conversation& c = conversations_[id];
    StageInput in;
    in.tokens = c.next;
    auto out = shard_.Forward(StepAt(id, c.pos, in));
    if (!out.ok()) return out.status();
    c.pos += static_cast<int64_t>(c.next.size());
    c.next = {Argmax(out->logits)};
    return out->logits;
  }

 private:
  LlamaShard& shard_;
  std::map<uint64_t, Conversation> conversations_;
};

// What each session computes with all the RAM it wants, step by step.
std::map<uint64_t, std::vector<std::vector<float>>> Reference(const std::string& model, TensorDType dtype,
                                                               int sessions, int steps, bool int8 = false) {
  ShardOptions o;
  o.kv_int8 = int8;
  auto shard = Load(model, dtype, o);
  Driver d(*shard);
  std::map<uint64_t, std::vector<std::vector<float>>> out;
  for (int s = 1; s <= sessions; ++s) {
    d.Open(s);
    for (int i = 0; i < steps; ++i) out[s].push_back(d.Step(s).value());
  }
  return out;
}

bool Same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class KvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeModel(model_.path(), TestModelSpec{});
  }
  // A RAM budget that holds the scratch and a few pages: four sessions of
  // up to 28 tokens (two pages each) cannot all stay.
  std::unique_ptr<LlamaShard> SwappingShard(TensorDType dtype, MemoryAccountant& memory, Env& env, bool pool_io,
                                            const std::string& swap_dir, const std::string& policy = "adaptive",
                                            bool int8 = false) {
    ShardOptions o;
    o.kv_int8 = int8;
    o.memory = &memory;
    o.swap_dir = swap_dir;
    o.env = &env;
    o.swap_thread_pool_io = pool_io;
    o.kv_policy = policy;
    return Load(model_.path(), dtype, o);
  }
  static TierBudgets Budgets(TensorDType dtype, bool int8 = false) {
    // [layers, k/v, kv_heads, head_dim] values; int8 adds a 4-byte scale per head
    const uint64_t page_per_token = 2 * 4 * 2 * (int8 ? 16 + 4 : 16 * ElementSize(dtype));
    const uint64_t per_token = 2 * 4 * 2 * 16 * ElementSize(dtype);  // the scratch: compute dtype
    TierBudgets b;
    b.bytes[static_cast<int>(MemoryTier::kRam)] = per_token * KvPagePool::ScratchLength(kCapacity) + 3 * ((page_per_token * kPageTokens + 4099) / 4096 * 4096);
    b.bytes[static_cast<int>(MemoryTier::kNvme)] = 64u << 20;
    return b;
  }
  TempDir model_, swap_;
};

void ExpectSwappedEqualsInRam(const std::string& model, const std::string& swap_dir, TensorDType dtype,
                              const std::string& policy, LlamaShard& shard, MemoryAccountant& memory,
                              bool int8 = false) {
  const int kSessions = 4, kSteps = 20;
  auto reference = Reference(model, dtype, kSessions, kSteps, int8);
  Driver d(shard);
  for (int s = 1; s <= kSessions; ++s) d.Open(s);
  const uint64_t budget = memory.budget(MemoryTier::kRam);
  for (int i = 0; i < kSteps; ++i) {
    for (int s = 1; s <= kSessions; ++s) {
      auto logits = d.Step(s);
      ASSERT_TRUE(logits.ok()) << "session " << s << " step " << i << ": " << logits.status().message();
      EXPECT_TRUE(Same(logits.value(), reference[s][i])) << policy << " session " << s << " step " << i;
      EXPECT_LE(memory.used(MemoryTier::kRam), budget);
    }
  }
  const SwapStats stats = shard.swap()->stats();
  EXPECT_GT(stats.pages_out, 0u) << policy;
  EXPECT_GT(stats.pages_in, 0u) << policy;
  EXPECT_EQ(stats.failures, 0u);
}

TEST_F(KvStoreTest, SwappedSessionsComputeExactlyWhatTheyComputeInRamF32) {
  for (const char* policy : {"lru", "lfu", "adaptive"}) {
    MemoryAccountant memory(Budgets(TensorDType::kF32));
    auto shard = SwappingShard(TensorDType::kF32, memory, posix_, false, swap_.path(), policy);
    ASSERT_NE(shard, nullptr);
    ExpectSwappedEqualsInRam(model_.path(), swap_.path(), TensorDType::kF32, policy, *shard, memory);
  }
}

TEST_F(KvStoreTest, SwappedSessionsComputeExactlyWhatTheyComputeInRamBF16) {
  MemoryAccountant memory(Budgets(TensorDType::kBF16));
  auto shard = SwappingShard(TensorDType::kBF16, memory, posix_, false, swap_.path());
  ASSERT_NE(shard, nullptr);
  ExpectSwappedEqualsInRam(model_.path(), swap_.path(), TensorDType::kBF16, "adaptive", *shard, memory);
}

TEST_F(KvStoreTest, SwappedInt8PagesAreExactToo) {
  for (TensorDType dtype : {TensorDType::kF32, TensorDType::kBF16}) {
    MemoryAccountant memory(Budgets(dtype, true));
    auto shard = SwappingShard(dtype, memory, posix_, false, swap_.path(), "adaptive", true);
    ASSERT_NE(shard, nullptr);
    ExpectSwappedEqualsInRam(model_.path(), swap_.path(), dtype, "adaptive", *shard, memory, true);
  }
}

TEST_F(KvStoreTest, ThreadPoolFallbackIsExactToo) {
  MemoryAccountant memory(Budgets(TensorDType::kF32));
  auto shard = SwappingShard(TensorDType::kF32, memory, posix_, true, swap_.path());
  ASSERT_NE(shard, nullptr);
  ExpectSwappedEqualsInRam(model_.path(), swap_.path(), TensorDType::kF32, "adaptive", *shard, memory);
}

TEST_F(KvStoreTest, ParkedSessionIsPrefetchedAndResumesExactly) {
  auto reference = Reference(model_.path(), TensorDType::kF32, 1, 8);
  MemoryAccountant memory(Budgets(TensorDType::kF32));
  auto shard = SwappingShard(TensorDType::kF32, memory, posix_, false, swap_.path());
  Driver d(*shard);
  d.Open(1);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Same(d.Step(1).value(), reference[1][i]));
  const uint64_t ram_before = memory.used(MemoryTier::kRam);
  ASSERT_TRUE(shard->ParkSession(1).ok());
  EXPECT_TRUE(shard->SessionOnDisk(1));
  EXPECT_LT(memory.used(MemoryTier::kRam), ram_before);  // its pages left RAM
  EXPECT_GT(memory.used(MemoryTier::kNvme), 0u);
  shard->swap()->Prefetch(1);  // as the node does when the next request arrives
  for (int i = 4; i < 8; ++i) ASSERT_TRUE(Same(d.Step(1).value(), reference[1][i])) << i;
  EXPECT_FALSE(shard->SessionOnDisk(1));
  EXPECT_EQ(shard->swap()->stats().prefetch_hits, 1u);
  EXPECT_EQ(memory.used(MemoryTier::kNvme), 0u);  // its slots were freed
}

// Runs sessions 1 and 2 until 1 has been swapped out at least once and is on
// disk; returns the driver's step count so far.
void DriveUntilOnDisk(Driver& d, LlamaShard& shard) {
  d.Open(1);
  d.Open(2);
  d.Open(3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(d.Step(1).ok());
  ASSERT_TRUE(shard.ParkSession(1).ok());
  ASSERT_TRUE(shard.SessionOnDisk(1));
}

TEST_F(KvStoreTest, ReadErrorFailsOnlyThatSession) {
  auto reference = Reference(model_.path(), TensorDType::kF32, 3, 6);
  for (int fault = 0; fault < 2; ++fault) {
    FaultInjectionEnv faults(posix_);
    MemoryAccountant memory(Budgets(TensorDType::kF32));
    auto shard = SwappingShard(TensorDType::kF32, memory, faults, true, swap_.path());
    Driver d(*shard);
    DriveUntilOnDisk(d, *shard);
    if (fault == 0) faults.FailReads(EIO);
    else faults.ShortReads(4096);
    auto failed = d.Step(1);
    ASSERT_FALSE(failed.ok());
    EXPECT_NE(failed.status().message().find("could not be brought back from NVMe"), std::string::npos)
        << failed.status().message();
    EXPECT_NE(failed.status().message().find(fault == 0 ? "Input/output error" : "short"), std::string::npos)
        << failed.status().message();
    faults.Heal();
    // Session 1 stays failed, saying why; the others compute exactly.
    auto again = d.Step(1);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.status().message().find("could not be brought back"), std::string::npos);
    for (int i = 0; i < 6; ++i) {
      for (uint64_t s : {2u, 3u}) {
        auto logits = d.Step(s);
        ASSERT_TRUE(logits.ok()) << logits.status().message();
        EXPECT_TRUE(Same(logits.value(), reference[s][i]));
      }
    }
    EXPECT_EQ(shard->swap()->stats().failures, 1u);
  }
}

TEST_F(KvStoreTest, FullDiskFailsOnlyTheSessionThatNeededRoom) {
  auto reference = Reference(model_.path(), TensorDType::kF32, 4, 20);
  FaultInjectionEnv faults(posix_);
  faults.FailWritesAfter(0, ENOSPC);
  MemoryAccountant memory(Budgets(TensorDType::kF32));
  auto shard = SwappingShard(TensorDType::kF32, memory, faults, true, swap_.path());
  Driver d(*shard);
  for (int s = 1; s <= 4; ++s) d.Open(s);
  // Round-robin until RAM runs out: the step that needed room fails,
  // naming the full disk; the sessions already in RAM go on exactly.
  std::map<uint64_t, int> done;
  std::string error;
  uint64_t failed_session = 0;
  for (int i = 0; i < 20 && failed_session == 0; ++i) {
    for (uint64_t s = 1; s <= 4 && failed_session == 0; ++s) {
      auto logits = d.Step(s);
      if (!logits.ok()) {
        error = logits.status().message();
        failed_session = s;
        break;
      }
      EXPECT_TRUE(Same(logits.value(), reference[s][done[s]++]));
    }
  }
  ASSERT_NE(failed_session, 0u) << "the budget never ran out";
  EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
  EXPECT_NE(error.find("ram budget"), std::string::npos) << error;
  for (uint64_t s = 1; s <= 4; ++s) {
    if (s == failed_session) continue;
    auto logits = d.Step(s);
    ASSERT_TRUE(logits.ok()) << "session " << s << ": " << logits.status().message();
    EXPECT_TRUE(Same(logits.value(), reference[s][done[s]++]));
  }
}

// The swap file is unlinked at open; it is still there behind an fd.
int OpenDeletedSwapFile() {
  DIR* fds = ::opendir("/proc/self/fd");
  int found = -1;
  while (dirent* e = ::readdir(fds)) {
    char target[4096] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0 && std::string(target).find("strata-kv-") != std::string::npos) {
      found = ::open(link.c_str(), O_RDWR);
      break;
    }
  }
  ::closedir(fds);
  return found;
}

TEST_F(KvStoreTest, PageCorruptedOnDiskIsCaughtByItsChecksum) {
  auto reference = Reference(model_.path(), TensorDType::kF32, 3, 6);
  MemoryAccountant memory(Budgets(TensorDType::kF32));
  auto shard = SwappingShard(TensorDType::kF32, memory, posix_, false, swap_.path());  // io_uring, O_DIRECT
  Driver d(*shard);
  DriveUntilOnDisk(d, *shard);
  const int fd = OpenDeletedSwapFile();
  ASSERT_GE(fd, 0) << "the swap file is not open";
  const char garbage[] = "not what was written";
  ASSERT_EQ(::pwrite(fd, garbage, sizeof garbage, 100), static_cast<ssize_t>(sizeof garbage));
  ::fsync(fd);
  ::close(fd);
  auto failed = d.Step(1);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("checksum"), std::string::npos) << failed.status().message();
  for (int i = 0; i < 6; ++i) {
    for (uint64_t s : {2u, 3u}) {
      auto logits = d.Step(s);
      ASSERT_TRUE(logits.ok()) << logits.status().message();
      EXPECT_TRUE(Same(logits.value(), reference[s][i]));
    }
  }
}

// A real small filesystem that fills up: a tmpfs of 64 KiB.
TEST_F(KvStoreTest, SmallFullFilesystemFailsOnlyTheSessionThatNeededRoom) {
  TempDir mount_point;
  if (::mount("tmpfs", mount_point.path().c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "); needs root";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point.path()};
  auto reference = Reference(model_.path(), TensorDType::kF32, 4, 20);
  MemoryAccountant memory(Budgets(TensorDType::kF32));
  // tmpfs refuses O_DIRECT: this is also the fallback to the thread pool.
  auto shard = SwappingShard(TensorDType::kF32, memory, posix_, false, mount_point.path());
  ASSERT_NE(shard, nullptr);
  Driver d(*shard);
  for (int s = 1; s <= 4; ++s) d.Open(s);
  std::map<uint64_t, int> done;
  std::string error;
  for (int i = 0; i < 20 && error.empty(); ++i) {
    for (uint64_t s = 1; s <= 4; ++s) {
      auto logits = d.Step(s);
      if (!logits.ok()) {
        error = logits.status().message();
        continue;  // the others go on in this round
      }
      EXPECT_TRUE(Same(logits.value(), reference[s][done[s]++])) << "session " << s;
    }
  }
  ASSERT_FALSE(error.empty()) << "64 KiB of disk never filled";
  EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
  EXPECT_GT(shard->swap()->stats().pages_out, 0u);  // some pages fitted before it filled
}

}  // namespace
}  // namespace strata
