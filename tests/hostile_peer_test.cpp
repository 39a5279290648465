// A hostile peer against real strata-node processes: everything here is what
// a stranger (or a compromised member) can send with nothing but the schema.
// In every case the node stays up, keeps serving its real client, keeps its
// memory bounded, and the offender gets one clear error.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "base/net_address.h"
#include "base/system_memory.h"
#include "coordinator/cluster/local_cluster.h"
#include "protocol/peer_auth.h"
#include "protocol/tensor_codec.h"
#include "protocol/version.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::ErrorOf;
using testing::SubmitTokens;
using testing::Load;
using testing::Open;
using testing::Opened;
using testing::RecordingSink;
using testing::SetNext;
using testing::TempDir;

constexpr const char* kSecret = "hostile-test-secret-0123456789abcdef";

class HostilePeerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    TestModelSpec spec;
    spec.layers = 4;
    spec.context = 2048;
    spec.tokenizer_vocab = 200;
    testing::MakeModel(*dir_ / "m", spec);
    std::ofstream(*dir_ / "secret") << kSecret << "\n";
    ::chmod((*dir_ / "secret").c_str(), 0600);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Model() { return *dir_ / "m"; }
  static std::string SecretFile() { return *dir_ / "secret"; }

  // Nodes that demand kSecret, logging to log_ at info.
  std::unique_ptr<LocalCluster> StartNodes(int n, std::vector<std::string> extra = {}) {
    LocalClusterOptions o;
    o.nodes = n;
    o.node_binary = testing::BinDir() + "/strata-node";
    o.models_dirs = {testing::TempRoot()};
    o.threads = 1;
    o.secret = kSecret;
    o.log_level = "info";
    o.log_path = log_dir_ / "nodes.log";
    o.extra_args = std::move(extra);
    auto c = LocalCluster::Start(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return std::move(c.value());
  }
  std::string Log() const { return testing::ReadFile(log_dir_ / "nodes.log"); }
  static size_t Count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }

  std::unique_ptr<kj::AsyncIoContext> io_holder_ = std::make_unique<kj::AsyncIoContext>(kj::setupAsyncIo());
  kj::AsyncIoContext& io_ = *io_holder_;
  TempDir log_dir_;
  static TempDir* dir_;
};
TempDir* HostilePeerTest::dir_ = nullptr;

// The real client's proof that the node still serves.
void ExpectServes(kj::AsyncIoContext& io, const std::string& address) {
  auto link = testing::Connect(io, address, kSecret);
  EXPECT_EQ(link->info().getProtocolVersion(), kProtocolVersion);
  EXPECT_TRUE(link->info().getSecured());
}

// A plain TCP connection from `source` (another loopback address), or -1.
int ConnectFrom(const std::string& source, const std::string& address) {
  auto target = ParseHostPort(address);
  if (!target.ok()) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from = {}, to = {};
  from.sin_family = to.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  ::inet_pton(AF_INET, target->host.c_str(), &to.sin_addr);
  to.sin_port = htons(static_cast<uint16_t>(target->port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True when the node closed `fd` (EOF or reset) within timeout_s.
bool ClosedByPeer(int fd, double timeout_s) {
  timeval tv = {static_cast<time_t>(timeout_s), static_cast<suseconds_t>((timeout_s - static_cast<int>(timeout_s)) * 1e6)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

TEST_F(HostilePeerTest, NoSecretNoRights) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  // The real client, without the secret, is told what is missing.
  const std::string e = ErrorOf([&]() { testing::Connect(io_, address, ""); });
  EXPECT_NE(e.find("wants a cluster secret"), std::string::npos) << e;
  // A raw peer that skips the proof, five times: refused each time, logged once.
  for (int i = 0; i < 5; ++i) {
    testing::RawPeer raw(io_, address);
    auto challenge = raw.node().challengeRequest();
    challenge.setProtocolVersion(kProtocolVersion);
    challenge.initClientNonce(kNonceBytes);
    challenge.send().wait(io_.waitScope);
    auto hello = raw.node().helloRequest();
    hello.setProtocolVersion(kProtocolVersion);
    hello.setPeer("stranger");
    const std::string refused = ErrorOf([&]() { hello.send().wait(io_.waitScope); });
    EXPECT_NE(refused.find("does not prove the cluster secret"), std::string::npos) << refused;
  }
  // A hello without a challenge gets nothing either.
  testing::RawPeer raw(io_, address);
  auto hello = raw.node().helloRequest();
  hello.setProtocolVersion(kProtocolVersion);
  EXPECT_NE(ErrorOf([&]() { hello.send().wait(io_.waitScope); }).find("without a challenge"), std::string::npos);
  ExpectServes(io_, address);
  EXPECT_EQ(Count(Log(), "refused 127.0.0.1"), 1u) << Log();
}

TEST_F(HostilePeerTest, WrongSecretIsRefusedBothWays) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  // The client notices first: the node's proof does not match its secret.
  const std::string e = ErrorOf([&]() { testing::Connect(io_, address, "another-secret-0123456789"); });
  EXPECT_NE(e.find("does not hold this cluster's secret"), std::string::npos) << e;
  // A raw peer that proves another secret is refused by the node.
  testing::RawPeer raw(io_, address);
  auto challenge = raw.node().challengeRequest();
  challenge.setProtocolVersion(kProtocolVersion);
  const Bytes cn = RandomBytes(kNonceBytes);
  challenge.setClientNonce(kj::arrayPtr(cn.data(), cn.size()));
  auto reply = challenge.send().wait(io_.waitScope);
  const Bytes sn(reply.getServerNonce().begin(), reply.getServerNonce().end());
  const std::string other = "another-secret-0123456789";
  const Bytes proof = ClientProof(ClusterSecret(Bytes(other.begin(), other.end())), kProtocolVersion, 0, "x", sn, cn);
  auto hello = raw.node().helloRequest();
  hello.setProtocolVersion(kProtocolVersion);
  hello.setPeer("x");
  hello.setClientProof(kj::arrayPtr(proof.data(), proof.size()));
  EXPECT_NE(ErrorOf([&]() { hello.send().wait(io_.waitScope); }).find("does not prove the cluster secret"),
            std::string::npos);
  // The CLI says the same in one line.
  auto r = testing::RunProcess({testing::BinDir() + "/strata", "status", "--nodes", address});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("wants a cluster secret"), std::string::npos) << r.out;
  ExpectServes(io_, address);
}

// A recorded hello is worthless on another connection, and a connection
// gets one hello.
TEST_F(HostilePeerTest, ReplayedHelloIsRefused) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  const ClusterSecret secret(Bytes(kSecret, kSecret + std::strlen(kSecret)));
  auto handshake = [&](testing::RawPeer& raw, Bytes* sn, Bytes* cn) {
    auto challenge = raw.node().challengeRequest();
    challenge.setProtocolVersion(kProtocolVersion);
    *cn = RandomBytes(kNonceBytes);
    challenge.setClientNonce(kj::arrayPtr(cn->data(), cn->size()));
    auto reply = challenge.send().wait(io_.waitScope);
    *sn = Bytes(reply.getServerNonce().begin(), reply.getServerNonce().end());
  };
  auto hello = [&](testing::RawPeer& raw, const Bytes& proof) {
    auto req = raw.node().helloRequest();
    req.setProtocolVersion(kProtocolVersion);
    req.setPeer("replayer");
    req.setClientProof(kj::arrayPtr(proof.data(), proof.size()));
    return ErrorOf([&]() { req.send().wait(io_.waitScope); });
  };
  testing::RawPeer first(io_, address);
  Bytes sn1, cn1;
  handshake(first, &sn1, &cn1);
  const Bytes recorded = ClientProof(secret, kProtocolVersion, 0, "replayer", sn1, cn1);
  EXPECT_EQ(hello(first, recorded), "") << "the genuine hello works";
  EXPECT_NE(hello(first, recorded).find("a second hello"), std::string::npos);
  testing::RawPeer second(io_, address);
  Bytes sn2, cn2;
  handshake(second, &sn2, &cn2);
  EXPECT_NE(sn1, sn2);
  EXPECT_NE(hello(second, recorded).find("does not prove the cluster secret"), std::string::npos);
  ExpectServes(io_, address);
}

// Sessions are capabilities: another client cannot name, drive or close
// them; a guessed ticket reaches nothing; dropping the capability closes it.
TEST_F(HostilePeerTest, AnotherClientsSessionIsOutOfReach) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  auto owner = testing::Connect(io_, address, kSecret);
  Load(io_, *owner, Model(), 0, 4);
  SetNext(io_, *owner, "", 0, 1);
  Opened mine = Open(io_, *owner, 64);
  EXPECT_EQ(mine.ticket.size(), kTicketBytes);
  const uint32_t alone = SubmitTokens(io_, mine.session, 0, {1, 2, 3});
  // Another member, as a stage, guesses tickets and replays the owner's hop.
  auto intruder = testing::Connect(io_, address, kSecret, wire::PeerRole::STAGE);
  for (int i = 0; i < 3; ++i) {
    auto req = intruder->upstream.submitRequest();
    const Bytes guess = RandomBytes(kTicketBytes);
    req.setTicket(kj::arrayPtr(guess.data(), guess.size()));
    req.initStep().initInput().initTokens(1).set(0, 1);
    EXPECT_NE(ErrorOf([&]() { req.send().wait(io_.waitScope); }).find("no such session"), std::string::npos);
  }
  EXPECT_NE(ErrorOf([&]() { intruder->control.infoRequest().send().wait(io_.waitScope); }), "")
      << "a stage-role peer gets no Control";
  // The owner's conversation is untouched.
  EXPECT_EQ(owner->control.infoRequest().send().wait(io_.waitScope).getInfo().getActiveSessions(), 1u);
  Opened again = Open(io_, *owner, 64);
  EXPECT_EQ(SubmitTokens(io_, again.session, 0, {1, 2, 3}), alone);
  // Letting go of a Session capability closes it.
  mine.session = nullptr;
  again.session = nullptr;
  for (int i = 0; i < 100; ++i) {
    if (owner->control.infoRequest().send().wait(io_.waitScope).getInfo().getActiveSessions() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(owner->control.infoRequest().send().wait(io_.waitScope).getInfo().getActiveSessions(), 0u);
}

// Submitted steps: refused without a sink, refused for guessed tickets; the
// result reaches the sink and equals what another session's step returns; a step that fails
// after it was taken is reported to the sink with its cause.
TEST_F(HostilePeerTest, SubmittedStepsReportToTheSessionsSinkOnly) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  auto owner = testing::Connect(io_, address, kSecret);
  Load(io_, *owner, Model(), 0, 4);
  SetNext(io_, *owner, "", 0, 1);
  Opened reference = Open(io_, *owner, 64);
  const uint32_t expected = SubmitTokens(io_, reference.session, 0, {1, 2, 3});
  Opened s = Open(io_, *owner, 64);
  auto submit = [&](uint32_t start, std::vector<uint32_t> tokens) {
    auto req = s.session.submitRequest();
    req.initStep().setStartPos(start);
    req.getStep().setSample(true);
    auto ids = req.getStep().initInput().initTokens(static_cast<unsigned>(tokens.size()));
    for (size_t i = 0; i < tokens.size(); ++i) ids.set(static_cast<unsigned>(i), tokens[i]);
    return ErrorOf([&]() { req.send().wait(io_.waitScope); });
  };
  EXPECT_NE(submit(0, {1, 2, 3}).find("no sink"), std::string::npos);
  auto recording = kj::heap<RecordingSink>();
  RecordingSink* sink = recording.get();
  wire::StepSink::Client client = kj::mv(recording);
  auto set = s.session.setSinkRequest();
  set.setSink(client);
  set.send().wait(io_.waitScope);
  EXPECT_EQ(submit(0, {1, 2, 3}), "");
  for (int i = 0; i < 200 && sink->results.empty(); ++i) io_.provider->getTimer().afterDelay(10 * kj::MILLISECONDS).wait(io_.waitScope);
  ASSERT_EQ(sink->results.size(), 1u);
  EXPECT_EQ(sink->results[0].first, 0u);
  EXPECT_EQ(sink->results[0].second, expected) << "submit and forward compute the same step";
  // Refused before it is taken: a token outside the vocabulary.
  EXPECT_NE(submit(3, {1u << 30}).find("outside the vocabulary"), std::string::npos);
  // Taken, then failed: its session is closed before the step runs.
  EXPECT_EQ(submit(3, {4}), "");
  s.session.closeRequest().send().wait(io_.waitScope);
  for (int i = 0; i < 200 && sink->failures.empty() && sink->results.size() < 2; ++i) {
    io_.provider->getTimer().afterDelay(10 * kj::MILLISECONDS).wait(io_.waitScope);
  }
  EXPECT_EQ(sink->results.size() + sink->failures.size(), 2u) << "every taken step is reported, one way or the other";
  // Another member guessing tickets on Upstream.submit gets nothing.
  auto intruder = testing::Connect(io_, address, kSecret, wire::PeerRole::STAGE);
  auto req = intruder->upstream.submitRequest();
  const Bytes guess = RandomBytes(kTicketBytes);
  req.setTicket(kj::arrayPtr(guess.data(), guess.size()));
  req.initStep().initInput().initTokens(1).set(0, 1);
  EXPECT_NE(ErrorOf([&]() { req.send().wait(io_.waitScope); }).find("no such session"), std::string::npos);
}

TEST_F(HostilePeerTest, NoSelfLoopsAndNoForwardingPastTheLastStage) {
  auto cluster = StartNodes(2, {"--connect-timeout-ms", "2000"});
  const std::string a = cluster->addresses()[0], b = cluster->addresses()[1];
  auto ca = testing::Connect(io_, a, kSecret), cb = testing::Connect(io_, b, kSecret);
  Load(io_, *ca, Model(), 0, 2);
  Load(io_, *cb, Model(), 2, 4);
  auto set_next = [&](PeerLink& link, const std::string& next, uint32_t index, uint32_t count) {
    return ErrorOf([&]() { SetNext(io_, link, next, index, count); });
  };
  EXPECT_NE(set_next(*ca, a, 0, 2).find("is this node itself"), std::string::npos);
  EXPECT_NE(set_next(*cb, a, 1, 2).find("the last stage of a pipeline cannot have a next stage"), std::string::npos);
  EXPECT_NE(set_next(*ca, "", 0, 2).find("needs a next stage"), std::string::npos);
  EXPECT_NE(set_next(*ca, b, 3, 2).find("impossible"), std::string::npos);
  ASSERT_EQ(set_next(*cb, "", 1, 2), "");
  ASSERT_EQ(set_next(*ca, b, 0, 2), "");
  Opened last = Open(io_, *cb, 64);
  Opened first = Open(io_, *ca, 64, last.ticket);
  const uint32_t token = SubmitTokens(io_, first.session, 0, {5, 6, 7}, {&last.session});
  // A step sent to stage 1 as if it were hop 0, or to stage 0 as hop 1, is refused.
  auto as_stage = testing::Connect(io_, a, kSecret, wire::PeerRole::STAGE);
  auto req = as_stage->upstream.submitRequest();
  req.setTicket(kj::arrayPtr(first.ticket.data(), first.ticket.size()));
  req.setHop(1);
  req.initStep().initInput().initTokens(1).set(0, 1);
  EXPECT_NE(ErrorOf([&]() { req.send().wait(io_.waitScope); }).find("a step for stage 1 reached stage 0"),
            std::string::npos);
  // setNext aimed at a Unix socket, a closed port or a stranger's server is
  // refused with one answer, and the working link stays.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in any = {};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<sockaddr*>(&any), sizeof any);
  ::listen(listener, 4);
  socklen_t len = sizeof any;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&any), &len);
  const std::string stranger = "127.0.0.1:" + std::to_string(ntohs(any.sin_port));
  for (const std::string& target : {std::string("unix:/tmp/strata-test.sock"), std::string("127.0.0.1:1"), stranger}) {
    auto req = ca->control.setNextRequest();
    req.setAddress(target);
    req.setStageIndex(0);
    req.setStageCount(2);
    const std::string e = ErrorOf([&]() { req.send().wait(io_.waitScope); });
    EXPECT_NE(e.find("did not answer an authenticated hello of this cluster"), std::string::npos) << target << ": " << e;
  }
  ::close(listener);
  EXPECT_EQ(SubmitTokens(io_, first.session, 0, {5, 6, 7}, {&last.session}), token)
      << "the old link still carries the pipeline";
}

TEST_F(HostilePeerTest, ConnectionFloodLeavesRealClientsServed) {
  auto cluster = StartNodes(1, {"--max-connections", "64", "--max-connections-per-peer", "16",
                                "--hello-timeout-ms", "1500"});
  const std::string address = cluster->addresses()[0];
  auto before = testing::Connect(io_, address, kSecret);
  std::vector<int> flood;
  for (int i = 0; i < 200; ++i) {
    const int fd = ConnectFrom("127.0.0.2", address);
    if (fd >= 0) flood.push_back(fd);
  }
  // Clients from other addresses, old and new, are served during the flood.
  EXPECT_EQ(before->control.infoRequest().send().wait(io_.waitScope).getInfo().getProtocolVersion(), kProtocolVersion);
  ExpectServes(io_, address);
  // The idle strangers are cut off after the hello timeout.
  EXPECT_TRUE(ClosedByPeer(flood.front(), 5.0));
  for (int fd : flood) ::close(fd);
  EXPECT_NE(Log().find("refused a connection from 127.0.0.2"), std::string::npos) << Log();
  EXPECT_NE(Log().find("no authenticated hello within 1500 ms"), std::string::npos);
  EXPECT_EQ(::kill(cluster->pids()[0], 0), 0);
}

TEST_F(HostilePeerTest, RunningOutOfFileDescriptorsIsSurvived) {
  // The node inherits a soft limit of 40 descriptors.
  rlimit old;
  ::getrlimit(RLIMIT_NOFILE, &old);
  rlimit low = old;
  low.rlim_cur = 40;
  ::setrlimit(RLIMIT_NOFILE, &low);
  auto cluster = StartNodes(1, {"--max-connections", "1000", "--max-connections-per-peer", "1000",
                                "--hello-timeout-ms", "1000"});
  ::setrlimit(RLIMIT_NOFILE, &old);
  const std::string address = cluster->addresses()[0];
  std::vector<int> flood;
  for (int i = 0; i < 120; ++i) {
    const int fd = ConnectFrom("127.0.0.3", address);
    if (fd >= 0) flood.push_back(fd);
  }
  // The flood reached the node (it ran out of descriptors) and it is still there.
  EXPECT_TRUE(testing::WaitFor([&]() { return Log().find("accept failed") != std::string::npos; }, 10)) << Log();
  EXPECT_EQ(::kill(cluster->pids()[0], 0), 0) << "the node died";
  for (int fd : flood) ::close(fd);
  // Once the strangers are gone the node accepts again.
  std::string e = "not tried";
  for (int i = 0; i < 50 && !e.empty(); ++i) {
    e = ErrorOf([&]() { ExpectServes(io_, address); });
    if (!e.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(e, "");
  EXPECT_NE(Log().find("accept failed"), std::string::npos) << Log();
}

// Frames that announce 64 MiB and stop half-way cost the node no more than
// its pre-hello budget per connection.
TEST_F(HostilePeerTest, HalfSentHugeFramesAreCutOff) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  const int pid = cluster->pids()[0];
  auto client = testing::Connect(io_, address, kSecret);
  const uint64_t rss_before = ResidentBytesOf(pid);
  std::vector<int> senders;
  std::vector<char> chunk(1 << 20, 'x');
  for (int i = 0; i < 8; ++i) {
    const int fd = ConnectFrom("127.0.0.4", address);
    ASSERT_GE(fd, 0);
    const uint32_t header[2] = {0, (64u << 20) / 8 - 1};  // one segment of 64 MiB - 8 bytes
    ASSERT_EQ(::send(fd, header, sizeof header, MSG_NOSIGNAL), 8);
    ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    senders.push_back(fd);
  }
  for (int fd : senders) EXPECT_TRUE(ClosedByPeer(fd, 5.0)) << "the node keeps reading a stranger's frame";
  for (int fd : senders) ::close(fd);
  const uint64_t rss_after = ResidentBytesOf(pid);
  EXPECT_LT(static_cast<double>(rss_after), static_cast<double>(rss_before) + 16e6);
  EXPECT_EQ(client->control.infoRequest().send().wait(io_.waitScope).getInfo().getProtocolVersion(), kProtocolVersion);
}

TEST_F(HostilePeerTest, HugeTokenListIsRefusedBeforeAnyWork) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  const int pid = cluster->pids()[0];
  auto link = testing::Connect(io_, address, kSecret);
  Load(io_, *link, Model(), 0, 4);
  SetNext(io_, *link, "", 0, 1);
  Opened s = Open(io_, *link, 64);
  const uint64_t rss_before = ResidentBytesOf(pid);
  const uint64_t steps_before = link->control.infoRequest().send().wait(io_.waitScope).getInfo().getStepsComputed();
  std::vector<uint32_t> huge(4u << 20, 1);
  const std::string e = ErrorOf([&]() { SubmitTokens(io_, s.session, 0, huge); });
  EXPECT_NE(e.find("positions [0, 4194304) exceed the session's capacity of 64 tokens"), std::string::npos) << e;
  EXPECT_NE(ErrorOf([&]() { SubmitTokens(io_, s.session, 60, {1, 2, 3, 4, 5}); }).find("capacity of 64"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&]() { SubmitTokens(io_, s.session, 0, {100000}); }).find("outside the vocabulary"),
            std::string::npos);
  auto info = link->control.infoRequest().send().wait(io_.waitScope).getInfo();
  EXPECT_EQ(info.getStepsComputed(), steps_before) << "nothing reached the compute thread";
  EXPECT_LT(static_cast<double>(ResidentBytesOf(pid)), static_cast<double>(rss_before) + 64e6);
  EXPECT_LT(SubmitTokens(io_, s.session, 0, {1, 2, 3}), static_cast<uint32_t>(TestModelSpec().vocab))
      << "a good step after the bad ones is served";
}

TEST_F(HostilePeerTest, BadHiddenStatesAreRefused) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  auto link = testing::Connect(io_, address, kSecret);
  Load(io_, *link, Model(), 2, 4);
  SetNext(io_, *link, "", 1, 2);  // the last of two stages: hidden states come from upstream
  Opened s = Open(io_, *link, 16);
  auto upstream = testing::Connect(io_, address, kSecret, wire::PeerRole::STAGE);
  auto send = [&](const HostTensor& h, uint32_t hop) {
    auto req = upstream->upstream.submitRequest();
    req.setTicket(kj::arrayPtr(s.ticket.data(), s.ticket.size()));
    req.setHop(hop);
    EncodeTensor(h, req.initStep().initInput().initHidden());
    return ErrorOf([&]() { req.send().wait(io_.waitScope); });
  };
  HostTensor h;
  h.shape = {2, 64};
  h.data.assign(2 * 64 * 4, 0);
  float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(h.data.data() + 40, &nan, 4);
  EXPECT_NE(send(h, 1).find("NaN or infinite"), std::string::npos);
  float inf = std::numeric_limits<float>::infinity();
  std::memcpy(h.data.data() + 40, &inf, 4);
  EXPECT_NE(send(h, 1).find("NaN or infinite"), std::string::npos);
  HostTensor narrow;
  narrow.shape = {1, 32};
  narrow.data.resize(128);
  EXPECT_NE(send(narrow, 1).find("hidden states must be [tokens, 64]"), std::string::npos);
  HostTensor bf16;
  bf16.dtype = TensorDType::kBF16;
  bf16.shape = {1, 64};
  bf16.data.resize(128);
  EXPECT_NE(send(bf16, 1).find("hidden states must be f32"), std::string::npos);
  // A tensor whose data does not match its shape.
  auto req = upstream->upstream.submitRequest();
  req.setTicket(kj::arrayPtr(s.ticket.data(), s.ticket.size()));
  req.setHop(1);
  auto t = req.initStep().initInput().initHidden();
  t.setDtype(wire::DType::F32);
  auto shape = t.initShape(2);
  shape.set(0, 2);
  shape.set(1, 64);
  t.initData(100);
  EXPECT_NE(ErrorOf([&]() { req.send().wait(io_.waitScope); }).find("bad hidden states"), std::string::npos);
  // Token ids to a stage that takes hidden states.
  EXPECT_NE(ErrorOf([&]() { SubmitTokens(io_, s.session, 0, {1}); }).find("a step for stage 0 reached stage 1"),
            std::string::npos);
  // A finite step goes through, and its token reaches the session's sink.
  HostTensor good;
  good.shape = {1, 64};
  good.data.assign(64 * 4, 0);
  testing::SinkOnStages sink = testing::SetSink(io_, {&s.session});
  auto token = sink.sink->Next(0);
  EXPECT_EQ(send(good, 1), "");
  EXPECT_LT(io_.provider->getTimer().timeoutAfter(60 * kj::SECONDS, kj::mv(token)).wait(io_.waitScope),
            static_cast<uint32_t>(TestModelSpec().vocab));
}

TEST_F(HostilePeerTest, BadConfigsDoNotPoisonLaterLoads) {
  auto cluster = StartNodes(1, {"--memory", "256MiB"});
  const std::string address = cluster->addresses()[0];
  const int pid = cluster->pids()[0];
  auto link = testing::Connect(io_, address, kSecret);
  const std::string config = testing::ReadFile(Model() + "/config.json");
  auto variant = [&](const std::string& name, const std::string& from, const std::string& to) {
    const std::string dir = log_dir_ / name;
    ::mkdir(dir.c_str(), 0755);
    std::string text = config;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    std::ofstream(dir + "/config.json") << text;
    for (const char* f : {"model.safetensors", "tokenizer.model"}) {
      ::symlink((Model() + "/" + f).c_str(), (dir + "/" + f).c_str());
    }
    return dir;
  };
  auto load = [&](const std::string& dir) { return ErrorOf([&]() { Load(io_, *link, dir, 0, 4); }); };
  const uint64_t rss_before = ResidentBytesOf(pid);
  EXPECT_NE(load(variant("typed", "\"model_type\": \"llama\"", "\"model_type\": 5")).find("'model_type' must be a string"),
            std::string::npos);
  EXPECT_NE(load(variant("long", "\"max_position_embeddings\": 2048", "\"max_position_embeddings\": 8388608"))
                .find("over Strata's limit"), std::string::npos);
  EXPECT_NE(load(variant("rope", "\"max_position_embeddings\": 2048", "\"max_position_embeddings\": 4000000"))
                .find("weights and RoPE tables needs "), std::string::npos);
  EXPECT_NE(load(variant("newline", "\"model_type\": \"llama\"", "\"model_type\": \"llama\\nFORGED\"")).find("llama\\x0aFORGED"),
            std::string::npos) << "peer-supplied text is escaped";
  EXPECT_LT(static_cast<double>(ResidentBytesOf(pid)), static_cast<double>(rss_before) + 64e6);
  EXPECT_EQ(load(Model()), "") << "a good load after bad ones";
  SetNext(io_, *link, "", 0, 1);
  Opened s = Open(io_, *link, 8);
  EXPECT_LT(SubmitTokens(io_, s.session, 0, {1, 2}), static_cast<uint32_t>(TestModelSpec().vocab))
      << "a good step after the bad loads is served";
  EXPECT_EQ(Log().find("\nFORGED"), std::string::npos) << "a newline from a peer forged a log line";
}

TEST_F(HostilePeerTest, PeerNamesCannotForgeLogLines) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  ClusterSecret secret(Bytes(kSecret, kSecret + std::strlen(kSecret)));
  LinkSecurity security{&secret, nullptr};
  ConnectPeer(io_.provider->getNetwork(), io_.provider->getTimer(), address, security, wire::PeerRole::COORDINATOR,
              "evil\n[00:00:00.000] [node x] [info] FORGED", 5000)
      .wait(io_.waitScope);
  EXPECT_TRUE(testing::WaitFor([&]() { return Log().find("evil\\x0a") != std::string::npos; }, 5)) << Log();
  const std::string log = Log();
  EXPECT_NE(log.find("evil\\x0a[00:00:00.000]"), std::string::npos) << log;
  EXPECT_EQ(log.find("\n[00:00:00.000] [node x]"), std::string::npos) << log;
}

// A caller that goes away takes its queued work with it: steps it submitted
// that have not started by the time its session closes never start.
TEST_F(HostilePeerTest, DisconnectedCallerCancelsQueuedSteps) {
  auto cluster = StartNodes(1);
  const std::string address = cluster->addresses()[0];
  auto observer = testing::Connect(io_, address, kSecret);
  Load(io_, *observer, Model(), 0, 4);
  SetNext(io_, *observer, "", 0, 1);
  auto info = [&]() { return observer->control.infoRequest().send().wait(io_.waitScope).getInfo(); };
  const uint64_t steps_before = info().getStepsComputed();
  {
    auto caller = testing::Connect(io_, address, kSecret);
    Opened s = Open(io_, *caller, 2048);
    testing::SinkOnStages sink = testing::SetSink(io_, {&s.session});
    auto first_done = sink.sink->Next(0);
    for (int i = 0; i < 8; ++i) {
      auto req = s.session.submitRequest();
      auto ids = req.initStep().initInput().initTokens(2000);
      for (unsigned j = 0; j < 2000; ++j) ids.set(j, 1 + j % 400);
      req.send().wait(io_.waitScope);  // taken: validated and queued
    }
    // The first step has run and the second has started: then the caller goes.
    io_.provider->getTimer().timeoutAfter(60 * kj::SECONDS, kj::mv(first_done)).wait(io_.waitScope);
  }
  ASSERT_TRUE(testing::WaitFor([&]() { return info().getActiveSessions() == 0; }, 30));
  // A step of the observer's own queues behind whatever is left: once it is
  // back, nothing of the caller's can still run.
  Opened probe = Open(io_, *observer, 16);
  testing::SubmitTokens(io_, probe.session, 0, {1});
  const uint64_t ran = info().getStepsComputed() - steps_before - 1;
  EXPECT_LE(ran, 3u) << "queued steps ran after their caller left";
  EXPECT_GE(ran, 1u) << "the first step ran before the caller left";
}

}  // namespace
}  // namespace strata
