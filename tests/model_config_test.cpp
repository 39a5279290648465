// config.json parsing: the architectures Strata runs, and clear refusals.
#include "storage/model_config.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

const char* kLlama = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":32000,
  "hidden_size":2048,"intermediate_size":5632,"num_hidden_layers":22,"num_attention_heads":32,
  "num_key_value_heads":4,"max_position_embeddings":2048,"rms_norm_eps":1e-5,"rope_theta":10000.0,
  "tie_word_embeddings":false,"bos_token_id":1,"eos_token_id":2})";

TEST(ModelConfigTest, ParsesLlama) {
  auto c = ModelConfig::Parse(kLlama, "", "m");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->num_layers, 22);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->max_position, 2048);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_TRUE(c->add_bos);
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>{2});
}

TEST(ModelConfigTest, ParsesQwen2WithBiasesAndEosList) {
  auto c = ModelConfig::Parse(R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":100,
    "hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
    "eos_token_id":[5,7],"tie_word_embeddings":true})", "", "q");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->add_bos) << "Qwen2 tokenizers add no BOS";
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{5, 7}));
}

TEST(ModelConfigTest, TokenizerConfigControlsBos) {
  auto c = ModelConfig::Parse(kLlama, R"({"add_bos_token": false})", "m");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->add_bos);
}

TEST(ModelConfigTest, RefusesUnknownArchitecture) {
  auto c = ModelConfig::Parse(R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"})", "", "dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown architecture 'GPT2LMHeadModel'"), std::string::npos);
}

TEST(ModelConfigTest, RefusesBadFields) {
  std::string bad = kLlama;
  bad.replace(bad.find("\"num_key_value_heads\":4"), 23, "\"num_key_value_heads\":5");
  auto c = ModelConfig::Parse(bad, "", "dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not a multiple"), std::string::npos);

  std::string missing = kLlama;
  missing.replace(missing.find("\"hidden_size\":2048,"), 19, "");
  c = ModelConfig::Parse(missing, "", "dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("no 'hidden_size'"), std::string::npos);

  c = ModelConfig::Parse("not json", "", "dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not a JSON object"), std::string::npos);

  std::string negative = kLlama;
  negative.replace(negative.find("\"vocab_size\":32000"), 18, "\"vocab_size\":-3");
  c = ModelConfig::Parse(negative, "", "dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'vocab_size' must be a positive integer"), std::string::npos);
}

TEST(ModelConfigTest, MissingConfigFileIsNamed) {
  auto c = ModelConfig::Load("/nonexistent-dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent-dir/config.json"), std::string::npos);
}

}  // namespace
}  // namespace strata
