// Discovery: beacons are validated byte by byte; real strata-node processes
// beacon over loopback multicast and a listener sees them join; a node that
// is killed leaves the list within a few seconds, one that stops says so at
// once; stray, malformed, forged, replayed and foreign packets are ignored
// and counted; a coordinator with no --nodes finds the cluster and runs.
#include "coordinator/cluster/discovery.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>
#include <thread>

#include "protocol/beacon.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::Child;
using testing::TempDir;

ClusterSecret Secret(uint8_t fill) { return ClusterSecret(Bytes(32, fill)); }

Beacon SomeBeacon() {
  Beacon b;
  b.counter = 42;
  b.node_id = Bytes(16, 7);
  b.cluster = "c1";
  b.name = "box-a";
  b.address = "10.0.0.1:7700";
  return b;
}

TEST(BeaconTest, RoundTripsSignedAndUnsigned) {
  for (const ClusterSecret& secret : {ClusterSecret(), Secret(1)}) {
    auto bytes = EncodeBeacon(SomeBeacon(), secret);
    ASSERT_TRUE(bytes.ok());
    auto back = DecodeBeacon(bytes->data(), bytes->size(), secret);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->counter, 42u);
    EXPECT_EQ(back->name, "box-a");
    EXPECT_EQ(back->address, "10.0.0.1:7700");
    EXPECT_EQ(back->cluster, "c1");
  }
}

TEST(BeaconTest, RefusesForgedTruncatedAndMalformed) {
  auto signed_bytes = EncodeBeacon(SomeBeacon(), Secret(1)).value();
  auto unsigned_bytes = EncodeBeacon(SomeBeacon(), ClusterSecret()).value();
  auto refuse = [](const Bytes& b, const ClusterSecret& s, const std::string& why) {
    auto r = DecodeBeacon(b.data(), b.size(), s);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().message();
  };
  refuse(signed_bytes, Secret(2), "bad MAC");                      // another cluster's secret
  refuse(unsigned_bytes, Secret(1), "unsigned beacon");           // no MAC where one is required
  refuse(signed_bytes, ClusterSecret(), "signed beacon");
  Bytes flipped = signed_bytes;
  flipped[20] ^= 1;                                                // a byte changed in transit
  refuse(flipped, Secret(1), "bad MAC");
  refuse(Bytes(signed_bytes.begin(), signed_bytes.begin() + 20), Secret(1), "datagram");
  refuse(Bytes(600, 0), Secret(1), "datagram");
  Bytes magic = unsigned_bytes;
  magic[0] = 'X';
  refuse(magic, ClusterSecret(), "not a Strata beacon");
  Bytes version = unsigned_bytes;
  version[4] = 9;
  refuse(version, ClusterSecret(), "beacon version 9");
  Bytes overlong = unsigned_bytes;
  overlong[30] = 200;                                              // a cluster name longer than the datagram
  refuse(overlong, ClusterSecret(), "malformed");
  Beacon control = SomeBeacon();
  control.name = "evil\x1b[2J";
  auto escaped = EncodeBeacon(control, ClusterSecret()).value();
  refuse(escaped, ClusterSecret(), "malformed");                   // no terminal escapes in names
  Beacon big = SomeBeacon();
  big.name = std::string(65, 'n');
  EXPECT_FALSE(EncodeBeacon(big, ClusterSecret()).ok());
}

// A UDP socket that sends raw datagrams to the group over loopback.
// This machine's first IPv4 address that is not loopback ("" if none): a
// datagram sent from it comes from "another host" as a listener sees it.
std::string LanAddress() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN];
    out = ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
  }
  ::freeifaddrs(list);
  return out;
}

// Beacons by hand: to the group over loopback, or (`from` an address of
// this machine) unicast to that address from it, as another host's would come.
class RawSender {
 public:
  explicit RawSender(uint16_t port, const std::string& from = "") : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    to_.sin_family = AF_INET;
    to_.sin_port = htons(port);
    if (!from.empty()) {
      sockaddr_in self{};
      self.sin_family = AF_INET;
      ::inet_pton(AF_INET, from.c_str(), &self.sin_addr);
      ::bind(fd_, reinterpret_cast<sockaddr*>(&self), sizeof self);
      to_.sin_addr = self.sin_addr;
      return;
    }
    in_addr lo{};
    lo.s_addr = htonl(INADDR_LOOPBACK);
    ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo);
    ::inet_pton(AF_INET, "239.255.77.77", &to_.sin_addr);
  }
  ~RawSender() { ::close(fd_); }
  void Send(const Bytes& b) { ::sendto(fd_, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&to_), sizeof to_); }

 private:
  int fd_;
  sockaddr_in to_{};
};

class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A port and cluster name of this test run alone: parallel tests must
    // not see each other's nodes.
    port_ = static_cast<uint16_t>(20000 + ::getpid() % 20000);
    cluster_ = "test-" + std::to_string(::getpid());
    std::ofstream(dir_ / "secret") << "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
    ::chmod((dir_ / "secret").c_str(), 0600);
    secret_ = ClusterSecret::LoadFile(dir_ / "secret").value();
  }
  std::unique_ptr<Child> StartNode(const std::string& name, const std::string& secret_file) {
    return std::make_unique<Child>(std::vector<std::string>{
        testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--name", name, "--threads", "1",
        "--cluster-name", cluster_, "--discovery-port", std::to_string(port_), "--beacon-interval-ms", "200",
        "--cluster-secret-file", secret_file, "--models-dir", testing::TempRoot()});
  }
  DiscoveryOptions Options() const {
    DiscoveryOptions o;
    o.cluster = cluster_;
    o.port = port_;
    o.interval_ms = 200;
    return o;
  }
  std::vector<std::string> Names(DiscoveryListener& l) {
    std::vector<std::string> names;
    for (const auto& m : l.Members()) names.push_back(m.name);
    return names;
  }
  TempDir dir_;
  uint16_t port_ = 0;
  std::string cluster_;
  ClusterSecret secret_;
};

TEST_F(DiscoveryTest, NodesJoinAndLeaveTheLiveList) {
  auto listener = DiscoveryListener::Start(Options(), secret_);
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  auto a = StartNode("alpha", dir_ / "secret");
  auto b = StartNode("beta", dir_ / "secret");
  auto members = listener.value()->WaitFor(2, std::chrono::seconds(10));
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].name, "alpha");
  EXPECT_EQ(members[1].name, "beta");
  EXPECT_EQ(members[0].address.rfind("127.0.0.1:", 0), 0u) << members[0].address;
  // Killed without a word: gone after 3.5 beacon intervals (0.7 s here).
  ::kill(b->pid(), SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  while (Names(*listener.value()).size() == 2 && std::chrono::steady_clock::now() - killed < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double gone_after = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_EQ(Names(*listener.value()), std::vector<std::string>{"alpha"});
  EXPECT_LT(gone_after, 2.0);
  // Stopped: it says so, and leaves at once.
  ::kill(a->pid(), SIGTERM);
  int code = 0;
  ASSERT_TRUE(a->Wait(10, &code));
  EXPECT_TRUE(testing::WaitFor([&]() { return listener.value()->stats().leaves == 2; }, 5)) << "its leave never came";
  EXPECT_TRUE(Names(*listener.value()).empty());
  EXPECT_EQ(listener.value()->stats().leaves, 2u);
}

TEST_F(DiscoveryTest, StrayForgedForeignAndReplayedBeaconsAreIgnoredAndCounted) {
  auto listener = DiscoveryListener::Start(Options(), secret_);
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  // A node with the wrong secret: its beacons are forgeries here.
  std::ofstream(dir_ / "wrong") << "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n";
  ::chmod((dir_ / "wrong").c_str(), 0600);
  auto impostor = StartNode("impostor", dir_ / "wrong");
  RawSender raw(port_);
  raw.Send(Bytes{'h', 'e', 'l', 'l', 'o'});                       // stray
  Beacon good = SomeBeacon();
  good.cluster = cluster_;
  good.name = "crafted";
  good.address = "127.0.0.1:1";
  good.counter = 100;
  raw.Send(EncodeBeacon(good, secret_).value());                  // accepted
  Beacon foreign = good;
  foreign.cluster = "someone-else";
  foreign.node_id = Bytes(16, 9);
  raw.Send(EncodeBeacon(foreign, secret_).value());               // another cluster
  Beacon replay = good;
  replay.counter = 99;
  // The replay must come after the good beacon is taken: wait for it.
  for (int i = 0; i < 200 && listener.value()->stats().accepted < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(listener.value()->stats().accepted, 1u);
  raw.Send(EncodeBeacon(replay, secret_).value());                // older than what was seen
  raw.Send(EncodeBeacon(good, ClusterSecret()).value());          // unsigned
  // The impostor beacons every 200 ms once it is up.
  for (int i = 0; i < 100 && listener.value()->stats().forged < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const DiscoveryStats s = listener.value()->stats();
  EXPECT_GE(s.malformed, 1u);
  EXPECT_GE(s.forged, 2u) << "the impostor's beacons and the unsigned one";
  EXPECT_EQ(s.other_cluster, 1u);
  EXPECT_EQ(s.replayed, 1u);
  const auto names = Names(*listener.value());
  EXPECT_EQ(std::count(names.begin(), names.end(), "impostor"), 0);
}

// Without a secret an unsigned beacon proves nothing, so only this
// machine's are taken (unless insecure); and one address is one member, the
// one heard from last, however many node ids have beaconed it.
TEST_F(DiscoveryTest, UnsignedBeaconsOnlyFromThisMachineAndOneMemberPerAddress) {
  const std::string lan = LanAddress();
  ASSERT_FALSE(lan.empty()) << "this machine has no IPv4 address but loopback to send from";
  Beacon b = SomeBeacon();
  b.cluster = cluster_;
  b.address = "127.0.0.1:7001";
  for (bool insecure : {false, true}) {
    DiscoveryOptions o = Options();
    o.insecure = insecure;
    auto listener = DiscoveryListener::Start(o, ClusterSecret());
    ASSERT_TRUE(listener.ok()) << listener.status().message();
    RawSender far(port_, lan);
    far.Send(EncodeBeacon(b, ClusterSecret()).value());
    RawSender near(port_);
    Beacon local = b;
    local.node_id = Bytes(16, 8);
    local.address = "127.0.0.1:7002";
    near.Send(EncodeBeacon(local, ClusterSecret()).value());
    ASSERT_TRUE(testing::WaitFor([&]() { return listener.value()->stats().accepted + listener.value()->stats().off_host >= 2; }, 5));
    EXPECT_EQ(listener.value()->stats().off_host, insecure ? 0u : 1u) << insecure;
    EXPECT_EQ(listener.value()->Members().size(), insecure ? 2u : 1u) << insecure;
  }
  auto listener = DiscoveryListener::Start(Options(), ClusterSecret());
  ASSERT_TRUE(listener.ok());
  RawSender near(port_);
  for (uint8_t id = 1; id <= 3; ++id) {  // a node restarted twice (new ids), or old beacons replayed
    Beacon again = b;
    again.node_id = Bytes(16, id);
    again.name = "box-" + std::to_string(id);
    near.Send(EncodeBeacon(again, ClusterSecret()).value());
    ASSERT_TRUE(testing::WaitFor([&]() { return listener.value()->stats().accepted >= id; }, 5));
  }
  const auto members = listener.value()->Members();
  ASSERT_EQ(members.size(), 1u) << "one address, one member";
  EXPECT_EQ(members[0].name, "box-3") << "the one heard from last";
}

TEST_F(DiscoveryTest, CoordinatorWithoutNodeListFindsTheClusterAndRuns) {
  auto a = StartNode("alpha", dir_ / "secret");
  auto b = StartNode("beta", dir_ / "secret");
  testing::MakeModel(dir_ / "m", TestModelSpec{});
  {  // Both up and beaconing before the coordinator starts listening.
    auto watch = DiscoveryListener::Start(Options(), secret_);
    ASSERT_TRUE(watch.ok());
    ASSERT_EQ(watch.value()->WaitFor(2, std::chrono::seconds(20)).size(), 2u);
  }
  const std::vector<std::string> discovery = {"--cluster-name", cluster_, "--discovery-port", std::to_string(port_),
                                              "--cluster-secret-file", dir_ / "secret"};
  std::vector<std::string> argv = {testing::BinDir() + "/strata", "generate", "--model", dir_ / "m", "--prompt",
                                   "hello", "--max-tokens", "4", "--json"};
  argv.insert(argv.end(), discovery.begin(), discovery.end());
  auto r = testing::RunProcess(argv, 120);
  ASSERT_EQ(r.exit_code, 0) << r.err << "\nalpha: " << a->Stderr() << "\nbeta: " << b->Stderr();
  EXPECT_NE(r.out.find("\"node\":\"alpha\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"node\":\"beta\""), std::string::npos) << r.out;
  std::vector<std::string> status = {testing::BinDir() + "/strata", "status"};
  status.insert(status.end(), discovery.begin(), discovery.end());
  auto s = testing::RunProcess(status, 60);
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("2 nodes from discovery"), std::string::npos) << s.out;
  // A member that beacons but does not answer (stopped a moment ago, or a
  // forger with the secret) is left out of the plan, not fatal.
  std::atomic<bool> stop{false};
  std::thread ghost([&]() {
    RawSender sender(port_);
    Beacon g = SomeBeacon();
    g.cluster = cluster_;
    g.name = "ghost";
    g.address = "127.0.0.1:1";
    for (uint64_t n = 1; !stop; ++n) {
      g.counter = n;
      sender.Send(EncodeBeacon(g, secret_).value());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a beacon's own pace, not a barrier
    }
  });
  auto left_out = testing::RunProcess(argv, 120);
  stop = true;
  ghost.join();
  EXPECT_EQ(left_out.exit_code, 0) << left_out.err;
  EXPECT_NE(left_out.err.find("left out: cannot reach node at 127.0.0.1:1"), std::string::npos) << left_out.err;
  EXPECT_NE(left_out.out.find("\"node\":\"beta\""), std::string::npos) << left_out.out;
}

// Nodes with different memory limits and thread counts: the plan gives each
// a share that fits its memory, reports every node's measured speed, and the
// same nodes always get the same plan. (These share one machine, so the
// split follows free memory: shard_plan_test and multihost_test cover the
// split by speed.)
TEST_F(DiscoveryTest, PlanFollowsEachNodesMemoryAndMeasuredSpeed) {
  TestModelSpec spec;
  spec.hidden = 256;
  spec.intermediate = 688;
  spec.layers = 9;  // ~2.9 MB a layer in F32
  spec.context = 64;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir_ / "m", spec);
  auto start = [&](const std::string& name, const std::string& threads, const std::string& memory) {
    return std::make_unique<Child>(std::vector<std::string>{
        testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--name", name, "--threads", threads,
        "--memory-limit", memory, "--cluster-name", cluster_, "--discovery-port", std::to_string(port_),
        "--beacon-interval-ms", "200", "--cluster-secret-file", dir_ / "secret", "--models-dir", testing::TempRoot()});
  };
  auto small = start("a-small", "1", "7MiB");  // room for two layers
  auto wide = start("b-wide", "2", "1GiB");
  auto narrow = start("c-narrow", "1", "1GiB");
  {
    auto watch = DiscoveryListener::Start(Options(), secret_);
    ASSERT_TRUE(watch.ok());
    ASSERT_EQ(watch.value()->WaitFor(3, std::chrono::seconds(20)).size(), 3u);
  }
  auto plan = [&]() {
    auto r = testing::RunProcess({testing::BinDir() + "/strata", "plan", "--model", dir_ / "m", "--json",
                                  "--cluster-name", cluster_, "--discovery-port", std::to_string(port_),
                                  "--cluster-secret-file", dir_ / "secret"},
                                 60);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  // Nodes calibrate beside serving: plan once every node has measured itself.
  auto all_measured = [](const std::string& out) {
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.empty()) return false;
    for (const auto& s : j) {
      if (!s.contains("bandwidth_gbps") || s["bandwidth_gbps"].get<double>() <= 0) return false;
    }
    return true;
  };
  std::string first = plan();
  for (int i = 0; i < 60 && !all_measured(first); ++i) {
    usleep(500000);
    first = plan();
  }
  const std::string second = plan();
  EXPECT_EQ(first, second) << "the same nodes must get the same plan";
  auto stages = nlohmann::json::parse(first);
  int layers = 0;
  std::map<std::string, nlohmann::json> by_node;
  for (const auto& s : stages) {
    EXPECT_LE(s["bytes"].get<uint64_t>(), s["free_bytes"].get<uint64_t>()) << s.dump();
    EXPECT_GT(s["bandwidth_gbps"].get<double>(), 0.0);
    layers += s["end_layer"].get<int>() - s["first_layer"].get<int>();
    by_node[s["node"]] = s;
  }
  EXPECT_EQ(layers, 9);
  ASSERT_TRUE(by_node.count("a-small"));
  EXPECT_LE(by_node["a-small"]["end_layer"].get<int>() - by_node["a-small"]["first_layer"].get<int>(), 2);
  // Between the two roomy nodes, the faster (as measured) holds no fewer layers, give or take one.
  if (by_node.count("b-wide") && by_node.count("c-narrow")) {
    auto count = [&](const char* n) { return by_node[n]["end_layer"].get<int>() - by_node[n]["first_layer"].get<int>(); };
    const bool wide_faster = by_node["b-wide"]["bandwidth_gbps"] > by_node["c-narrow"]["bandwidth_gbps"];
    EXPECT_GE(count(wide_faster ? "b-wide" : "c-narrow") + 1, count(wide_faster ? "c-narrow" : "b-wide"));
  }
}

}  // namespace
}  // namespace strata
