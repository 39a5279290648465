#include "protocol/peer_link.h"

#include "protocol/version.h"

namespace strata {

wire::NodeInfo::Reader PeerLink::info() { return info_message->getRoot<wire::NodeInfo>().asReader(); }

kj::Promise<kj::Own<PeerLink>> ConnectPeer(kj::Network& network, kj::Timer& timer, const std::string& address,
                                          const std::string& self_name, uint32_t timeout_ms) {
  auto link = kj::heap<PeerLink>();
  link->address = address;
  PeerLink* raw = link.get();
  auto hello = network.parseAddress(address)
                   .then([](kj::Own<kj::NetworkAddress> addr) { return addr->connect(); })
                   .then([raw, self_name](kj::Own<kj::AsyncIoStream> stream) {
                     raw->stream = kj::mv(stream);
                     raw->client = kj::heap<capnp::TwoPartyClient>(*raw->stream);
                     auto request = raw->client->bootstrap().castAs<wire::Node>().helloRequest();
                     request.setProtocolVersion(kProtocolVersion);
                     request.setPeer(self_name);
                     return request.send();
                   })
                   .then([raw, link = kj::mv(link)](capnp::Response<wire::Node::HelloResults>&& r) mutable {
                     raw->info_message = kj::heap<capnp::MallocMessageBuilder>();
                     raw->info_message->setRoot(r.getInfo());
                     raw->stage = r.getStage();
                     return kj::mv(link);
                   });
  return timer.timeoutAfter(timeout_ms * kj::MILLISECONDS, kj::mv(hello));
}

}  // namespace strata
