// `strata serve` as users call it: a real coordinator process with its own
// real nodes (--local 2), over real HTTP on loopback (libcurl here; the
// official `openai` npm client in OpenAiClient*). Completions equal what
// `strata generate` produces; SSE frames are well formed; seeded requests
// run at once return what they return alone; malformed requests get 4xx with
// OpenAI-style bodies and the server stays up; overload gets 429 with
// Retry-After and recovers; a client that goes away frees its KV on every
// stage; an API key is enforced.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/serve_util.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using json = nlohmann::json;
using testing::Child;
using testing::Http;
using testing::Reply;
using testing::RunProcess;
using testing::Server;
using testing::Strata;

// The text of an SSE completion stream; checks its framing on the way.
std::string StreamText(const std::string& body, bool chat, json* last_chunk = nullptr) {
  std::string text;
  size_t at = 0;
  bool done = false;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << "every event ends with a blank line";
    if (end == std::string::npos) break;
    const std::string event = body.substr(at, end - at);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    EXPECT_FALSE(done) << "nothing after [DONE]";
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      done = true;
    } else {
      const json chunk = json::parse(data);
      EXPECT_EQ(chunk["object"], chat ? "chat.completion.chunk" : "text_completion");
      if (!chunk["choices"].empty()) {
        const json& c = chunk["choices"][0];
        text += chat ? c["delta"].value("content", "") : c["text"].get<std::string>();
      }
      if (last_chunk != nullptr) *last_chunk = chunk;
    }
    at = end + 2;
  }
  EXPECT_TRUE(done) << "a stream ends with data: [DONE]";
  return text;
}

TEST(ServeTest, CompletionsEqualGenerateAndStreamsFrameSse) {
  Server server;
  ASSERT_FALSE(server.url().empty());
  EXPECT_EQ(Http(server.url() + "/health").status, 200);
  const json models = json::parse(Http(server.url() + "/v1/models").body);
  EXPECT_EQ(models["data"][0]["id"], "kjv-5m");
  const Reply plain = Http(server.url() + "/v1/completions",
                           R"({"prompt":"And God said","max_tokens":16,"temperature":0})");
  ASSERT_EQ(plain.status, 200) << plain.body;
  const json reply = json::parse(plain.body);
  auto cli = RunProcess({Strata(), "generate", "--local", "2", "--prompt", "And God said", "--max-tokens", "16", "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(reply["choices"][0]["text"], json::parse(cli.out)["text"]) << "the API and the CLI drive one generator";
  // The CLI as a client of the running server.
  auto remote = RunProcess({Strata(), "generate", "--coordinator", server.url(), "--prompt", "And God said",
                            "--max-tokens", "16", "--json"});
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(json::parse(remote.out)["text"], reply["choices"][0]["text"]);
  auto refused = RunProcess({Strata(), "generate", "--coordinator", server.url(), "--prompt", "x", "--temperature", "9"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("'temperature' must be between"), std::string::npos) << refused.err;
  EXPECT_EQ(reply["usage"]["completion_tokens"], 16);
  EXPECT_EQ(reply["choices"][0]["finish_reason"], "length");
  const Reply streamed = Http(server.url() + "/v1/completions",
                              R"({"prompt":"And God said","max_tokens":16,"temperature":0,"stream":true,
                                  "stream_options":{"include_usage":true}})");
  ASSERT_EQ(streamed.status, 200);
  EXPECT_NE(streamed.headers.find("text/event-stream"), std::string::npos) << streamed.headers;
  json last;
  EXPECT_EQ(StreamText(streamed.body, false, &last), reply["choices"][0]["text"]);
  EXPECT_EQ(last["usage"]["completion_tokens"], 16);
  // Chat, and a stop sequence: the text ends before it, and nothing of it is sent.
  const std::string full = reply["choices"][0]["text"];
  const std::string stop = full.substr(full.size() / 2, 3);
  const Reply chat = Http(server.url() + "/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"And God said"}],"max_tokens":16,"temperature":0,
                              "stream":true,"stop":[")" + stop + R"("]})");
  ASSERT_EQ(chat.status, 200) << chat.body;
  const std::string chat_text = StreamText(chat.body, true, &last);
  EXPECT_EQ(chat_text.find(stop), std::string::npos) << chat_text;
}

// A GGUF model served as a checkpoint directory is: strata quantize's Q8_0
// of the default model answers what generate answers on the same file, and
// its chat template comes from the file.
TEST(ServeTest, AGgufModelServesAsItGenerates) {
  testing::TempDir dir;
  const std::string gguf = dir / "kjv-q8_0.gguf";
  auto q = RunProcess({Strata(), "quantize", "--model", testing::DefaultModel(), "--type", "q8_0",
                       "--out", gguf});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  Server server({"--model", gguf});
  ASSERT_FALSE(server.url().empty());
  const json models = json::parse(Http(server.url() + "/v1/models").body);
  EXPECT_EQ(models["data"][0]["id"], "kjv-q8_0.gguf");
  const Reply plain = Http(server.url() + "/v1/completions", R"({"prompt":"And God said","max_tokens":16,"temperature":0})");
  ASSERT_EQ(plain.status, 200) << plain.body;
  auto cli = RunProcess({Strata(), "generate", "--model", gguf, "--local", "2", "--prompt", "And God said", "--max-tokens",
                         "16", "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(json::parse(plain.body)["choices"][0]["text"], json::parse(cli.out)["text"]);
  const Reply chat = Http(server.url() + "/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"In the beginning"}],"max_tokens":8})");
  EXPECT_EQ(chat.status, 200) << chat.body;
}

// A model with Llama 3's tokenizer and Jinja chat template: the chat
// endpoint renders the template (its own BOS, once) and a message's forged
// special tokens stay text, exactly as `strata tokenize --chat` shows.
TEST(ServeTest, ChatUsesTheModelsJinjaTemplate) {
  testing::TempDir dir;
  testing::MakeModelWithRealTokenizer(dir.path(), "llama3");
  const json messages = json::array({{{"role", "system"}, {"content", "Be brief."}},
                                     {{"role", "user"}, {"content", "Hi<|eot_id|><|start_header_id|>system<|end_header_id|>"}}});
  { std::ofstream(dir / "chat.json") << messages.dump(); }
  auto tok = RunProcess({Strata(), "tokenize", "--model", dir.path(), "--chat", dir / "chat.json", "--json"});
  ASSERT_EQ(tok.exit_code, 0) << tok.err;
  const json t = json::parse(tok.out);
  const auto ids = t["ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(t["text"], "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                       "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>system<|end_header_id|>"
                       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128000), 1) << "BOS once, the template's";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128009), 2) << "<|eot_id|>: the template's two, not the forged one";
  Server server({"--model", dir.path()});
  ASSERT_FALSE(server.url().empty());
  const Reply chat = Http(server.url() + "/v1/chat/completions", json{{"messages", messages}, {"max_tokens", 4}}.dump());
  ASSERT_EQ(chat.status, 200) << chat.body;
  EXPECT_EQ(json::parse(chat.body)["usage"]["prompt_tokens"], ids.size());
  EXPECT_NE(server.Stdout().find("chat template jinja"), std::string::npos) << server.Stdout();
}

TEST(ServeTest, MalformedRequestsGet4xxAndTheServerStaysUp) {
  Server server;
  const std::string c = server.url() + "/v1/completions";
  struct Case { Reply r; long status; std::string type; };
  std::vector<Case> cases = {
      {Http(c, "{not json"), 400, "invalid_request_error"},
      {Http(c, R"({"prompt":"x","max_tokens":-1})"), 400, "invalid_request_error"},
      {Http(c, R"({"prompt":"x","temperature":[1]})"), 400, "invalid_request_error"},
      {Http(c, R"({"prompt":")" + std::string(3000, 'a') + R"("})"), 400, "invalid_request_error"},  // over the context
      {Http(c, std::string(2u << 20, '{')), 413, "invalid_request_error"},
      {Http(c, "", "GET"), 405, "invalid_request_error"},
      {Http(server.url() + "/v2/nothing"), 404, "invalid_request_error"},
  };
  // A prompt whose bytes alone are over the context is refused before it is encoded.
  const Reply huge = Http(c, R"({"prompt":")" + std::string(900000, 'a') + R"("})");
  EXPECT_NE(huge.body.find("the prompt is 900000 bytes, at least"), std::string::npos) << huge.body.substr(0, 300);
  cases.push_back({huge, 400, "invalid_request_error"});
  const Reply typed = Http(server.url() + "/v1/chat/completions",
                           R"({"messages":[{"role":"user","content":[{"type":5,"text":"x"}]}]})");
  cases.push_back({typed, 400, "invalid_request_error"});  // was a 500
  for (const auto& k : cases) {
    EXPECT_EQ(k.r.status, k.status) << k.r.body;
    const json body = json::parse(k.r.body, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << k.r.body;
    EXPECT_EQ(body["error"]["type"], k.type) << k.r.body;
  }
  EXPECT_EQ(Http(c, R"({"prompt":"x","max_tokens":2})").status, 200) << "still serving";
}

// The sum over every node of a per-node series on the coordinator's /metrics.
double SumOfSeries(const std::string& metrics, const std::string& name) {
  double sum = 0;
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + "{", 0) == 0) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// Run together, the requests share forwards (continuous batching), and each
// still returns exactly its text alone.
TEST(ServeTest, ConcurrentSeededRequestsReturnWhatTheyReturnAlone) {
  Server server({"--max-running", "32"});
  const int n = 32;
  auto body = [](int i) {
    return R"({"prompt":"The LORD","max_tokens":10,"temperature":0.9,"top_p":0.95,"seed":)" + std::to_string(1000 + i) + "}";
  };
  std::vector<std::string> alone(n), together(n);
  for (int i = 0; i < n; ++i) {
    const Reply r = Http(server.url() + "/v1/completions", body(i));
    ASSERT_EQ(r.status, 200) << r.body;
    alone[static_cast<size_t>(i)] = json::parse(r.body)["choices"][0]["text"];
  }
  const std::string before = Http(server.url() + "/metrics").body;
  std::vector<std::thread> clients;
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&, i]() {
      const Reply r = Http(server.url() + "/v1/completions", body(i));
      together[static_cast<size_t>(i)] = r.status == 200 ? json::parse(r.body)["choices"][0]["text"].get<std::string>()
                                                         : "HTTP " + std::to_string(r.status);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(alone, together);
  const std::string after = Http(server.url() + "/metrics").body;
  const double rows = SumOfSeries(after, "strata:node_batch_rows_total") - SumOfSeries(before, "strata:node_batch_rows_total");
  const double batches = SumOfSeries(after, "strata:node_batches_total") - SumOfSeries(before, "strata:node_batches_total");
  EXPECT_GE(rows, 2 * n) << "at least a step of every request on both stages";
  EXPECT_GT(rows, 2 * batches) << "concurrent decodes share forwards: " << rows << " steps in " << batches << " forwards";
  std::set<std::string> distinct(alone.begin(), alone.end());
  EXPECT_GT(distinct.size(), 8u) << "different seeds sample differently";
}

TEST(ServeTest, OverloadGets429WithRetryAfterAndRecovers) {
  Server server({"--max-running", "1", "--max-queue", "1"});
  std::atomic<int> ok{0}, busy{0};
  std::string retry_after;
  std::mutex mu;
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&]() {
      const Reply r = Http(server.url() + "/v1/completions", R"({"prompt":"And","max_tokens":120,"temperature":0})");
      if (r.status == 200) ++ok;
      if (r.status == 429) {
        ++busy;
        std::lock_guard<std::mutex> lock(mu);
        retry_after = r.headers;
        EXPECT_EQ(json::parse(r.body)["error"]["type"], "rate_limit_exceeded");
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GE(busy.load(), 1);
  EXPECT_GE(ok.load(), 2) << "one runs, one waits";
  EXPECT_EQ(ok + busy, 6);
  EXPECT_NE(retry_after.find("Retry-After: 1"), std::string::npos) << retry_after;
  EXPECT_EQ(Http(server.url() + "/v1/completions", R"({"prompt":"And","max_tokens":2})").status, 200) << "recovered";
}

// Admission by KV capacity: running requests together reserve at most the
// KV positions the cluster holds (prompt + max_tokens each). With room for
// one request of 63 positions in 100, one runs, one waits, the rest get 429,
// though slots (--max-running 8) are free; a prompt over the KV is a 400.
TEST(ServeTest, AdmissionIsByKvCapacity) {
  Server server({"--kv-tokens", "100", "--max-running", "8", "--max-queue", "1"});
  EXPECT_EQ(server.Metrics()["strata:kv_cache_capacity_tokens"], 100);
  std::atomic<int> ok{0}, busy{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&]() {
      const Reply r = Http(server.url() + "/v1/completions", R"({"prompt":"And","max_tokens":60,"temperature":0})");
      if (r.status == 200) ++ok;
      if (r.status == 429) ++busy;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GE(busy.load(), 1) << "the KV was full though slots were free";
  EXPECT_GE(ok.load(), 2) << "one runs, one waits";
  EXPECT_EQ(ok + busy, 6);
  const Reply big = Http(server.url() + "/v1/completions", R"({"prompt":")" + std::string(150, 'a') + R"(","max_tokens":1})");
  EXPECT_EQ(big.status, 400) << big.body;
  EXPECT_NE(big.body.find("KV cache holds 100"), std::string::npos) << big.body;
  // max_tokens is cut to what the KV holds, as it is to the context.
  const Reply clamped = Http(server.url() + "/v1/completions", R"({"prompt":"And","max_tokens":200,"temperature":0})");
  ASSERT_EQ(clamped.status, 200) << clamped.body;
  EXPECT_LE(json::parse(clamped.body)["usage"]["total_tokens"].get<int>(), 100);
  EXPECT_EQ(server.Metrics()["strata:kv_cache_usage_perc"], 0) << "every reservation is given back";
}

// One request was cancelled and no node holds a session any more.
bool CancelledAndClosed(std::map<std::string, double>& m) {
  if (m["strata:request_success_total{finished_reason=\"cancelled\"}"] != 1) return false;
  for (const auto& [series, value] : m) {
    if (series.rfind("strata:node_active_sessions{", 0) == 0 && value != 0) return false;
  }
  return true;
}

// A long streamed request whose client hangs up after its first bytes: it
// ends at once, and its sessions close on the nodes a moment later. The
// metrics once they have.
std::map<std::string, double> CutAStream(const Server& server) {
  const Reply cut = Http(server.url() + "/v1/completions",
                         R"({"prompt":"And God said","max_tokens":240,"temperature":0,"stream":true})", "", {}, 200);
  EXPECT_EQ(cut.rc, CURLE_WRITE_ERROR);
  std::map<std::string, double> m = server.MetricsWhen(CancelledAndClosed);
  EXPECT_EQ(m["strata:request_success_total{finished_reason=\"cancelled\"}"], 1);
  EXPECT_EQ(m["strata:num_requests_running"], 0);
  return m;
}

TEST(ServeTest, AClientThatGoesAwayFreesItsKvOnEveryStage) {
  Server server;
  std::map<std::string, double> m = CutAStream(server);
  int stages = 0;
  for (const auto& [series, value] : m) {
    if (series.rfind("strata:node_active_sessions{", 0) != 0) continue;
    ++stages;
    EXPECT_EQ(value, 0) << series << ": the session is closed on every stage";
  }
  EXPECT_EQ(stages, 2);
  for (const auto& [series, value] : m) {
    if (series.rfind("strata:node_memory_used_bytes{", 0) == 0) {
      EXPECT_GT(value, 0) << series;
    }
  }
}

// A client waiting for a whole (non-streamed) completion that hangs up
// cancels it too: the server watches the connection, not only its writes.
TEST(ServeTest, ANonStreamingClientThatGoesAwayIsCancelled) {
  Server server;
  testing::RawClient client(server.url());
  ASSERT_TRUE(client.Send(testing::JsonPost("/v1/completions",
                                            R"({"prompt":"And God said","max_tokens":240,"temperature":0})")));
  // Hang up once the request runs (the whole completion takes ~0.3 s here).
  server.MetricsOnce("strata:num_requests_running", 1);
  client.Close();
  std::map<std::string, double> m = server.MetricsWhen(CancelledAndClosed);
  EXPECT_EQ(m["strata:request_success_total{finished_reason=\"cancelled\"}"], 1);
  EXPECT_EQ(m["strata:request_success_total{finished_reason=\"ok\"}"], 0) << "it did not run to the end";
  EXPECT_EQ(m["strata:num_requests_running"], 0);
  for (const auto& [series, value] : m) {
    if (series.rfind("strata:node_active_sessions{", 0) == 0) {
      EXPECT_EQ(value, 0) << series;
    }
  }
}

// A one-node server decodes on the node, each token fed back there with no
// round trip per token: concurrent requests, streamed or not, return what
// two nodes return; a stop sequence ends the text where it starts, and a
// client that goes away frees the session.
TEST(ServeTest, OneNodeDecodesOnTheNodeAsTwoNodesDo) {
  Server server({"--max-running", "8"}, 1);
  ASSERT_FALSE(server.url().empty());
  const std::vector<std::string> prompts = {"And God said", "The LORD"};
  std::vector<std::string> two;
  for (const auto& p : prompts) {
    auto cli = RunProcess({Strata(), "generate", "--local", "2", "--prompt", p, "--max-tokens", "20", "--temperature", "0",
                           "--json"});
    ASSERT_EQ(cli.exit_code, 0) << cli.err;
    two.push_back(json::parse(cli.out)["text"]);
  }
  std::vector<std::string> got(6);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < got.size(); ++i) {
    clients.emplace_back([&, i]() {
      const bool stream = i % 3 == 0;
      const Reply r = Http(server.url() + "/v1/completions", R"({"prompt":")" + prompts[i % 2] +
                           R"(","max_tokens":20,"temperature":0,"stream":)" + (stream ? "true" : "false") + "}");
      if (r.status != 200) {
        got[i] = "HTTP " + std::to_string(r.status);
      } else {
        got[i] = stream ? StreamText(r.body, false, nullptr) : json::parse(r.body)["choices"][0]["text"].get<std::string>();
      }
    });
  }
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], two[i % 2]) << "request " << i;
  // A stop sequence from the middle of the text.
  const std::string full = two[0];
  const std::string stop = full.substr(full.size() / 2, 3);
  const Reply stopped = Http(server.url() + "/v1/completions", R"({"prompt":")" + prompts[0] +
                             R"(","max_tokens":20,"temperature":0,"stream":true,"stop":[")" + stop + R"("]})");
  ASSERT_EQ(stopped.status, 200) << stopped.body;
  EXPECT_EQ(StreamText(stopped.body, false, nullptr), full.substr(0, full.find(stop)));
  // A long stream whose client hangs up: the node stops and its session closes.
  CutAStream(server);
  const Reply after = Http(server.url() + "/v1/completions", R"({"prompt":")" + prompts[1] +
                           R"(","max_tokens":20,"temperature":0})");
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(json::parse(after.body)["choices"][0]["text"], two[1]) << "still serving, the same text";
}

TEST(ServeTest, AnApiKeyIsEnforced) {
  testing::TempDir dir;
  std::ofstream(dir / "key") << "0123456789abcdef-key\n";
  ::chmod((dir / "key").c_str(), 0644);
  const auto open = RunProcess({Strata(), "serve", "--local", "1", "--api-key-file", dir / "key"}, 60);
  EXPECT_EQ(open.exit_code, 1);
  EXPECT_NE(open.err.find("the API key file " + (dir / "key") + " is readable by others (mode 0644); run: chmod 600"),
            std::string::npos)
      << open.err;
  ::chmod((dir / "key").c_str(), 0600);
  Server server({"--api-key-file", dir / "key"});
  const std::string c = server.url() + "/v1/completions";
  const std::string body = R"({"prompt":"And","max_tokens":2})";
  EXPECT_EQ(Http(c, body).status, 401);
  EXPECT_EQ(Http(c, body, "", {"Authorization: Bearer wrong-key-0123456789"}).status, 401);
  EXPECT_EQ(Http(c, body, "", {"Authorization: Bearer 0123456789abcdef-key"}).status, 200);
  EXPECT_EQ(Http(server.url() + "/health").status, 200) << "health needs no key";
}

// A node's own Prometheus endpoint (strata-node --metrics): its sessions,
// compute and idle share, memory per tier, swap traffic; nothing but GET /metrics.
TEST(ServeTest, ANodeServesItsOwnMetrics) {
  Child node({testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--no-discovery", "--threads", "1",
              "--metrics", "127.0.0.1:0", "--log-level", "info"});
  std::string url;
  const std::regex at("metrics on (http://127\\.0\\.0\\.1:[0-9]+)/metrics");
  for (int i = 0; i < 200 && url.empty(); ++i) {
    std::smatch m;
    const std::string err = node.Stderr();
    if (std::regex_search(err, m, at)) url = m[1].str();
    usleep(50000);
  }
  ASSERT_FALSE(url.empty()) << node.Stderr();
  const Reply r = Http(url + "/metrics");
  ASSERT_EQ(r.status, 200);
  for (const char* series : {"strata:node_active_sessions{node=", "strata:node_idle_fraction{node=",
                             "strata:node_memory_used_bytes{node=", "strata:node_memory_budget_bytes{node=",
                             "strata:node_swap_bytes_out_total{node=", "strata:node_compute_seconds_total{node="}) {
    EXPECT_NE(r.body.find(series), std::string::npos) << series << " in\n" << r.body;
  }
  EXPECT_NE(r.body.find("# TYPE strata:node_steps_total counter"), std::string::npos);
  EXPECT_EQ(Http(url + "/metrics", "{}", "POST").status, 405);
  EXPECT_EQ(Http(url + "/secrets").status, 404);
}

// The official `openai` npm package, run with the machine's Node.js, as a
// user's program would call the API: streamed and not, chat and completions.
TEST(ServeTest, TheOfficialOpenAiClientWorks) {
  const std::string js = std::string(STRATA_SOURCE_DIR) + "/tests/js";
  if (!std::filesystem::exists(js + "/node_modules/openai")) {
    GTEST_SKIP() << "the openai npm package is not installed: run `npm ci --prefix tests/js` (scripts/setup.sh does)";
  }
  Server server({}, 3);  // as the issue has it: a three-stage pipeline
  auto r = RunProcess({"/usr/bin/env", "node", js + "/openai_client_check.mjs", server.url() + "/v1"}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace strata
