#include "node/server/metrics_server.h"

#include <kj/compat/http.h>

namespace strata {

struct NodeMetricsServer::Impl final : public kj::HttpService {
  Impl(kj::Timer& timer, std::function<std::string()> render)
      : render(std::move(render)), table(kj::HttpHeaderTable::Builder().build()), server(timer, *table, *this) {}

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders&, kj::AsyncInputStream&,
                            Response& response) override {
    if (method != kj::HttpMethod::GET) return response.sendError(405, "Method Not Allowed", *table);
    if (url != "/metrics") return response.sendError(404, "Not Found", *table);
    auto text = kj::heapString(render());
    kj::HttpHeaders out(*table);
    out.set(kj::HttpHeaderId::CONTENT_TYPE, "text/plain; version=0.0.4");
    auto stream = response.send(200, "OK", out, text.size());
    auto write = stream->write(text.begin(), text.size());
    return write.attach(kj::mv(stream), kj::mv(text));
  }

  std::function<std::string()> render;
  kj::Own<kj::HttpHeaderTable> table;
  kj::HttpServer server;
};

NodeMetricsServer::NodeMetricsServer(kj::Timer& timer, std::function<std::string()> render)
    : impl_(std::make_unique<Impl>(timer, std::move(render))) {}
NodeMetricsServer::~NodeMetricsServer() = default;
kj::Promise<void> NodeMetricsServer::Listen(kj::ConnectionReceiver& receiver) {
  return impl_->server.listenHttp(receiver);
}

}  // namespace strata
