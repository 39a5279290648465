#include "tests/raw_peer.h"

#include "protocol/rpc_error.h"


namespace strata::testing {

RawPeer::RawPeer(kj::AsyncIoContext& io, const std::string& address) {
  stream_ = io.provider->getNetwork().parseAddress(address).wait(io.waitScope)->connect().wait(io.waitScope);
  client_ = kj::heap<capnp::TwoPartyClient>(*stream_);
  node_ = client_->bootstrap().castAs<wire::Node>();
}

kj::Own<PeerLink> Connect(kj::AsyncIoContext& io, const std::string& address, const std::string& secret,
                          wire::PeerRole role) {
  ClusterSecret key(Bytes(secret.begin(), secret.end()));
  LinkSecurity security{&key, nullptr};
  return ConnectPeer(io.provider->getNetwork(), io.provider->getTimer(), address, security, role, "test", 10000)
      .wait(io.waitScope);
}

std::string ErrorOf(kj::Function<void()> f) {
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { f(); })) { return e->getDescription().cStr(); }
  return "";
}

void Load(kj::AsyncIoContext& io, PeerLink& link, const std::string& model, uint32_t first, uint32_t end) {
  auto load = link.control.loadShardRequest();
  load.initSpec().setModelDir(model);
  load.getSpec().setFirstLayer(first);
  load.getSpec().setEndLayer(end);
  load.send().wait(io.waitScope);
}

void SetNext(kj::AsyncIoContext& io, PeerLink& link, const std::string& next, uint32_t index, uint32_t count) {
  auto req = link.control.setNextRequest();
  req.setAddress(next);
  req.setStageIndex(index);
  req.setStageCount(count);
  req.send().wait(io.waitScope);
}

Opened Open(kj::AsyncIoContext& io, PeerLink& link, uint32_t capacity, const Bytes& downstream) {
  auto req = link.control.openSessionRequest();
  req.setCapacity(capacity);
  req.initSampling().setTopP(1.0f);
  req.setDownstreamTicket(kj::arrayPtr(downstream.data(), downstream.size()));
  auto reply = req.send().wait(io.waitScope);
  return {reply.getSession(), Bytes(reply.getTicket().begin(), reply.getTicket().end())};
}

kj::Promise<uint32_t> AwaitingSink::Next(uint32_t start) {
  auto arrived = arrived_.find(start);
  if (arrived != arrived_.end() && !arrived->second.empty()) {
    Report r = kj::mv(arrived->second.front());
    arrived->second.pop_front();
    if (!r.failure.empty()) return RpcError(r.failure);
    return r.token;
  }
  auto paf = kj::newPromiseAndFulfiller<uint32_t>();
  waiting_[start].push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

void AwaitingSink::Deliver(uint32_t start, Report report) {
  auto waiting = waiting_.find(start);
  if (waiting == waiting_.end() || waiting->second.empty()) {
    arrived_[start].push_back(kj::mv(report));
    return;
  }
  auto fulfiller = kj::mv(waiting->second.front());
  waiting->second.pop_front();
  if (report.failure.empty()) {
    fulfiller->fulfill(kj::cp(report.token));
  } else {
    fulfiller->reject(RpcError(report.failure));
  }
}

kj::Promise<void> AwaitingSink::done(DoneContext context) {
  Deliver(context.getParams().getStartPos(), Report{context.getParams().getResult().getToken(), ""});
  return kj::READY_NOW;
}

kj::Promise<void> AwaitingSink::failed(FailedContext context) {
  Deliver(context.getParams().getStartPos(), Report{0, context.getParams().getMessage().cStr()});
  return kj::READY_NOW;
}

kj::Promise<SinkOnStages> SetSinkAsync(const std::vector<wire::Session::Client*>& stages) {
  auto owned = kj::heap<AwaitingSink>();
  SinkOnStages out;
  out.sink = owned.get();
  out.client = kj::mv(owned);
  kj::Vector<kj::Promise<void>> set;
  for (auto* s : stages) {
    auto req = s->setSinkRequest();
    req.setSink(out.client);
    set.add(req.send().ignoreResult());
  }
  return kj::joinPromises(set.releaseAsArray()).then([out = kj::mv(out)]() mutable { return kj::mv(out); });
}

SinkOnStages SetSink(kj::AsyncIoContext& io, const std::vector<wire::Session::Client*>& stages) {
  return SetSinkAsync(stages).wait(io.waitScope);
}

kj::Promise<uint32_t> SubmitAsync(kj::AsyncIoContext& io, wire::Session::Client& first,
                                  kj::Function<void(wire::Step::Builder)> fill,
                                  std::vector<wire::Session::Client*> later) {
  later.insert(later.begin(), &first);
  auto run = SetSinkAsync(later).then([first = first, fill = kj::mv(fill)](SinkOnStages&& sink) mutable {
    auto req = first.submitRequest();
    fill(req.initStep());
    // Waits from before the step is sent, so no report is missed.
    auto result = sink.sink->Next(req.getStep().getStartPos()).attach(kj::mv(sink.client));
    return req.send().then([result = kj::mv(result)](auto&&) mutable { return kj::mv(result); });
  });
  return io.provider->getTimer().timeoutAfter(60 * kj::SECONDS, kj::mv(run));
}

uint32_t SubmitTokens(kj::AsyncIoContext& io, wire::Session::Client& first, uint32_t start,
                      const std::vector<uint32_t>& tokens, std::vector<wire::Session::Client*> later) {
  auto fill = [start, tokens](wire::Step::Builder step) {
    step.setStartPos(start);
    step.setSample(true);
    auto ids = step.initInput().initTokens(static_cast<unsigned>(tokens.size()));
    for (size_t i = 0; i < tokens.size(); ++i) ids.set(static_cast<unsigned>(i), tokens[i]);
  };
  return SubmitAsync(io, first, kj::mv(fill), kj::mv(later)).wait(io.waitScope);
}

kj::Promise<void> RecordingSink::done(DoneContext context) {
  results.push_back({context.getParams().getStartPos(), context.getParams().getResult().getToken()});
  return kj::READY_NOW;
}

kj::Promise<void> RecordingSink::failed(FailedContext context) {
  failures.push_back(context.getParams().getMessage().cStr());
  return kj::READY_NOW;
}

}  // namespace strata::testing
