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

}  // namespace strata::testing
