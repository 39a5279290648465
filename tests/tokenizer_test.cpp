// The SentencePiece tokenizer of a generated model: BOS, round trip, EOS.
#include "coordinator/tokenizer.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace strata {
namespace {

TEST(TokenizerTest, EncodesWithBosAndDecodesBack) {
  testing::TempDir dir;
  TestModelSpec spec;
  spec.tokenizer_vocab = 300;
  testing::MakeModel(dir.path(), spec);
  auto config = ModelConfig::Load(dir.path());
  ASSERT_TRUE(config.ok());
  auto tok = Tokenizer::Load(dir.path(), config.value());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const std::string text = "the software is free";
  auto ids = tok.value()->Encode(text);
  ASSERT_GT(ids.size(), 1u);
  EXPECT_EQ(ids[0], 1) << "BOS first";
  EXPECT_EQ(tok.value()->Decode(ids), text);
  EXPECT_TRUE(tok.value()->IsEos(2));
  // Ids past the tokenizer's pieces (the model vocabulary is larger) decode to nothing.
  EXPECT_EQ(tok.value()->Decode({tok.value()->piece_count() + 5}), "");
}

TEST(TokenizerTest, MissingModelIsNamed) {
  ModelConfig config;
  auto tok = Tokenizer::Load("/nonexistent", config);
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("/nonexistent/tokenizer.model"), std::string::npos);
}

}  // namespace
}  // namespace strata
