#include "coordinator/api/api_server.h"

#include <kj/compat/http.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "base/escape.h"
#include "base/hex.h"
#include "coordinator/api/api_server_impl.h"
#include "coordinator/api/chat_page.h"
#include "coordinator/api/dashboard.h"
#include "coordinator/api/request_guard.h"
#include "coordinator/pipeline/generation_driver.h"
#include "protocol/peer_auth.h"

namespace strata {
namespace {

// log-softmax of `logits` at `token`, and the `top` most likely tokens.
json Logprobs(const std::vector<float>& logits, int32_t token, int64_t top, const Tokenizer& tokenizer, bool chat) {
  double max = -INFINITY;
  for (float v : logits) max = std::max<double>(max, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  const double log_sum = std::log(sum) + max;
  auto lp = [&](int32_t t) { return static_cast<double>(logits[static_cast<size_t>(t)]) - log_sum; };
  std::vector<int32_t> order;
  if (top > 0) {
    order.resize(logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    const size_t k = std::min<size_t>(static_cast<size_t>(top), order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    order.resize(k);
  }
  const std::string text = tokenizer.Decode({token});
  if (chat) {
    json tops = json::array();
    for (int32_t t : order) tops.push_back({{"token", tokenizer.Decode({t})}, {"logprob", lp(t)}});
    return {{"token", text}, {"logprob", lp(token)}, {"top_logprobs", tops}};
  }
  json tops = json::object();
  for (int32_t t : order) tops[tokenizer.Decode({t})] = lp(t);
  return {{"token", text}, {"logprob", lp(token)}, {"top", tops}};
}

}  // namespace

Job::Job(ApiServer::Impl& s, CompletionParams p, std::vector<int32_t> ids)
    : server(s), params(std::move(p)), prompt(std::move(ids)) {
  session = s.rng();
  uint8_t raw[12];
  for (auto& b : raw) b = static_cast<uint8_t>(s.rng());
  id = (params.chat ? "chatcmpl-" : "cmpl-") + HexEncode(raw, sizeof raw);
  created = static_cast<int64_t>(std::time(nullptr));
  t0 = Now();
  s.active[id] = this;
}

Job::~Job() noexcept {
  server.active.erase(id);
  if (opened) server.pipeline.CloseSession(session).detach([](kj::Exception&&) {});  // frees its KV on every stage
  if (admitted) server.Release(kv_need());
  if (admitted && !finished) {
    ++server.metrics.requests_cancelled;
    spdlog::info("request {} cancelled: the client went away", id);
  }
}

json Job::Chunk(const std::string& text, const json& finish) const {
  json choice = {{"index", 0}, {"finish_reason", finish}};
  if (params.chat) {
    json delta = json::object();
    if (first_chunk) delta["role"] = "assistant";
    if (!text.empty() || first_chunk) delta["content"] = text;
    choice["delta"] = delta;
    choice["logprobs"] = nullptr;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id}, {"object", params.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
          {"model", server.options.model_name}, {"choices", json::array({choice})}};
}

void Job::OnToken(int32_t token, const std::string& text, const std::vector<float>& logits) {
  // Live figures: each token counts as it comes, not when its request ends.
  const double now = Now();
  ServeMetrics& m = server.metrics;
  m.batch_size.Observe(static_cast<double>(m.running));
  if (last_token_s == 0) {
    m.time_to_first_token.Observe(now - t0);
  } else {
    m.time_per_output_token.Observe(now - last_token_s);
  }
  last_token_s = now;
  ++m.generation_tokens;
  if (params.logprobs >= 0 && !logits.empty()) {
    logprobs.push_back(Logprobs(logits, token, params.logprobs, server.tokenizer, params.chat));
  }
  // Every token gets its event, its text possibly "" (a partial character,
  // a possible stop sequence): clients see the pace of generation.
  if (!stream) return;
  json chunk = Chunk(text, nullptr);
  if (params.logprobs >= 0 && !logprobs.empty()) {
    chunk["choices"][0]["logprobs"] = params.chat ? json{{"content", json::array({logprobs.back()})}} : logprobs.back();
  }
  first_chunk = false;
  Write("data: " + chunk.dump() + "\n\n");
}

void Job::Write(std::string text) {
  writes = writes.then([this, text = kj::mv(text)]() mutable {
               auto bytes = kj::heapString(text.data(), text.size());
               auto write = stream->write(bytes.begin(), bytes.size());
               return write.attach(kj::mv(bytes));
             })
               .eagerlyEvaluate([this](kj::Exception&& e) {
                 gone = true;
                 if (client_gone) client_gone->reject(kj::mv(e));
               });
}


kj::Promise<void> ConnectionService::request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                                             kj::AsyncInputStream& body, Response& response) {
  return api_.request(method, url, headers, body, response, connection_);
}

kj::Promise<void> ApiServer::Impl::request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                                           kj::AsyncInputStream& body, Response& response,
                                           WatchedConnection& connection) {
  std::string path = url.cStr();
  path = path.substr(0, path.find('?'));
  RequestFacts facts;
  facts.post = method == kj::HttpMethod::POST;
  KJ_IF_MAYBE(h, headers.get(kj::HttpHeaderId::HOST)) { facts.host = std::string(h->cStr()); }
  KJ_IF_MAYBE(o, headers.get(origin)) { facts.origin = std::string(o->cStr()); }
  KJ_IF_MAYBE(t, headers.get(kj::HttpHeaderId::CONTENT_TYPE)) { facts.content_type = std::string(t->cStr()); }
  if (auto refused = GuardRequest(options.loopback_bind, facts)) return SendError(response, *refused);
  if (path == "/health") return SendJson(response, 200, R"({"status":"ok"})");
  if (path == "/" && method == kj::HttpMethod::GET) return SendText(response, 200, "text/html; charset=utf-8", kDashboardHtml);
  if (path == "/chat" && method == kj::HttpMethod::GET) return SendText(response, 200, "text/html; charset=utf-8", kChatPageHtml);
  if (!options.api_key.empty() && !BearerTokenMatches(headers.get(authorization), options.api_key)) {
    return SendError(response, {401, "a valid API key is needed (Authorization: Bearer KEY)", "invalid_request_error", ""});
  }
  const bool post = method == kj::HttpMethod::POST, get = method == kj::HttpMethod::GET;
  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (!post) return SendError(response, {405, "use POST", "invalid_request_error", ""});
    return Completion(path == "/v1/chat/completions", headers, body, response, connection);
  }
  if (path == "/v1/models") {
    if (!get) return SendError(response, {405, "use GET", "invalid_request_error", ""});
    json models = {{"object", "list"},
                   {"data", json::array({{{"id", options.model_name}, {"object", "model"}, {"created", 0},
                                          {"owned_by", "strata"}, {"max_model_len", options.context}}})}};
    return SendJson(response, 200, models.dump());
  }
  if (path == "/v1/strata/status") {
    if (!get) return SendError(response, {405, "use GET", "invalid_request_error", ""});
    return Status(response);
  }
  if (path == "/metrics") {
    if (!get) return SendError(response, {405, "use GET", "invalid_request_error", ""});
    return Metrics(response);
  }
  return SendError(response, {404, "no such endpoint: " + EscapeText(path, 100), "invalid_request_error", ""});
}

// A prompt refused before it is encoded: its bytes alone make more tokens
// than the context holds.
ApiError ApiServer::Impl::TooLong(size_t bytes, bool chat) const {
  return {400,
          "the prompt is " + std::to_string(bytes) + " bytes, at least " + std::to_string(tokenizer.FewestTokens(bytes)) +
              " tokens; the model's context is " + std::to_string(options.context),
          "invalid_request_error", chat ? "messages" : "prompt"};
}

kj::Promise<void> ApiServer::Impl::Completion(bool chat, const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                                              Response& response, WatchedConnection& connection) {
  KJ_IF_MAYBE(length, headers.get(kj::HttpHeaderId::CONTENT_LENGTH)) {
    if (length->size() > 12 || std::strtoull(length->cStr(), nullptr, 10) > kMaxRequestBodyBytes) {
      return SendError(response, {413, "the request body is over 1 MiB", "invalid_request_error", ""});
    }
  }
  // A body that trickles in holds a connection: it has body_timeout_ms to arrive.
  const uint32_t ms = options.body_timeout_ms;
  auto late = timer.afterDelay(ms * kj::MILLISECONDS).then([ms]() -> kj::Promise<kj::String> {
    return KJ_EXCEPTION(DISCONNECTED, "the request body did not arrive within the body timeout", ms);
  });
  return body.readAllText(kMaxRequestBodyBytes + 1)
      .exclusiveJoin(kj::mv(late))
      .then(
          [this, chat, &response, &connection](kj::String text) -> kj::Promise<void> {
            CompletionParams params;
            ApiError error;
            const int64_t context = options.context;
            if (!ParseCompletion(std::string(text.cStr(), text.size()), chat, context - 1, &params, &error)) {
              return SendError(response, error);
            }
            // A chat's messages never become special tokens; a completion's prompt is the caller's own.
            std::vector<int32_t> ids;
            if (chat) {
              auto prompt = options.chat->Render(params.messages);
              if (!prompt.ok()) return SendError(response, {400, prompt.status().message(), "invalid_request_error", "messages"});
              size_t bytes = 0;
              for (const auto& part : prompt.value().parts) bytes += part.text.size();
              if (tokenizer.FewestTokens(bytes) >= context) return SendError(response, TooLong(bytes, true));
              ids = tokenizer.EncodeParts(prompt.value().parts, prompt.value().add_bos);
            } else {
              if (tokenizer.FewestTokens(params.prompt.size()) >= context) {
                return SendError(response, TooLong(params.prompt.size(), false));
              }
              ids = tokenizer.Encode(params.prompt, /*bos=*/true);
            }
            if (ids.empty()) return SendError(response, {400, "the prompt is empty", "invalid_request_error", "prompt"});
            if (static_cast<int64_t>(ids.size()) >= context) {
              return SendError(response, {400,
                                          "the prompt is " + std::to_string(ids.size()) +
                                              " tokens; the model's context is " + std::to_string(context),
                                          "invalid_request_error", chat ? "messages" : "prompt"});
            }
            params.max_tokens = std::min<int64_t>(params.max_tokens, context - static_cast<int64_t>(ids.size()));
            if (options.kv_tokens > 0) {
              // No request may need more KV than the whole cluster holds.
              if (static_cast<int64_t>(ids.size()) >= options.kv_tokens) {
                return SendError(response, {400,
                                            "the prompt is " + std::to_string(ids.size()) +
                                                " tokens; the cluster's KV cache holds " +
                                                std::to_string(options.kv_tokens),
                                            "invalid_request_error", chat ? "messages" : "prompt"});
              }
              params.max_tokens =
                  std::min<int64_t>(params.max_tokens, options.kv_tokens - static_cast<int64_t>(ids.size()));
            }
            auto job = kj::heap<Job>(*this, kj::mv(params), kj::mv(ids));
            job->connection = &connection;
            return Generate(kj::mv(job), response);
          },
          [this, &response](kj::Exception&&) -> kj::Promise<void> {
            return SendError(response, {413, "the request body is over 1 MiB", "invalid_request_error", ""});
          });
}

kj::Promise<void> ApiServer::Impl::Generate(kj::Own<Job> job, Response& response) {
  kj::Promise<void> admitted = nullptr;
  KJ_IF_MAYBE(slot, Admit(job->kv_need())) {
    admitted = kj::mv(*slot);
  } else {
    ++metrics.requests_rejected;
    return SendError(response, {429, "the server is busy: " + std::to_string(options.max_running) + " requests run and " +
                                         std::to_string(options.max_queue) + " wait; retry shortly",
                                "rate_limit_exceeded", ""});
  }
  Job& j = *job;
  return admitted.then([this, &j]() { return OpenJobSession(j); })
      .then([this, &j, &response]() { return RunDriver(j, response); })
      .then([this, &j, &response]() { return Finish(j, response); },
            [this, &j, &response](kj::Exception&& e) { return Fail(j, response, e); })
      .attach(kj::mv(job));
}

kj::Promise<void> ApiServer::Impl::OpenJobSession(Job& j) {
  j.admitted = true;
  Gauges();
  SamplingParams sampling;
  sampling.temperature = static_cast<float>(j.params.temperature);
  sampling.top_p = static_cast<float>(j.params.top_p);
  sampling.top_k = static_cast<uint32_t>(j.params.top_k);
  sampling.seed = j.params.seeded ? j.params.seed : rng();
  const uint32_t capacity = static_cast<uint32_t>(j.prompt.size() + static_cast<size_t>(j.params.max_tokens));
  return pipeline.OpenSession(j.session, capacity, sampling);
}

kj::Promise<void> ApiServer::Impl::RunDriver(Job& j, Response& response) {
  j.opened = true;
  GenerationRequest request;
  request.prompt = j.prompt;
  request.max_tokens = j.params.max_tokens;
  request.stop = j.params.stop;
  request.prefill_chunk = options.prefill_chunk;
  request.want_logits = j.params.logprobs >= 0;
  j.driver = std::make_unique<GenerationDriver>(pipeline, tokenizer, j.session, GenerationRequest(request), &j);
  if (!j.params.stream) {
    // Nothing is written until the end, so watch the connection: a
    // client that hangs up cancels the generation between steps.
    kj::Promise<void> run = j.driver->Run();
    if (j.connection == nullptr) return run;
    return run.exclusiveJoin(j.connection->WhenClientGone().then([&j]() -> void {
      j.gone = true;
      kj::throwFatalException(KJ_EXCEPTION(DISCONNECTED, "the client went away"));
    }));
  }
  kj::HttpHeaders out(*table);
  out.set(kj::HttpHeaderId::CONTENT_TYPE, "text/event-stream");
  out.set(cache_control, "no-cache");
  j.stream = response.send(200, "OK", out);
  auto gone = kj::newPromiseAndFulfiller<void>();
  j.client_gone = kj::mv(gone.fulfiller);
  return j.driver->Run().exclusiveJoin(kj::mv(gone.promise));
}

json ApiServer::Impl::CompletionBody(const Job& j, const GenerationResult& r, const json& usage) const {
  json choice = {{"index", 0}, {"finish_reason", r.finish_reason}};
  json lp = nullptr;
  if (j.params.logprobs >= 0) {
    if (j.params.chat) {
      lp = {{"content", j.logprobs}};
    } else {
      lp = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()}};
      for (const auto& x : j.logprobs) {
        lp["tokens"].push_back(x["token"]);
        lp["token_logprobs"].push_back(x["logprob"]);
        lp["top_logprobs"].push_back(x["top"]);
      }
    }
  }
  choice["logprobs"] = lp;
  if (j.params.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", r.text}};
  } else {
    choice["text"] = r.text;
  }
  return {{"id", j.id}, {"object", j.params.chat ? "chat.completion" : "text_completion"}, {"created", j.created},
          {"model", options.model_name}, {"choices", json::array({choice})}, {"usage", usage}};
}

kj::Promise<void> ApiServer::Impl::Finish(Job& j, Response& response) {
  const GenerationResult& r = j.driver->result();
  j.finished = true;
  ++metrics.requests_ok;
  metrics.prompt_tokens += j.prompt.size();
  metrics.e2e_latency.Observe(Now() - j.t0);
  metrics.stage_compute_s.resize(std::max(metrics.stage_compute_s.size(), r.stage_micros.size()));
  for (size_t s = 0; s < r.stage_micros.size(); ++s) metrics.stage_compute_s[s] += r.stage_micros[s] / 1e6;
  spdlog::info("request {} session={:016x}: {} prompt + {} generated tokens, first after {:.3f} s, {}", j.id,
               j.session, j.prompt.size(), r.tokens.size(), r.first_token_s, r.finish_reason);
  const json usage = {{"prompt_tokens", j.prompt.size()}, {"completion_tokens", r.tokens.size()},
                      {"total_tokens", j.prompt.size() + r.tokens.size()}};
  if (!j.params.stream) return SendJson(response, 200, CompletionBody(j, r, usage).dump());
  j.Write("data: " + j.Chunk("", r.finish_reason).dump() + "\n\n");
  if (j.params.include_usage) {
    json u = j.Chunk("", nullptr);
    u["choices"] = json::array();
    u["usage"] = usage;
    j.Write("data: " + u.dump() + "\n\n");
  }
  j.Write("data: [DONE]\n\n");
  return kj::mv(j.writes);
}

kj::Promise<void> ApiServer::Impl::Fail(Job& j, Response& response, const kj::Exception& e) {
  if (j.gone) return kj::READY_NOW;  // cancelled: the Job's end closes its session
  j.finished = true;
  ++metrics.requests_failed;
  const std::string why = ExceptionText(e).substr(0, 500);
  spdlog::warn("request {} session={:016x} failed: {}", j.id, j.session, why);
  ApiError error{503, "the pipeline failed: " + why, "server_error", ""};
  if (!j.stream) return SendError(response, error);
  j.Write("data: " + json::parse(error.Body()).dump() + "\n\n");
  return kj::mv(j.writes);
}

ApiServer::ApiServer(kj::Timer& timer, Pipeline& pipeline, const Tokenizer& tokenizer, ApiServerOptions options)
    : impl_(std::make_unique<Impl>(timer, pipeline, tokenizer, std::move(options))) {}
ApiServer::~ApiServer() = default;
kj::Promise<void> ApiServer::Listen(kj::ConnectionReceiver& receiver) { return impl_->gate.Run(receiver); }
const ServeMetrics& ApiServer::metrics() const { return impl_->metrics; }

}  // namespace strata
