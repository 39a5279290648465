// The GGUF reader and writer (storage/gguf): a written file reads back with
// every metadata type and tensor type; malformed files (truncated tables, a
// tensor past the end, an unknown type, hostile counts, unaligned or
// overlapping data, rows that are not whole blocks) each get one clear error.
#include "storage/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "storage/env.h"
#include "test_util.h"

namespace strata {
namespace {

// A GGUF file byte by byte, for files the writer would never make.
class Raw {
 public:
  Raw& U32(uint32_t v) { return Put(v); }
  Raw& U64(uint64_t v) { return Put(v); }
  Raw& Str(const std::string& s) {
    U64(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  Raw& Header(uint64_t tensors, uint64_t keys) {
    bytes_.insert(bytes_.end(), {'G', 'G', 'U', 'F'});
    return U32(3).U64(tensors).U64(keys);
  }
  // A tensor entry: GGUF dims (ne[0] first), type code, offset.
  Raw& Tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) U64(n);
    return U32(type).U64(offset);
  }
  Raw& PadData(uint64_t data_bytes) {
    bytes_.resize((bytes_.size() + 31) / 32 * 32 + data_bytes, 0);
    return *this;
  }
  std::string Write(const testing::TempDir& dir, const std::string& name) const {
    std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes_.data()), bytes_.size());
    return dir / name;
  }
  size_t size() const { return bytes_.size(); }

 private:
  template <typename T>
  Raw& Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
    return *this;
  }
  std::vector<uint8_t> bytes_;
};

std::string OpenError(const std::string& path) {
  auto f = GgufFile::Open(path);
  EXPECT_FALSE(f.ok()) << path << " opened";
  return f.ok() ? "" : f.status().message();
}

TEST(GgufTest, AWrittenFileReadsBack) {
  testing::TempDir dir;
  PosixEnv env;
  std::vector<std::pair<std::string, GgufValue>> meta = {
      {"general.architecture", GgufStr("llama")},
      {"llama.block_count", GgufU32(4)},
      {"llama.rope.freq_base", GgufF32(10000.5f)},
      {"tokenizer.ggml.add_bos_token", GgufBool(true)},
      {"tokenizer.ggml.bos_token_id", GgufI32(-1)},
      {"tokenizer.ggml.tokens", GgufStrArray({"<unk>", "a", ""})},
      {"tokenizer.ggml.scores", GgufF32Array({0.0f, -1.5f, -2.0f})},
      {"tokenizer.ggml.token_type", GgufI32Array({2, 1, 1})},
  };
  std::vector<GgufTensorToWrite> tensors;
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1,
                         DType::kQ5_0, DType::kQ5_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  int k = 0;
  for (DType t : types) {
    tensors.push_back({std::string("t.") + DTypeString(t), t, {3, 512}, [k](uint8_t* dst) { dst[0] = static_cast<uint8_t>(k + 1); }});
    ++k;
  }
  ASSERT_TRUE(WriteGguf(env, dir / "m.gguf", meta, tensors).ok());
  auto opened = GgufFile::Open(dir / "m.gguf");
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  const GgufFile& f = *opened.value();
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.String("general.architecture").value(), "llama");
  EXPECT_EQ(f.Int("llama.block_count").value(), 4);
  EXPECT_FLOAT_EQ(static_cast<float>(f.Float("llama.rope.freq_base").value()), 10000.5f);
  EXPECT_TRUE(f.Bool("tokenizer.ggml.add_bos_token").value());
  EXPECT_EQ(f.Int("tokenizer.ggml.bos_token_id").value(), -1);
  auto tokens = f.Array("tokenizer.ggml.tokens", GgufValue::Kind::kString);
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(tokens.value()->strings, (std::vector<std::string>{"<unk>", "a", ""}));
  EXPECT_EQ(f.Array("tokenizer.ggml.scores", GgufValue::Kind::kFloat).value()->floats[1], -1.5);
  EXPECT_EQ(f.Array("tokenizer.ggml.token_type", GgufValue::Kind::kInt).value()->ints[0], 2);
  // Asked for the wrong kind, or a missing key: the error names the key.
  EXPECT_NE(f.Int("general.architecture").status().message().find("general.architecture is a string"), std::string::npos);
  EXPECT_NE(f.Int("llama.nothing").status().message().find("no metadata key llama.nothing"), std::string::npos);
  EXPECT_FALSE(f.Array("tokenizer.ggml.scores", GgufValue::Kind::kString).ok());
  k = 0;
  for (DType t : types) {
    const TensorView* v = f.FindTensor(std::string("t.") + DTypeString(t));
    ASSERT_NE(v, nullptr) << DTypeString(t);
    EXPECT_EQ(v->dtype, t);
    EXPECT_EQ(v->shape, (std::vector<int64_t>{3, 512}));
    uint64_t n;
    ASSERT_TRUE(DTypeBytes(t, {3, 512}, &n));
    EXPECT_EQ(v->nbytes, n) << DTypeString(t);
    EXPECT_EQ(v->data[0], k + 1) << DTypeString(t);
    EXPECT_EQ(f.offset_of(*v) % 32, 0u);
    ++k;
  }
}

TEST(GgufTest, ATruncatedTableIsRefused) {
  testing::TempDir dir;
  Raw r;
  r.Header(2, 0).Tensor("a", {32}, 0, 0).Str("b");
  EXPECT_NE(OpenError(r.Write(dir, "t.gguf")).find("tensor 1's entry truncated"), std::string::npos);
  Raw keys;
  keys.Header(0, 3).Str("general.name").U32(8).Str("x");
  EXPECT_NE(OpenError(keys.Write(dir, "k.gguf")).find("metadata key 1 of 3 truncated"), std::string::npos);
  Raw no_magic;
  no_magic.U32(0x12345678).U32(3);
  EXPECT_NE(OpenError(no_magic.Write(dir, "m.gguf")).find("no GGUF magic"), std::string::npos);
}

TEST(GgufTest, ATensorPastTheEndIsRefused) {
  testing::TempDir dir;
  Raw r;
  r.Header(1, 0).Tensor("blk.0.attn_q.weight", {64, 64}, 0, 0).PadData(64 * 64 * 4 - 1);
  const std::string e = OpenError(r.Write(dir, "t.gguf"));
  EXPECT_NE(e.find("tensor 'blk.0.attn_q.weight' runs past the end of the file"), std::string::npos) << e;
}

TEST(GgufTest, ATypeStrataDoesNotReadIsNamed) {
  testing::TempDir dir;
  Raw q2;
  q2.Header(1, 0).Tensor("blk.3.ffn_down.weight", {256}, 10, 0).PadData(256);
  EXPECT_NE(OpenError(q2.Write(dir, "q2.gguf")).find("tensor 'blk.3.ffn_down.weight' has tensor type Q2_K (type 10)"),
            std::string::npos);
  Raw unknown;
  unknown.Header(1, 0).Tensor("w", {32}, 99, 0).PadData(256);
  EXPECT_NE(OpenError(unknown.Write(dir, "u.gguf")).find("has tensor type type 99"), std::string::npos);
  Raw value;
  value.Header(0, 1).Str("general.x").U32(77);
  EXPECT_NE(OpenError(value.Write(dir, "v.gguf")).find("metadata 'general.x': an unknown value type"), std::string::npos);
}

TEST(GgufTest, HostileCountsAllocateNothing) {
  testing::TempDir dir;
  Raw tensors;
  tensors.Header(1ull << 40, 0);
  EXPECT_NE(OpenError(tensors.Write(dir, "t.gguf")).find("more than the limit"), std::string::npos);
  Raw array;
  array.Header(0, 1).Str("tokenizer.ggml.tokens").U32(9).U32(8).U64(1ull << 60);
  EXPECT_NE(OpenError(array.Write(dir, "a.gguf")).find("more than the file holds"), std::string::npos);
  Raw string;
  string.Header(0, 1).Str("general.name").U32(8).U64(1ull << 50);
  EXPECT_NE(OpenError(string.Write(dir, "s.gguf")).find("longer than the file"), std::string::npos);
  Raw dims;
  dims.Header(1, 0).Str("w").U32(9);
  EXPECT_NE(OpenError(dims.Write(dir, "d.gguf")).find("has 9 dimensions"), std::string::npos);
}

TEST(GgufTest, BadLayoutsAreRefused) {
  testing::TempDir dir;
  Raw unaligned;
  unaligned.Header(1, 0).Tensor("w", {32}, 0, 4).PadData(256);
  EXPECT_NE(OpenError(unaligned.Write(dir, "u.gguf")).find("unaligned offset"), std::string::npos);
  Raw overlap;
  overlap.Header(2, 0).Tensor("a", {64}, 0, 0).Tensor("b", {64}, 0, 128).PadData(512);
  EXPECT_NE(OpenError(overlap.Write(dir, "o.gguf")).find("tensors 'a' and 'b' overlap"), std::string::npos);
  Raw blocks;
  blocks.Header(1, 0).Tensor("blk.0.ffn_down.weight", {100, 2}, 12, 0).PadData(1024);
  EXPECT_NE(OpenError(blocks.Write(dir, "b.gguf")).find("rows of 100 are not whole Q4_K blocks of 256"), std::string::npos);
  Raw twice;
  twice.Header(2, 0).Tensor("a", {8}, 0, 0).Tensor("a", {8}, 0, 32).PadData(64);
  EXPECT_NE(OpenError(twice.Write(dir, "2.gguf")).find("tensor 'a' twice"), std::string::npos);
  Raw version;
  version.U32(0x46554747).U32(1).U64(0).U64(0);
  EXPECT_NE(OpenError(version.Write(dir, "v.gguf")).find("version 1"), std::string::npos);
}

}  // namespace
}  // namespace strata
