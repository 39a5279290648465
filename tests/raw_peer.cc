#include "tests/raw_peer.h"


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

uint32_t ForwardTokens(kj::AsyncIoContext& io, wire::Session::Client& session, uint32_t start,
                       const std::vector<uint32_t>& tokens) {
  auto req = session.forwardRequest();
  req.initStep().setStartPos(start);
  req.getStep().setSample(true);
  auto ids = req.getStep().initInput().initTokens(static_cast<unsigned>(tokens.size()));
  for (size_t i = 0; i < tokens.size(); ++i) ids.set(static_cast<unsigned>(i), tokens[i]);
  return req.send().wait(io.waitScope).getResult().getToken();
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
