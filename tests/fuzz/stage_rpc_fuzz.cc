// libFuzzer: whole Cap'n Proto RPC messages into a real node, through an
// in-process two-way pipe and the node's real front door (RpcListener: the
// pre-hello budget, the hello deadline, one RPC system per connection). The
// node has no secret, so hello grants Control and the fuzzer reaches every
// handler: loadShard, setNext, openSession, Session.submit, Upstream.submit.
// The input is a stream of framed messages (see make_rpc_seeds.cc).
#include <kj/async-io.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <cstdint>

#include "node/server/node_server.h"
#include "node/server/rpc_listener.h"

namespace {

struct FuzzNode {
  FuzzNode() {
    spdlog::set_level(spdlog::level::off);
    options.name = "fuzz";
    options.memory_budget = 256ull << 20;
    options.connect_timeout_ms = 200;
    options.rpc_timeout_ms = 200;
    limits.hello_timeout_ms = 300;
    server = kj::heap<strata::NodeServer>(options, io.provider->getTimer(), io.provider->getNetwork());
    receiver = io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
    listener = kj::heap<strata::RpcListener>(*receiver, io.provider->getTimer(), nullptr, limits, *server);
  }
  kj::AsyncIoContext io = kj::setupAsyncIo();
  strata::NodeOptions options;
  strata::ListenerLimits limits;
  kj::Own<strata::NodeServer> server;
  kj::Own<kj::ConnectionReceiver> receiver;
  kj::Own<strata::RpcListener> listener;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzNode* node = new FuzzNode();  // one node for the whole run, as a real one lives
  auto& io = node->io;
  auto pipe = io.provider->newTwoWayPipe();
  auto served = node->listener->Admit(kj::mv(pipe.ends[0]));
  kj::Own<kj::AsyncIoStream> client = kj::mv(pipe.ends[1]);
  // Send everything, give the node a moment to answer what it read (the
  // answers are drained so it never blocks on a full pipe), then hang up.
  auto drained = client->readAllBytes(16 << 20).ignoreResult();
  auto sent = client->write(data, size);
  kj::runCatchingExceptions([&]() {
    sent.exclusiveJoin(io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS)).wait(io.waitScope);
    io.provider->getTimer().afterDelay(2 * kj::MILLISECONDS).exclusiveJoin(kj::mv(drained)).wait(io.waitScope);
  });
  client = nullptr;
  kj::runCatchingExceptions([&]() {
    served.exclusiveJoin(io.provider->getTimer().afterDelay(300 * kj::MILLISECONDS)).wait(io.waitScope);
  });
  return 0;
}
