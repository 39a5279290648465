#include "node/server/discovery_beacon.h"
#include "base/net_address.h"

#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <thread>

#include "base/escape.h"

namespace strata {

struct BeaconSender::Impl {
  DiscoveryOptions options;
  ClusterSecret secret;
  Beacon beacon;
  asio::io_context io;
  asio::steady_timer timer{io};
  asio::ip::udp::endpoint group;
  std::vector<std::unique_ptr<asio::ip::udp::socket>> sockets;  // one per interface
  std::thread thread;
  uint64_t failures = 0;

  void Send() {
    ++beacon.counter;
    auto bytes = EncodeBeacon(beacon, secret);
    if (!bytes.ok()) return;
    for (auto& socket : sockets) {
      asio::error_code ec;
      socket->send_to(asio::buffer(bytes.value()), group, 0, ec);
      if (ec && failures++ % 60 == 0) spdlog::warn("discovery beacon not sent: {}", ec.message());
    }
  }
  void Tick() {
    Send();
    timer.expires_after(std::chrono::milliseconds(options.interval_ms));
    timer.async_wait([this](const asio::error_code& ec) {
      if (!ec) Tick();
    });
  }
};

Result<std::unique_ptr<BeaconSender>> BeaconSender::Start(const DiscoveryOptions& options, const ClusterSecret& secret,
                                                          const std::string& name, const std::string& rpc_address,
                                                          const Bytes& node_id) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->secret = secret;
  impl->beacon.node_id = node_id;
  impl->beacon.cluster = options.cluster;
  impl->beacon.name = name.substr(0, 64);
  impl->beacon.address = rpc_address;
  impl->beacon.counter = (static_cast<uint64_t>(RandomBytes(4)[0]) << 40) + 1;  // a fresh range per process
  if (!EncodeBeacon(impl->beacon, secret).ok()) return Status::Error("the node's name or address is too long to beacon");
  asio::error_code ec;
  const auto group = asio::ip::make_address_v4(options.group, ec);
  if (ec || !group.is_multicast()) return Status::Error("--discovery-group " + EscapeText(options.group) + " is not an IPv4 multicast group");
  impl->group = asio::ip::udp::endpoint(group, options.port);
  const bool loopback_only = IsLoopbackHost(HostOf(rpc_address));
  std::vector<asio::ip::address_v4> interfaces = {asio::ip::address_v4::loopback()};
  if (!loopback_only) interfaces.push_back(asio::ip::address_v4::any());  // the default route's interface
  for (const auto& iface : interfaces) {
    auto socket = std::make_unique<asio::ip::udp::socket>(impl->io);
    socket->open(asio::ip::udp::v4(), ec);
    if (!ec) socket->set_option(asio::ip::multicast::hops(1), ec);
    if (!ec) socket->set_option(asio::ip::multicast::enable_loopback(true), ec);
    if (!ec && !iface.is_unspecified()) socket->set_option(asio::ip::multicast::outbound_interface(iface), ec);
    if (ec) {
      spdlog::warn("discovery: cannot beacon on {}: {}", iface.to_string(), ec.message());
      continue;
    }
    impl->sockets.push_back(std::move(socket));
  }
  if (impl->sockets.empty()) return Status::Error("discovery: no interface can send multicast");
  Impl* raw = impl.get();
  asio::post(raw->io, [raw]() { raw->Tick(); });
  raw->thread = std::thread([raw]() { raw->io.run(); });
  spdlog::info("discovery: beaconing as '{}' in cluster '{}' to {}:{} every {} ms{}", EscapeText(raw->beacon.name),
               EscapeText(options.cluster), options.group, options.port, options.interval_ms,
               secret.empty() ? " (unsigned: no cluster secret)" : "");
  return std::unique_ptr<BeaconSender>(new BeaconSender(std::move(impl)));
}

BeaconSender::BeaconSender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BeaconSender::~BeaconSender() {
  Impl* raw = impl_.get();
  asio::post(raw->io, [raw]() {
    raw->timer.cancel();
    raw->beacon.flags |= kBeaconLeaving;
    raw->Send();
    raw->io.stop();
  });
  if (raw->thread.joinable()) raw->thread.join();
}

}  // namespace strata
