// libFuzzer: the API's HTTP request path before any generation: raw bytes
// from a client into a real kj::HttpServer (over an in-memory pipe), whose
// service does what the API's does first: the request guard on Host, Origin
// and Content-Type (coordinator/api/request_guard), then a POST body read
// with the API's bound and parsed as /v1/completions or /v1/chat/completions
// (coordinator/api/openai_api). Any bytes: an answer or a closed connection,
// never a crash, a hang or an unbounded read.
#include <kj/async-io.h>
#include <kj/compat/http.h>

#include <cstdint>
#include <string>

#include "coordinator/api/openai_api.h"
#include "coordinator/api/request_guard.h"

namespace {

class GuardedService final : public kj::HttpService {
 public:
  explicit GuardedService(const kj::HttpHeaderTable& table, kj::HttpHeaderId origin) : table_(table), origin_(origin) {}

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                            kj::AsyncInputStream& body, Response& response) override {
    strata::RequestFacts facts;
    facts.post = method == kj::HttpMethod::POST;
    KJ_IF_MAYBE(h, headers.get(kj::HttpHeaderId::HOST)) { facts.host = std::string(h->cStr()); }
    KJ_IF_MAYBE(o, headers.get(origin_)) { facts.origin = std::string(o->cStr()); }
    KJ_IF_MAYBE(t, headers.get(kj::HttpHeaderId::CONTENT_TYPE)) { facts.content_type = std::string(t->cStr()); }
    if (auto refused = strata::GuardRequest(true, facts)) return Send(response, refused->status, refused->Body());
    if (!facts.post) return Send(response, 200, "{}");
    const bool chat = std::string(url.cStr()).find("/chat/") != std::string::npos;
    return body.readAllText(strata::kMaxRequestBodyBytes + 1).then([this, chat, &response](kj::String text) {
      strata::CompletionParams params;
      strata::ApiError error;
      if (!strata::ParseCompletion(std::string(text.cStr(), text.size()), chat, 255, &params, &error)) {
        return Send(response, error.status, error.Body());
      }
      return Send(response, 200, "{}");
    });
  }

 private:
  kj::Promise<void> Send(Response& response, int status, std::string text) {
    kj::HttpHeaders out(table_);
    auto stream = response.send(static_cast<uint>(status), "x", out, text.size());
    auto bytes = kj::heapString(text.data(), text.size());
    auto write = stream->write(bytes.begin(), bytes.size());
    return write.attach(kj::mv(stream), kj::mv(bytes));
  }
  const kj::HttpHeaderTable& table_;
  kj::HttpHeaderId origin_;
};

struct World {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::HttpHeaderTable::Builder builder;
  kj::HttpHeaderId origin = builder.add("Origin");
  kj::Own<kj::HttpHeaderTable> table = builder.build();
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // one event loop for the whole run
  GuardedService service(*world->table, world->origin);
  kj::HttpServer server(world->io.provider->getTimer(), *world->table, service);
  auto pipe = kj::newTwoWayPipe();
  auto serving = server.listenHttp(kj::mv(pipe.ends[0])).eagerlyEvaluate([](kj::Exception&&) {});
  auto& client = *pipe.ends[1];
  auto sent = client.write(data, size).then([&client]() { client.shutdownWrite(); });
  auto answer = sent.then([&client]() { return client.readAllText(1 << 20); }).then([](kj::String) {});
  // Bounded: a request kj waits on (an incomplete body) ends with the timer.
  world->io.provider->getTimer()
      .timeoutAfter(2 * kj::SECONDS, kj::mv(answer))
      .then([]() {}, [](kj::Exception&&) {})
      .wait(world->io.waitScope);
  return 0;
}
