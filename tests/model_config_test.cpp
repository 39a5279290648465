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

// Llama 3.1's rope_scaling, as Hugging Face applies it: high frequencies
// kept, low ones divided by the factor, the band between smoothed.
TEST(ModelConfigTest, RopeScalingBecomesOneFactorPerFrequency) {
  auto with = [](const std::string& scaling) {
    std::string j = kLlama;
    j.insert(j.size() - 1, R"(,"rope_theta":500000.0,"head_dim":128,"rope_scaling":)" + scaling);
    return ModelConfig::Parse(j, "", "m");
  };
  auto c = with(R"({"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
                    "original_max_position_embeddings":8192})");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->rope_freq_factors.size(), 64u);
  EXPECT_EQ(c->rope_freq_factors[0], 1.0f) << "a high frequency is kept";
  EXPECT_EQ(c->rope_freq_factors[63], 8.0f) << "a low one is divided by the factor";
  int smoothed = 0;
  for (float f : c->rope_freq_factors) smoothed += f > 1.0f && f < 8.0f;
  EXPECT_GT(smoothed, 0) << "the band between";
  for (size_t i = 1; i < 64; ++i) EXPECT_GE(c->rope_freq_factors[i], c->rope_freq_factors[i - 1]);
  c = with(R"({"type":"linear","factor":2.0})");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->rope_freq_factors, std::vector<float>(64, 2.0f));
  EXPECT_TRUE(with("null").ok() && with("null")->rope_freq_factors.empty());
  for (const char* refused : {R"({"type":"dynamic","factor":2.0})", R"({"rope_type":"yarn","factor":4.0})",
                              R"({"rope_type":"llama3","factor":0.5})", R"("llama3")"}) {
    auto r = with(refused);
    ASSERT_FALSE(r.ok()) << refused;
    EXPECT_NE(r.status().message().find("m: rope_scaling"), std::string::npos) << r.status().message();
  }
}

TEST(ModelConfigTest, ParsesQwen3AndMistral) {
  auto q = ModelConfig::Parse(R"({"architectures":["Qwen3ForCausalLM"],"model_type":"qwen3","vocab_size":151936,
    "hidden_size":1024,"intermediate_size":3072,"num_hidden_layers":28,"num_attention_heads":16,
    "num_key_value_heads":8,"head_dim":128,"max_position_embeddings":40960,"attention_bias":false,
    "sliding_window":null,"use_sliding_window":false,"tie_word_embeddings":true})", "", "m");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_TRUE(q->qk_norm);
  EXPECT_FALSE(q->qkv_bias);
  EXPECT_EQ(q->head_dim, 128) << "wider than hidden / heads";
  EXPECT_EQ(q->max_position, 40960);
  auto m = ModelConfig::Parse(R"({"architectures":["MistralForCausalLM"],"model_type":"mistral","vocab_size":32000,
    "hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,"num_attention_heads":32,
    "num_key_value_heads":8,"max_position_embeddings":32768,"sliding_window":4096})", "", "m");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_FALSE(m->qk_norm);
  EXPECT_EQ(m->max_position, 4096) << "exact only within the sliding window";
}

TEST(ModelConfigTest, MissingConfigFileIsNamed) {
  auto c = ModelConfig::Load("/nonexistent-dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent-dir/config.json"), std::string::npos);
}

}  // namespace
}  // namespace strata
