#include "coordinator/cluster/discovery.h"
#include "base/net_address.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio.hpp>
#include <thread>

#include "base/escape.h"
#include "base/hex.h"
#include "base/mutex.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

std::string Hex(const Bytes& b) { return HexEncode(b.data(), b.size()); }

}  // namespace

struct DiscoveryListener::Impl {
  DiscoveryOptions options;
  ClusterSecret secret;
  asio::io_context io;
  asio::ip::udp::socket socket{io};
  asio::ip::udp::endpoint from;
  std::array<uint8_t, kMaxBeaconBytes + 1> buffer{};
  std::thread thread;

  struct Entry {
    Member member;
    uint64_t counter = 0;
    Clock::time_point first, last;
  };
  mutable Mutex mu;
  std::map<std::string, Entry> members GUARDED_BY(mu);  // by node id (hex)
  DiscoveryStats stats GUARDED_BY(mu);
  std::chrono::milliseconds expiry{3500};

  void Receive() {
    socket.async_receive_from(asio::buffer(buffer), from, [this](const asio::error_code& ec, size_t n) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) Accept(n);
      Receive();
    });
  }

  void Accept(size_t n) {
    MutexLock lock(&mu);
    if (secret.empty() && !options.insecure && !from.address().is_loopback()) {
      ++stats.off_host;  // an unsigned beacon proves nothing: only this machine's are taken
      return;
    }
    auto beacon = DecodeBeacon(buffer.data(), n, secret);
    if (!beacon.ok()) {
      const std::string& why = beacon.status().message();
      (why.find("MAC") != std::string::npos || why.find("signed") != std::string::npos ? stats.forged : stats.malformed)++;
      return;
    }
    if (beacon->cluster != options.cluster) {
      ++stats.other_cluster;
      return;
    }
    std::string address = beacon->address;
    auto parsed = ParseHostPort(address);
    if (!parsed.ok() || parsed->port == 0) {
      ++stats.malformed;
      return;
    }
    // A wildcard host means "where this came from".
    if (IsWildcardHost(parsed->host)) address = JoinHostPort(from.address().to_string(), parsed->port);
    const std::string id = Hex(beacon->node_id);
    auto it = members.find(id);
    if (it != members.end() && beacon->counter <= it->second.counter) {
      // The same beacon on a second interface, or a replay of an old one.
      if (beacon->counter < it->second.counter) ++stats.replayed;
      return;
    }
    ++stats.accepted;
    const auto now = Clock::now();
    if (beacon->flags & kBeaconLeaving) {
      if (it != members.end()) {
        spdlog::info("discovery: {} at {} left", EscapeText(it->second.member.name), it->second.member.address);
        members.erase(it);
        ++stats.leaves;
      }
      return;
    }
    if (it == members.end()) {
      Entry e;
      e.first = now;
      e.member.node_id = id;
      it = members.emplace(id, e).first;
      ++stats.joins;
      spdlog::debug("discovery: {} joined at {}", EscapeText(beacon->name), EscapeText(address));
    }
    it->second.counter = beacon->counter;
    it->second.last = now;
    it->second.member.name = EscapeText(beacon->name, 64);
    it->second.member.address = EscapeText(address, 128);
  }

  // Drops members silent for longer than the expiry.
  void Expire() REQUIRES(mu) {
    const auto now = Clock::now();
    for (auto it = members.begin(); it != members.end();) {
      if (now - it->second.last > expiry) {
        spdlog::info("discovery: {} at {} stopped beaconing", it->second.member.name, it->second.member.address);
        ++stats.leaves;
        it = members.erase(it);
      } else {
        ++it;
      }
    }
  }
};

Result<std::unique_ptr<DiscoveryListener>> DiscoveryListener::Start(const DiscoveryOptions& options,
                                                                    const ClusterSecret& secret) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->secret = secret;
  impl->expiry = std::chrono::milliseconds(options.interval_ms * 7 / 2);
  asio::error_code ec;
  const auto group = asio::ip::make_address_v4(options.group, ec);
  if (ec || !group.is_multicast()) {
    return Status::Error("--discovery-group " + EscapeText(options.group) + " is not an IPv4 multicast group");
  }
  auto& socket = impl->socket;
  socket.open(asio::ip::udp::v4(), ec);
  if (!ec) socket.set_option(asio::ip::udp::socket::reuse_address(true), ec);
  if (!ec) socket.bind(asio::ip::udp::endpoint(asio::ip::address_v4::any(), options.port), ec);
  if (ec) return Status::Error("discovery: cannot listen on UDP port " + std::to_string(options.port) + ": " + ec.message());
  int joined = 0;
  for (const auto& iface : {asio::ip::address_v4::loopback(), asio::ip::address_v4::any()}) {
    asio::error_code join;
    socket.set_option(asio::ip::multicast::join_group(group, iface), join);
    joined += !join;
  }
  if (joined == 0) return Status::Error("discovery: cannot join multicast group " + options.group);
  Impl* raw = impl.get();
  raw->Receive();
  raw->thread = std::thread([raw]() { raw->io.run(); });
  return std::unique_ptr<DiscoveryListener>(new DiscoveryListener(std::move(impl)));
}

DiscoveryListener::DiscoveryListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DiscoveryListener::~DiscoveryListener() {
  Impl* raw = impl_.get();
  asio::post(raw->io, [raw]() {
    asio::error_code ec;
    raw->socket.close(ec);
    raw->io.stop();
  });
  if (raw->thread.joinable()) raw->thread.join();
}

std::vector<Member> DiscoveryListener::Members() {
  MutexLock lock(&impl_->mu);
  impl_->Expire();
  const auto now = Clock::now();
  // One member per address: the one heard from last (a node that restarted
  // has a new id; a replayed beacon of the old one makes no second stage).
  std::map<std::string, const Impl::Entry*> by_address;
  for (auto& [id, e] : impl_->members) {
    const Impl::Entry*& best = by_address[e.member.address];
    if (best == nullptr || e.last > best->last) best = &e;
  }
  std::vector<Member> out;
  for (const auto& [address, e] : by_address) {
    Member m = e->member;
    m.seen_ago_s = std::chrono::duration<double>(now - e->last).count();
    m.age_s = std::chrono::duration<double>(now - e->first).count();
    out.push_back(m);
  }
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) {
    return a.name != b.name ? a.name < b.name : a.address < b.address;
  });
  return out;
}

DiscoveryStats DiscoveryListener::stats() const {
  MutexLock lock(&impl_->mu);
  return impl_->stats;
}

std::vector<Member> DiscoveryListener::WaitFor(size_t count, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<Member> members = Members();
  while (members.size() < count && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    members = Members();
  }
  return members;
}

}  // namespace strata
