#pragma once
// The API server's parts, shared by its files (api_server.cc: the routes and
// one completion's path; api_status.cc: /metrics and /v1/strata/status):
// a request in flight (Job), a connection's view of the API, and the
// server's state (ApiServer::Impl). Private to coordinator/api.
//
// Not thread-safe: everything here lives on the server's event loop.
#include <kj/compat/http.h>
#include <sys/socket.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "coordinator/api/admission.h"
#include "coordinator/api/api_server.h"
#include "coordinator/api/serve_metrics.h"
#include "coordinator/api/watched_connection.h"
#include "coordinator/pipeline/generation_driver.h"
#include "protocol/cluster_tls.h"
#include "protocol/connection_gate.h"
#include "protocol/write_deadline.h"

namespace strata {

using json = nlohmann::json;

// Seconds on the steady clock: request ages and latencies.
inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One request in flight: its session, its driver, and (streaming) its SSE
// stream. Destroying it cancels the generation and closes the session on
// every stage.
struct Job final : public TokenSink {
  ApiServer::Impl& server;
  CompletionParams params;
  std::vector<int32_t> prompt;
  uint64_t session = 0;
  bool opened = false, admitted = false, finished = false;
  bool gone = false;  // the streaming client went away
  std::string id;
  int64_t created = 0;
  double t0 = 0;
  double last_token_s = 0;  // when the last token came (0: none yet)
  std::unique_ptr<GenerationDriver> driver;
  json logprobs = json::array();
  // Streaming:
  kj::Own<kj::AsyncOutputStream> stream;
  kj::Promise<void> writes = kj::READY_NOW;
  kj::Own<kj::PromiseFulfiller<void>> client_gone;  // rejected when a write fails
  WatchedConnection* connection = nullptr;           // the client's (borrowed from the HttpServer)
  bool first_chunk = true;

  Job(ApiServer::Impl& s, CompletionParams p, std::vector<int32_t> ids);
  int64_t kv_need() const { return static_cast<int64_t>(prompt.size()) + params.max_tokens; }
  ~Job() noexcept override;
  void OnToken(int32_t token, const std::string& text, const std::vector<float>& logits) override;
  void Write(std::string text);
  json Chunk(const std::string& text, const json& finish) const;
};


// One client connection's view of the API: requests know their connection,
// so a non-streaming request whose client hangs up is cancelled too.
class ConnectionService final : public kj::HttpService {
 public:
  // `connection` is a WatchedConnection: ApiServer::Listen makes every one.
  ConnectionService(ApiServer::Impl& api, kj::AsyncIoStream& connection)
      : api_(api), connection_(static_cast<WatchedConnection&>(connection)) {}
  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                            kj::AsyncInputStream& body, Response& response) override;

 private:
  ApiServer::Impl& api_;
  WatchedConnection& connection_;  // owned by the HttpServer, alive as long as this service
};

struct ApiServer::Impl final {
  Impl(kj::Timer& timer, Pipeline& pipeline, const Tokenizer& tokenizer, ApiServerOptions options)
      : timer(timer), pipeline(pipeline), tokenizer(tokenizer), options(std::move(options)),
        admission(this->options.max_running, this->options.max_queue, this->options.kv_tokens), table(MakeTable()),
        server(timer, *table,
               [this](kj::AsyncIoStream& connection) -> kj::Own<kj::HttpService> {
                 return kj::heap<ConnectionService>(*this, connection);
               }),
        gate(timer, GateLimits{this->options.max_connections, this->options.max_connections_per_peer}, "API",
             [this](kj::Own<kj::AsyncIoStream> stream, const std::string&) {
               const int bytes = this->options.send_buffer_bytes;
               (void)kj::runCatchingExceptions([&]() {  // a socket (not a test's pipe)
                 stream->setsockopt(SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
               });
               // Each connection wrapped, so that a request can see its client leave or stop reading.
               auto timed = kj::heap<WriteDeadlineStream>(kj::mv(stream), this->timer, this->options.write_timeout_ms);
               if (this->options.tls == nullptr) return server.listenHttp(kj::heap<WatchedConnection>(kj::mv(timed)));
               // https: the handshake within the TLS context's accept timeout (10 s).
               return this->options.tls->context().wrapServer(kj::mv(timed)).then(
                   [this](kj::Own<kj::AsyncIoStream> secured) {
                     return server.listenHttp(kj::heap<WatchedConnection>(kj::mv(secured)));
                   });
             }) {
    metrics.kv_capacity = this->options.kv_tokens;
  }
  using Response = kj::HttpService::Response;

  kj::Own<kj::HttpHeaderTable> MakeTable() {
    kj::HttpHeaderTable::Builder builder;
    authorization = builder.add("Authorization");
    retry_after = builder.add("Retry-After");
    cache_control = builder.add("Cache-Control");
    origin = builder.add("Origin");
    return builder.build();
  }

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                            kj::AsyncInputStream& body, Response& response, WatchedConnection& connection);

  kj::Promise<void> SendJson(Response& response, int status, const std::string& text) {
    kj::HttpHeaders out(*table);
    out.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
    auto stream = response.send(static_cast<uint>(status), StatusText(status), out, text.size());
    auto bytes = kj::heapString(text.data(), text.size());  // outlives the write; `text` may not
    auto write = stream->write(bytes.begin(), bytes.size());
    return write.attach(kj::mv(stream), kj::mv(bytes));
  }
  kj::Promise<void> SendError(Response& response, const ApiError& e) {
    if (e.status == 429) {
      kj::HttpHeaders out(*table);
      out.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
      out.set(retry_after, "1");
      const std::string text = e.Body();
      auto stream = response.send(429, "Too Many Requests", out, text.size());
      auto bytes = kj::heapString(text.data(), text.size());
      auto write = stream->write(bytes.begin(), bytes.size());
      return write.attach(kj::mv(stream), kj::mv(bytes));
    }
    return SendJson(response, e.status, e.Body());
  }
  static kj::StringPtr StatusText(int status) {
    switch (status) {
      case 200: return "OK";
      case 400: return "Bad Request";
      case 401: return "Unauthorized";
      case 403: return "Forbidden";
      case 404: return "Not Found";
      case 405: return "Method Not Allowed";
      case 413: return "Payload Too Large";
      case 415: return "Unsupported Media Type";
      case 429: return "Too Many Requests";
      case 503: return "Service Unavailable";
      default: return "Internal Server Error";
    }
  }

  ApiError TooLong(size_t bytes, bool chat) const;
  kj::Promise<void> Completion(bool chat, const kj::HttpHeaders& headers, kj::AsyncInputStream& body, Response& response,
                               WatchedConnection& connection);
  kj::Promise<void> Generate(kj::Own<Job> job, Response& response);
  // Generate's steps: a session on every stage, the driver run (streamed,
  // or watched for a client that hangs up), the answer, or the failure.
  kj::Promise<void> OpenJobSession(Job& j);
  kj::Promise<void> RunDriver(Job& j, Response& response);
  kj::Promise<void> Finish(Job& j, Response& response);
  kj::Promise<void> Fail(Job& j, Response& response, const kj::Exception& e);
  json CompletionBody(const Job& j, const GenerationResult& r, const json& usage) const;
  kj::Promise<void> Metrics(Response& response);
  kj::Promise<void> Status(Response& response);
  struct NodeView {
    size_t stage = 0;
    bool up = false;
    NodeStatus status;
  };
  kj::Promise<std::vector<NodeView>> GatherNodes();
  kj::Promise<void> SendText(Response& response, int status, const char* type, const std::string& text) {
    kj::HttpHeaders out(*table);
    out.set(kj::HttpHeaderId::CONTENT_TYPE, type);
    auto stream = response.send(static_cast<uint>(status), StatusText(status), out, text.size());
    auto bytes = kj::heapString(text.data(), text.size());  // outlives the write; `text` may not
    auto write = stream->write(bytes.begin(), bytes.size());
    return write.attach(kj::mv(stream), kj::mv(bytes));
  }
  // A slot to generate in: now, after a wait in the queue, or (queue full) an error.
  // Admission, with the gauges kept in step. `need`: KV positions.
  kj::Maybe<kj::Promise<void>> Admit(int64_t need) {
    auto admitted = admission.Admit(need);
    Gauges();
    return admitted;
  }
  void Release(int64_t need) {
    admission.Release(need);
    Gauges();
  }
  void Gauges() {
    metrics.running = admission.running();
    metrics.waiting = admission.waiting();
    metrics.kv_reserved = admission.kv_reserved();
  }

  kj::Timer& timer;
  Pipeline& pipeline;
  const Tokenizer& tokenizer;
  ApiServerOptions options;
  ServeMetrics metrics;
  Admission admission;
  std::map<std::string, const Job*> active;                 // requests in flight, by id (each Job registers itself)
  std::mt19937_64 rng{std::random_device{}()};
  kj::HttpHeaderId authorization = kj::HttpHeaderId::HOST, retry_after = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId cache_control = kj::HttpHeaderId::HOST, origin = kj::HttpHeaderId::HOST;
  kj::Own<kj::HttpHeaderTable> table;
  kj::HttpServer server;
  ConnectionGate gate;  // every client connection (destroyed before the server)
};

}  // namespace strata
