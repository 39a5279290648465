#include "tests/lying_stage.h"

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <cmath>
#include <future>
#include <vector>

#include "protocol/host_tensor.h"
#include "protocol/peer_auth.h"
#include "protocol/tensor_codec.h"
#include "protocol/version.h"
#include "strata.capnp.h"

namespace strata::testing {
namespace {

void FillInfo(wire::NodeInfo::Builder info, bool loaded) {
  info.setName("liar");
  info.setProtocolVersion(kProtocolVersion);
  info.setFreeMemoryBytes(1ull << 34);
  info.setThreads(1);
  info.setDevice("cpu");
  info.setShardLoaded(loaded);
}

// What the lying last stage sends for a step at `start`.
void FillLie(Lie lie, uint32_t vocab, wire::StepResult::Builder out) {
  out.setToken(lie == Lie::kTokenOutsideVocabulary ? 1u << 20 : 1u);
  if (lie == Lie::kNanLogits || lie == Lie::kShortLogits) {
    HostTensor logits;
    logits.dtype = TensorDType::kF32;
    const int64_t n = lie == Lie::kShortLogits ? 3 : vocab;
    logits.shape = {n};
    std::vector<float> values(static_cast<size_t>(n), 0.5f);
    if (lie == Lie::kNanLogits) values[1] = std::nanf("");
    const auto* bytes = reinterpret_cast<const uint8_t*>(values.data());
    logits.data.assign(bytes, bytes + values.size() * sizeof(float));
    EncodeTensor(logits, out.initLogits());
  }
  out.initStageMicros(lie == Lie::kManyStageTimes ? 100000 : 1);
}

class LyingSession final : public wire::Session::Server {
 public:
  LyingSession(Lie lie, uint32_t vocab) : lie_(lie), vocab_(vocab) {}

 protected:
  kj::Promise<void> setSink(SetSinkContext context) override {
    sink_ = context.getParams().getSink();
    return kj::READY_NOW;
  }
  kj::Promise<void> submit(SubmitContext context) override {
    KJ_IF_MAYBE(sink, sink_) {
      auto done = sink->doneRequest();
      done.setStartPos(context.getParams().getStep().getStartPos());
      FillLie(lie_, vocab_, done.initResult());
      return done.send().ignoreResult();
    }
    return kj::READY_NOW;
  }
  kj::Promise<void> close(CloseContext) override { return kj::READY_NOW; }

 private:
  const Lie lie_;
  const uint32_t vocab_;
  kj::Maybe<wire::StepSink::Client> sink_;
};

class LyingControl final : public wire::Control::Server {
 public:
  LyingControl(Lie lie, uint32_t vocab) : lie_(lie), vocab_(vocab) {}

 protected:
  kj::Promise<void> info(InfoContext context) override {
    FillInfo(context.getResults().initInfo(), loaded_);
    return kj::READY_NOW;
  }
  kj::Promise<void> loadShard(LoadShardContext context) override {
    loaded_ = true;
    FillInfo(context.getResults().initInfo(), loaded_);
    return kj::READY_NOW;
  }
  kj::Promise<void> setNext(SetNextContext) override { return kj::READY_NOW; }
  kj::Promise<void> canOpen(CanOpenContext context) override {
    context.getResults().setReadable(true);
    return kj::READY_NOW;
  }
  kj::Promise<void> openSession(OpenSessionContext context) override {
    context.getResults().setSession(kj::heap<LyingSession>(lie_, vocab_));
    context.getResults().setTicket(kj::heapArray<capnp::byte>(16));
    return kj::READY_NOW;
  }

 private:
  const Lie lie_;
  const uint32_t vocab_;
  bool loaded_ = false;
};

// The bootstrap: a challenge answered without a proof (no secret), then hello.
class LyingNode final : public wire::Node::Server {
 public:
  LyingNode(Lie lie, uint32_t vocab) : lie_(lie), vocab_(vocab) {}

 protected:
  kj::Promise<void> challenge(ChallengeContext context) override {
    context.getResults().setServerNonce(kj::heapArray<capnp::byte>(kNonceBytes));
    context.getResults().setNodeId(kj::heapArray<capnp::byte>(16));
    return kj::READY_NOW;
  }
  kj::Promise<void> hello(HelloContext context) override {
    FillInfo(context.getResults().initInfo(), false);
    context.getResults().setControl(kj::heap<LyingControl>(lie_, vocab_));
    return kj::READY_NOW;
  }

 private:
  const Lie lie_;
  const uint32_t vocab_;
};

}  // namespace

LyingStage::LyingStage(Lie lie, uint32_t vocab) {
  std::promise<int> port;
  auto ready = port.get_future();
  thread_ = std::make_unique<kj::Thread>([this, &port, lie, vocab]() {
    auto io = kj::setupAsyncIo();
    auto listener = io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
    capnp::TwoPartyServer server(kj::heap<LyingNode>(lie, vocab));
    auto serving = server.listen(*listener).eagerlyEvaluate(nullptr);
    port.set_value(static_cast<int>(listener->getPort()));
    while (!stop_.load()) io.provider->getTimer().afterDelay(20 * kj::MILLISECONDS).wait(io.waitScope);
  });
  address_ = "127.0.0.1:" + std::to_string(ready.get());
}

LyingStage::~LyingStage() {
  stop_.store(true);
  thread_.reset();  // joins
}

}  // namespace strata::testing
