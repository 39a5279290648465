// The OpenAI-compatible API's request validation, chat templates and
// Prometheus rendering, as pure functions: every malformed field is one 4xx
// with an OpenAI-style body naming it; nothing is computed for a bad request.
#include "coordinator/api/openai_api.h"

#include <gtest/gtest.h>

#include "base/escape.h"
#include "coordinator/api/serve_metrics.h"

namespace strata {
namespace {

TEST(OpenAiApiTest, ValidRequestsParse) {
  CompletionParams p;
  ApiError e;
  ASSERT_TRUE(ParseCompletion(R"({"prompt":"hi","max_tokens":5,"temperature":0.5,"top_p":0.9,"top_k":40,"seed":7,
                                  "stop":["\n","END"],"stream":true,"stream_options":{"include_usage":true},
                                  "logprobs":2,"user":"u1","model":"m"})",
                              false, 100, &p, &e))
      << e.message;
  EXPECT_EQ(p.prompt, "hi");
  EXPECT_EQ(p.max_tokens, 5);
  EXPECT_DOUBLE_EQ(p.temperature, 0.5);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_TRUE(p.seeded);
  EXPECT_EQ(p.seed, 7u);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(p.stream && p.include_usage);
  EXPECT_EQ(p.logprobs, 2);
  ASSERT_TRUE(ParseCompletion(R"({"messages":[{"role":"system","content":"be brief"},
                                  {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
                                  "logprobs":true,"top_logprobs":3})",
                              true, 100, &p, &e))
      << e.message;
  ASSERT_EQ(p.messages.size(), 2u);
  EXPECT_EQ(p.messages[1].content, "ab");
  EXPECT_EQ(p.max_tokens, 100) << "a chat may use the whole room left";
  EXPECT_EQ(p.logprobs, 3);
}

TEST(OpenAiApiTest, EveryMalformedFieldGetsOneClearError) {
  struct Case { std::string body; bool chat; int status; std::string param, message; };
  const std::vector<Case> cases = {
      {"{", false, 400, "", "not valid JSON"},
      {"[1,2]", false, 400, "", "must be a JSON object"},
      {"{}", false, 400, "prompt", "'prompt' is required"},
      {R"({"prompt":5})", false, 400, "prompt", "'prompt' must be a string"},
      {R"({"prompt":"x","max_tokens":"9"})", false, 400, "max_tokens", "must be an integer"},
      {R"({"prompt":"x","max_tokens":0})", false, 400, "max_tokens", "between 1 and 100"},
      {R"({"prompt":"x","max_tokens":1000000})", false, 400, "max_tokens", "between 1 and 100"},
      {R"({"prompt":"x","temperature":3})", false, 400, "temperature", "between 0.0 and 2.0"},
      {R"({"prompt":"x","temperature":"hot"})", false, 400, "temperature", "must be a number"},
      {R"({"prompt":"x","top_p":0})", false, 400, "top_p", "above 0"},
      {R"({"prompt":"x","seed":1.5})", false, 400, "seed", "must be an integer"},
      {R"({"prompt":"x","stop":["a","b","c","d","e"]})", false, 400, "stop", "at most 4"},
      {R"({"prompt":"x","stop":[""]})", false, 400, "stop", "1 to 256 bytes"},
      {R"({"prompt":"x","stream":"yes"})", false, 400, "stream", "must be a boolean"},
      {R"({"prompt":"x","logprobs":9})", false, 400, "logprobs", "between 0 and 5"},
      {R"({"prompt":"x","n":2})", false, 400, "n", "only n = 1"},
      {R"({"messages":[]})", true, 400, "messages", "non-empty array"},
      {R"({"messages":[{"role":"wizard","content":"x"}]})", true, 400, "messages", "role must be"},
      {R"({"messages":[{"role":"user","content":{"a":1}}]})", true, 400, "messages", "'content' must be"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", true, 400, "messages", "only text"},
      {R"({"messages":[{"role":"user","content":[{"type":5,"text":"x"}]}]})", true, 400, "messages", "only text"},
      {R"({"messages":[{"role":"user","content":[{"type":"text","text":7}]}]})", true, 400, "messages", "only text"},
      {std::string(kMaxRequestBodyBytes + 1, ' '), false, 413, "", "over"},
  };
  for (const auto& c : cases) {
    CompletionParams p;
    ApiError e;
    EXPECT_FALSE(ParseCompletion(c.body, c.chat, 100, &p, &e)) << c.body.substr(0, 80);
    EXPECT_EQ(e.status, c.status) << c.body.substr(0, 80);
    EXPECT_EQ(e.param, c.param) << c.body.substr(0, 80);
    EXPECT_NE(e.message.find(c.message), std::string::npos) << e.message;
    const auto body = nlohmann::json::parse(e.Body());
    EXPECT_EQ(body["error"]["type"], "invalid_request_error");
    EXPECT_EQ(body["error"]["message"], e.message);
  }
}

TEST(OpenAiApiTest, ChatTemplatesByFamily) {
  const std::vector<ChatMessage> chat = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}, {"user", "V"}};
  EXPECT_EQ(DetectChatTemplate(R"({"chat_template":"{% for m in messages %}<|im_start|>..."})", false), ChatTemplate::kChatMl);
  EXPECT_EQ(DetectChatTemplate(R"({"chat_template":"... [INST] ..."})", true), ChatTemplate::kLlama2);
  EXPECT_EQ(DetectChatTemplate(R"({"chat_template":"<|user|>\n"})", false), ChatTemplate::kZephyr);
  EXPECT_EQ(DetectChatTemplate(R"({"chat_template":"<|start_header_id|>"})", false), ChatTemplate::kLlama3);
  EXPECT_EQ(DetectChatTemplate("{}", true), ChatTemplate::kChatMl) << "no template, a ChatML vocabulary";
  EXPECT_EQ(DetectChatTemplate("not json", false), ChatTemplate::kLlama2);
  EXPECT_EQ(RenderChat(ChatTemplate::kChatMl, chat),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            "<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(RenderChat(ChatTemplate::kLlama2, chat), "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] V [/INST]");
  EXPECT_EQ(RenderChat(ChatTemplate::kPlain, chat), "S\nU\nA\nV\n");
}

TEST(ServeMetricsTest, PrometheusTextFormat) {
  ServeMetrics m;
  m.requests_ok = 3;
  m.time_to_first_token.Observe(0.02);
  m.time_to_first_token.Observe(0.2);
  m.time_to_first_token.Observe(100);
  m.stage_compute_s = {1.5, 2.5};
  const std::string text = m.Render("strata:node_up{stage=\"0\",node=\"a\"} 1\n");
  EXPECT_NE(text.find("# TYPE strata:time_to_first_token_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("strata:time_to_first_token_seconds_bucket{le=\"0.025\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("strata:time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("strata:time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("strata:time_to_first_token_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("strata:request_success_total{finished_reason=\"ok\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("strata:stage_compute_seconds_total{stage=\"1\"} 2.5\n"), std::string::npos);
  EXPECT_NE(text.find("strata:node_up{stage=\"0\",node=\"a\"} 1\n"), std::string::npos);
  EXPECT_EQ(EscapePromLabel("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  // Every line is a comment or "name{labels} value".
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    ASSERT_NE(end, std::string::npos);
    const std::string line = text.substr(at, end - at);
    EXPECT_TRUE(line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0 ||
                (line.rfind("strata:", 0) == 0 && line.find(' ') != std::string::npos))
        << line;
    at = end + 1;
  }
}

}  // namespace
}  // namespace strata
