// Checkpoint directories: single file, sharded files with an index, and the
// errors for what can be wrong with them.
#include "storage/checkpoint.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;

TestModelSpec Small() {
  TestModelSpec s;
  s.layers = 3;
  s.tokenizer_vocab = 200;
  return s;
}

TEST(CheckpointTest, OpensSingleFile) {
  TempDir dir;
  testing::MakeModel(dir.path(), Small());
  auto c = Checkpoint::Open(dir.path());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c.value()->config().num_layers, 3);
  auto t = c.value()->Find(LayerTensorName(2, "mlp.down_proj.weight"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.value()->shape, (std::vector<int64_t>{64, 172}));
  // q, k, v, o + gate, up, down + two norms.
  EXPECT_EQ(c.value()->LayerBytes(0, 2), 2u * (64 * 64 * 2 + 2 * 32 * 64 + 3 * 64 * 172 + 2 * 64));
  EXPECT_EQ(c.value()->EmbedBytes(4), 4u * 512 * 64);
  EXPECT_EQ(c.value()->HeadBytes(4), 4u * (512 * 64 + 64));
}

TEST(CheckpointTest, OpensShardedFilesWithIndex) {
  TempDir dir;
  TestModelSpec s = Small();
  s.files = 3;
  testing::MakeModel(dir.path(), s);
  std::ifstream index(dir / "model.safetensors.index.json");
  ASSERT_TRUE(index.good());
  auto c = Checkpoint::Open(dir.path());
  ASSERT_TRUE(c.ok()) << c.status().message();
  for (int l = 0; l < 3; ++l) EXPECT_TRUE(c.value()->Find(LayerTensorName(l, "self_attn.q_proj.weight")).ok());
  EXPECT_TRUE(c.value()->Find(kLmHeadName).ok());
}

TEST(CheckpointTest, NamesMissingTensor) {
  TempDir dir;
  testing::MakeModel(dir.path(), Small());
  auto c = Checkpoint::Open(dir.path());
  ASSERT_TRUE(c.ok());
  auto t = c.value()->Find("model.layers.9.mlp.up_proj.weight");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("missing tensor 'model.layers.9.mlp.up_proj.weight'"), std::string::npos);
}

TEST(CheckpointTest, RefusesIndexThatEscapesTheDirectory) {
  TempDir dir;
  TestModelSpec s = Small();
  s.files = 2;
  testing::MakeModel(dir.path(), s);
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"a": "../../etc/passwd"}})";
  auto c = Checkpoint::Open(dir.path());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad file name for tensor 'a'"), std::string::npos);
}

TEST(CheckpointTest, RefusesDirectoryWithoutWeights) {
  TempDir dir;
  testing::MakeModel(dir.path(), Small());
  std::remove((dir / "model.safetensors").c_str());
  auto c = Checkpoint::Open(dir.path());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("neither model.safetensors nor model.safetensors.index.json"), std::string::npos);
}

TEST(CheckpointTest, ReportsTruncatedWeightsFile) {
  TempDir dir;
  testing::MakeModel(dir.path(), Small());
  const std::string bytes = testing::ReadFile(dir / "model.safetensors");
  std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  auto c = Checkpoint::Open(dir.path());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("truncated"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace strata
