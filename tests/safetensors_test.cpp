// The safetensors reader on valid and malformed files: every malformation
// gives one error naming the file and the cause; nothing crashes or reads
// out of bounds.
#include "storage/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "tests/test_util.h"

namespace strata {
namespace {

PosixEnv env_;  // the real filesystem, as main() would wire it

using testing::TempDir;

// Writes 8-byte length + header + data as given, with no checks.
void WriteRaw(const std::string& path, const std::string& header, const std::string& data, int64_t length_override = -1) {
  std::ofstream out(path, std::ios::binary);
  uint64_t len = length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(len >> (8 * i)));
  out << header << data;
}

std::string ErrorOf(const std::string& path) {
  auto f = SafetensorsFile::Open(path);
  EXPECT_FALSE(f.ok()) << "expected an error for " << path;
  return f.ok() ? "" : f.status().message();
}

TEST(SafetensorsTest, RoundTripsWrittenTensors) {
  TempDir dir;
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -8.5f};
  std::vector<uint16_t> b = {FloatToBf16(1.0f), FloatToBf16(-3.0f), FloatToBf16(0.5f)};
  std::vector<TensorToWrite> tensors = {
      {"a", DType::kF32, {2, 3}, [&](uint8_t* dst) { std::memcpy(dst, a.data(), 24); }},
      {"b", DType::kBF16, {3}, [&](uint8_t* dst) { std::memcpy(dst, b.data(), 6); }},
  };
  ASSERT_TRUE(WriteSafetensors(env_, dir / "m.safetensors", tensors).ok());
  auto f = SafetensorsFile::Open(dir / "m.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const TensorView* va = f.value()->Find("a");
  ASSERT_NE(va, nullptr);
  EXPECT_EQ(va->dtype, DType::kF32);
  EXPECT_EQ(va->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(va->data, a.data(), 24), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(va->data) % 8, 0u) << "data must be 8-byte aligned";
  const TensorView* vb = f.value()->Find("b");
  ASSERT_NE(vb, nullptr);
  EXPECT_EQ(Bf16ToFloat(reinterpret_cast<const uint16_t*>(vb->data)[1]), -3.0f);
  EXPECT_EQ(f.value()->Find("missing"), nullptr);
}

TEST(SafetensorsTest, AcceptsMetadataAndEmptyTensors) {
  TempDir dir;
  WriteRaw(dir / "m", R"({"__metadata__":{"format":"pt"},"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", "");
  auto f = SafetensorsFile::Open(dir / "m");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f.value()->Find("e")->nbytes, 0u);
}

TEST(SafetensorsTest, RejectsFileShorterThanHeaderLength) {
  TempDir dir;
  std::ofstream(dir / "m", std::ios::binary) << "abc";
  EXPECT_NE(ErrorOf(dir / "m").find("shorter than the 8-byte header length"), std::string::npos);
}

TEST(SafetensorsTest, RejectsHeaderLengthPastEnd) {
  TempDir dir;
  WriteRaw(dir / "m", "{}", "", 4096);
  const std::string e = ErrorOf(dir / "m");
  EXPECT_NE(e.find("runs past the end"), std::string::npos) << e;
  EXPECT_NE(e.find(dir / "m"), std::string::npos) << "the error names the file: " << e;
}

TEST(SafetensorsTest, RejectsHugeHeaderLength) {
  TempDir dir;
  WriteRaw(dir / "m", "{}", "", int64_t{1} << 40);
  EXPECT_NE(ErrorOf(dir / "m").find("exceeds the 100 MB limit"), std::string::npos);
}

TEST(SafetensorsTest, RejectsInvalidJson) {
  TempDir dir;
  WriteRaw(dir / "m", "{\"a\": [1, 2", "");
  EXPECT_NE(ErrorOf(dir / "m").find("not valid JSON"), std::string::npos);
  WriteRaw(dir / "n", "[1, 2]", "");
  EXPECT_NE(ErrorOf(dir / "n").find("not a JSON object"), std::string::npos);
}

TEST(SafetensorsTest, RejectsUnknownDtype) {
  TempDir dir;
  WriteRaw(dir / "m", R"({"a":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_NE(ErrorOf(dir / "m").find("unsupported dtype F7"), std::string::npos);
}

TEST(SafetensorsTest, RejectsShapeSizeMismatch) {
  TempDir dir;
  WriteRaw(dir / "m", R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", std::string(24, '\0'));
  EXPECT_NE(ErrorOf(dir / "m").find("has 20 bytes but its shape x F32 needs 24"), std::string::npos);
}

TEST(SafetensorsTest, RejectsTruncatedData) {
  TempDir dir;
  WriteRaw(dir / "m", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(10, '\0'));
  EXPECT_NE(ErrorOf(dir / "m").find("past the 10-byte data section (truncated?)"), std::string::npos);
}

TEST(SafetensorsTest, RejectsOverlappingTensors) {
  TempDir dir;
  WriteRaw(dir / "m",
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           std::string(12, '\0'));
  EXPECT_NE(ErrorOf(dir / "m").find("overlap"), std::string::npos);
}

TEST(SafetensorsTest, RejectsBadShapesAndOffsets) {
  TempDir dir;
  const std::string data(16, '\0');
  WriteRaw(dir / "neg", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", data);
  EXPECT_NE(ErrorOf(dir / "neg").find("not a non-negative integer"), std::string::npos);
  WriteRaw(dir / "rev", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", data);
  EXPECT_NE(ErrorOf(dir / "rev").find("begin > end"), std::string::npos);
  WriteRaw(dir / "noshape", R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", data);
  EXPECT_NE(ErrorOf(dir / "noshape").find("no shape"), std::string::npos);
  WriteRaw(dir / "entry", R"({"a":5})", data);
  EXPECT_NE(ErrorOf(dir / "entry").find("not an object"), std::string::npos);
  WriteRaw(dir / "overflow", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", data);
  EXPECT_NE(ErrorOf(dir / "overflow").find("too large"), std::string::npos);
}

TEST(SafetensorsTest, RejectsMissingFile) {
  EXPECT_NE(ErrorOf("/nonexistent/model.safetensors").find("cannot open /nonexistent/model.safetensors"),
            std::string::npos);
}

// Random corruption of a valid file's header never crashes the reader: it
// either parses (the change was harmless) or reports an error.
TEST(SafetensorsTest, SurvivesRandomCorruption) {
  TempDir dir;
  std::vector<float> a(64, 1.0f);
  ASSERT_TRUE(WriteSafetensors(env_, dir / "ok", {{"w", DType::kF32, {8, 8}, [&](uint8_t* d) { std::memcpy(d, a.data(), 256); }},
                                            {"v", DType::kF32, {64}, [&](uint8_t* d) { std::memcpy(d, a.data(), 256); }}})
                  .ok());
  const std::string good = testing::ReadFile(dir / "ok");
  std::mt19937 rng(42);
  int errors = 0;
  for (int trial = 0; trial < 500; ++trial) {
    std::string bad = good;
    const size_t limit = trial % 5 == 0 ? bad.size() : std::min<size_t>(bad.size(), 160);
    for (int k = 0; k < 3; ++k) bad[rng() % limit] = static_cast<char>(rng());
    if (trial % 7 == 0) bad.resize(rng() % bad.size());
    std::ofstream(dir / "bad", std::ios::binary | std::ios::trunc) << bad;
    auto f = SafetensorsFile::Open(dir / "bad");
    if (!f.ok()) {
      ++errors;
      EXPECT_NE(f.status().message().find(dir / "bad"), std::string::npos);
      continue;
    }
    for (const auto& [name, view] : f.value()->tensors()) {
      // Every accepted view lies inside the file.
      const auto* begin = reinterpret_cast<const uint8_t*>(view.data);
      volatile uint8_t sink = 0;
      for (uint64_t i = 0; i < view.nbytes; ++i) sink = sink + begin[i];
      (void)sink;
    }
  }
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace strata
