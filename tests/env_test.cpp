// storage/env: the real POSIX files, and faults injected into the real code
// paths that write through an Env (a full disk, EIO, short reads).
#include "storage/env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "coordinator/cli/test_model.h"
#include "storage/fault_env.h"
#include "storage/safetensors.h"
#include "tests/test_util.h"

namespace strata {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

TEST(PosixEnv, PagesRoundTripAtOffsets) {
  testing::TempDir dir;
  PosixEnv env;
  auto file = env.NewRandomRWFile(dir / "swap");
  ASSERT_TRUE(file.ok()) << file.status().message();
  ASSERT_TRUE(file.value()->Allocate(0, 1 << 20).ok());
  std::vector<uint8_t> page(256 << 10), back(256 << 10);
  for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(i * 31 + 7);
  ASSERT_TRUE(file.value()->Write(512 << 10, page.data(), page.size()).ok());
  size_t read = 0;
  ASSERT_TRUE(file.value()->Read(512 << 10, back.data(), back.size(), &read).ok());
  EXPECT_EQ(read, page.size());
  EXPECT_EQ(std::memcmp(page.data(), back.data(), page.size()), 0);
  ASSERT_TRUE(file.value()->Read((1 << 20) - 100, back.data(), 1000, &read).ok());
  EXPECT_EQ(read, 100u) << "a read past the end is short";
  EXPECT_NE(env.NewRandomRWFile(dir / "no/such/dir").status().message().find("No such file"), std::string::npos);
}

TEST(PosixEnv, CreateDirMakesMissingParentsPrivateAndNamesWhatIsNotADirectory) {
  testing::TempDir dir;
  PosixEnv env;
  const std::string deep = dir / "a/b/c";
  ASSERT_TRUE(env.CreateDir(deep).ok());
  for (const std::string& made : {dir / "a", dir / "a/b", deep}) {
    struct stat st {};
    ASSERT_EQ(::stat(made.c_str(), &st), 0) << made;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << made;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << made;
  }
  EXPECT_TRUE(env.CreateDir(deep).ok());        // there already
  EXPECT_TRUE(env.CreateDir(deep + "/").ok());  // a trailing slash names the same directory
  ASSERT_TRUE(env.NewWritableFile(dir / "file").ok());
  const Status under_file = env.CreateDir(dir / "file/swap");
  ASSERT_FALSE(under_file.ok());
  EXPECT_NE(under_file.message().find("file: Not a directory"), std::string::npos) << under_file.message();
  EXPECT_FALSE(env.CreateDir("").ok());
}

// A link planted where a file will be written, in a shared directory, must
// redirect nothing: no write through it, no truncation of what it names.
TEST(PosixEnv, NoWriteGoesThroughAPlantedLink) {
  testing::TempDir dir;
  PosixEnv env;
  { std::ofstream(dir / "precious") << "keep me"; }
  for (const char* name : {"swap", "config.json", "scratch"}) {
    std::filesystem::create_symlink(dir / "precious", dir / name);
  }
  EXPECT_FALSE(env.NewRandomRWFile(dir / "swap").ok());
  EXPECT_FALSE(env.NewWritableFile(dir / "config.json").ok());
  Status scratch = env.CreateScratchFile(dir / "scratch");
  EXPECT_FALSE(scratch.ok());
  EXPECT_NE(scratch.message().find("File exists"), std::string::npos) << scratch.message();
  EXPECT_EQ(testing::ReadFile(dir / "precious"), "keep me");
  { std::ofstream(dir / "taken") << "someone's"; }
  EXPECT_FALSE(env.CreateScratchFile(dir / "taken").ok()) << "a scratch file is always a new one";
  ASSERT_TRUE(env.CreateScratchFile(dir / "mine").ok());
  struct stat st;
  ASSERT_EQ(::stat((dir / "mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FaultInjectionEnv, AFullDiskFailsTheWriteAndLeavesNoPartialModel) {
  testing::TempDir dir;
  PosixEnv posix;
  FaultInjectionEnv env(posix);
  std::vector<TensorToWrite> tensors = {
      {"a", DType::kF32, {256, 256}, [](uint8_t* d) { std::memset(d, 1, 256 * 256 * 4); }}};
  env.FailWritesAfter(100 << 10);
  Status st = WriteSafetensors(env, dir / "model.safetensors", tensors);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("No space left on device"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("model.safetensors"), std::string::npos) << "names the file";
  EXPECT_FALSE(Exists(dir / "model.safetensors")) << "no truncated model";
  EXPECT_FALSE(Exists(dir / "model.safetensors.partial")) << "no leftover";
  env.Heal();
  ASSERT_TRUE(WriteSafetensors(env, dir / "model.safetensors", tensors).ok());
  auto file = SafetensorsFile::Open(dir / "model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file.value()->Find("a")->nbytes, 256u * 256 * 4);
}

// A disk that fills while a model directory is written: the write fails
// naming the file, and what is left is not taken for a model (no
// config.json, no half-written file).
TEST(FaultInjectionEnv, AFullDiskLeavesNoModelDirectoryThatLooksWhole) {
  testing::TempDir whole, full;
  TestModelSpec spec;
  spec.layers = 2;
  spec.tokenizer_vocab = 200;
  PosixEnv posix;
  ASSERT_TRUE(WriteTestModel(posix, whole / "m", spec).ok());
  const uint64_t weights = std::filesystem::file_size(whole / "m/model.safetensors");
  const uint64_t tokenizer_config = std::filesystem::file_size(whole / "m/tokenizer_config.json");
  ASSERT_GT(std::filesystem::file_size(whole / "m/config.json"), 16u);
  FaultInjectionEnv env(posix);
  env.FailWritesAfter(weights + tokenizer_config + 16);  // config.json does not fit
  std::filesystem::create_directories(full / "m");
  const Status st = WriteTestModel(env, full / "m", spec);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("config.json"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("No space left on device"), std::string::npos) << st.message();
  EXPECT_FALSE(Exists(full / "m/config.json"));
  EXPECT_FALSE(Exists(full / "m/config.json.partial"));
  EXPECT_TRUE(Exists(full / "m/model.safetensors")) << "the weights were written whole before the disk filled";
}

TEST(FaultInjectionEnv, ReadsFailOrComeBackShort) {
  testing::TempDir dir;
  PosixEnv posix;
  FaultInjectionEnv env(posix);
  auto file = env.NewRandomRWFile(dir / "swap");
  ASSERT_TRUE(file.ok());
  std::vector<uint8_t> page(4096, 9), back(4096);
  ASSERT_TRUE(file.value()->Write(0, page.data(), page.size()).ok());
  env.FailReads(EIO);
  size_t read = 1;
  Status st = file.value()->Read(0, back.data(), back.size(), &read);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Input/output error"), std::string::npos) << st.message();
  EXPECT_EQ(read, 0u);
  env.Heal();
  env.ShortReads(1000);
  ASSERT_TRUE(file.value()->Read(0, back.data(), back.size(), &read).ok());
  EXPECT_EQ(read, 1000u);
  env.FailWritesAfter(0, EIO);
  EXPECT_NE(file.value()->Write(0, page.data(), 1).message().find("Input/output error"), std::string::npos);
  EXPECT_NE(file.value()->Allocate(0, 1 << 20).message().find("Input/output error"), std::string::npos);
}

}  // namespace
}  // namespace strata
