#include "protocol/peer_link.h"
#include "base/net_address.h"

#include <kj/debug.h>

#include "base/escape.h"
#include "protocol/cluster_tls.h"
#include "protocol/coordinator_key.h"
#include "protocol/version.h"

namespace strata {
namespace {

Bytes ToBytes(capnp::Data::Reader d) { return Bytes(d.begin(), d.end()); }

kj::Exception Refused(const std::string& address, const std::string& why) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                       kj::str("node at ", EscapeText(address).c_str(), " ", why.c_str()));
}

// One line: OpenSSL's errors come several to a message.
std::string OneLine(const kj::Exception& e) {
  std::string text = e.getDescription().cStr();
  for (size_t at; (at = text.find('\n')) != std::string::npos;) text.replace(at, 1, "; ");
  return EscapeText(text, 300);
}

}  // namespace

wire::NodeInfo::Reader PeerLink::info() { return info_message->getRoot<wire::NodeInfo>().asReader(); }

bool IsTcpAddress(const std::string& address) {
  auto parsed = ParseHostPort(address);
  return parsed.ok() && parsed->port >= 1 && parsed->host != "*";
}

kj::Promise<kj::Own<PeerLink>> ConnectPeer(kj::Network& network, kj::Timer& timer, const std::string& address,
                                          const LinkSecurity& security, wire::PeerRole role,
                                          const std::string& self_name, uint32_t timeout_ms) {
  if (!IsTcpAddress(address)) return Refused(address, "is not a TCP HOST:PORT address");
  auto link = kj::refcounted<PeerLink>();
  link->address = address;
  PeerLink* raw = link.get();
  ClusterTls* tls = security.tls;
  const ClusterSecret secret = security.secret != nullptr ? *security.secret : ClusterSecret();
  const Bytes client_nonce = RandomBytes(kNonceBytes);
  auto stream = network.parseAddress(address)
                    .then([](kj::Own<kj::NetworkAddress> addr) { return addr->connect(); })
                    .then([tls, address](kj::Own<kj::AsyncIoStream> s) -> kj::Promise<kj::Own<kj::AsyncIoStream>> {
                      if (tls == nullptr) return kj::mv(s);
                      return tls->context().wrapClient(kj::mv(s), kTlsPeerName).catch_(
                          [address](kj::Exception&& e) -> kj::Own<kj::AsyncIoStream> {
                            throw Refused(address, "failed the TLS handshake (" + OneLine(e) +
                                                       "); is it a member of this cluster, with the same CA?");
                          });
                    });
  auto challenged = stream.then([raw, client_nonce, address, tls](kj::Own<kj::AsyncIoStream> s) {
    raw->stream = kj::mv(s);
    raw->client = kj::heap<capnp::TwoPartyClient>(*raw->stream);
    auto request = raw->client->bootstrap().castAs<wire::Node>().challengeRequest();
    request.setProtocolVersion(kProtocolVersion);
    request.setClientNonce(kj::arrayPtr(client_nonce.data(), client_nonce.size()));
    return request.send().catch_(
        [address, tls](kj::Exception&& e) -> capnp::Response<wire::Node::ChallengeResults> {
          if (e.getType() != kj::Exception::Type::DISCONNECTED) kj::throwFatalException(kj::mv(e));
          throw Refused(address, std::string("closed the connection before answering hello (") +
                                     (tls == nullptr ? "does the cluster use --tls? " : "") +
                                     "is it at its connection limit?)");
        });
  });
  const CoordinatorKey* signer = role == wire::PeerRole::COORDINATOR ? security.coordinator_key : nullptr;
  auto hello = challenged.then([raw, secret, client_nonce, role, self_name, address,
                                signer](capnp::Response<wire::Node::ChallengeResults>&& r) {
    const Bytes server_nonce = ToBytes(r.getServerNonce());
    const Bytes server_proof = ToBytes(r.getServerProof());
    raw->node_id = ToBytes(r.getNodeId());
    if (server_nonce.size() != kNonceBytes) throw Refused(address, "sent a malformed challenge");
    if (secret.empty() && !server_proof.empty()) {
      throw Refused(address, "wants a cluster secret (--cluster-secret-file or STRATA_CLUSTER_SECRET)");
    }
    if (!secret.empty() &&
        !ProofsEqual(server_proof, ServerProof(secret, kProtocolVersion, client_nonce, server_nonce))) {
      throw Refused(address, server_proof.empty() ? "has no cluster secret (start it with --cluster-secret-file)"
                                                  : "does not hold this cluster's secret");
    }
    auto request = raw->client->bootstrap().castAs<wire::Node>().helloRequest();
    request.setProtocolVersion(kProtocolVersion);
    request.setPeer(self_name);
    request.setRole(role);
    if (!secret.empty()) {
      const Bytes proof = ClientProof(secret, kProtocolVersion, static_cast<uint32_t>(role), self_name, server_nonce,
                                      client_nonce);
      request.setClientProof(kj::arrayPtr(proof.data(), proof.size()));
    }
    if (signer != nullptr) {
      const Bytes signature =
          signer->Sign(CoordinatorTranscript(kProtocolVersion, raw->node_id, server_nonce, client_nonce, self_name));
      request.setCoordinatorSignature(kj::arrayPtr(signature.data(), signature.size()));
    }
    return request.send();
  });
  auto done = hello.then([raw, link = kj::mv(link)](capnp::Response<wire::Node::HelloResults>&& r) mutable {
    raw->info_message = kj::heap<capnp::MallocMessageBuilder>();
    raw->info_message->setRoot(r.getInfo());
    raw->control = r.getControl();
    raw->upstream = r.getUpstream();
    return kj::mv(link);
  });
  return timer.timeoutAfter(timeout_ms * kj::MILLISECONDS, kj::mv(done));
}

}  // namespace strata
