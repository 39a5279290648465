// Continuous batching at the node, through real strata-node processes:
// decode steps of several sessions sent in one Control.submitBatch (members
// named by their Session capabilities) are computed together on every stage
// (the hand-on goes as one Upstream.submitBatch) and each session's tokens
// are exactly those it gets alone; a member that fails its checks is
// reported to its own sink while the others run; a capability this node
// did not issue refuses the whole batch; guessed tickets run nothing. A
// one-stage pipeline decodes on the node (Step.feedBack): the tokens it
// feeds back are the tokens of steps sent one by one, it stops at a stop
// token, at the count and at Session.halt, and feedback is refused where it
// cannot run.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "coordinator/cli/test_model.h"
#include "coordinator/cluster/local_cluster.h"
#include "protocol/peer_auth.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::ErrorOf;
using testing::Load;
using testing::Open;
using testing::Opened;
using testing::RecordingSink;
using testing::SetNext;
using testing::SubmitTokens;
using testing::TempDir;

constexpr const char* kSecret = "batch-test-secret-0123456789abcdef";

class BatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestModelSpec spec;
    spec.layers = 4;
    spec.tokenizer_vocab = 200;
    testing::MakeModel(dir_ / "m", spec);
  }
  std::unique_ptr<LocalCluster> StartNodes(int n) {
    LocalClusterOptions o;
    o.nodes = n;
    o.node_binary = testing::BinDir() + "/strata-node";
    o.models_dirs = {testing::TempRoot()};
    o.threads = 1;
    o.secret = kSecret;
    o.log_path = dir_ / "nodes.log";
    auto c = LocalCluster::Start(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return std::move(c.value());
  }
  std::string Model() const { return dir_ / "m"; }
  // `node` holds every layer: a pipeline of one stage.
  void OneStage(PeerLink& node) {
    Load(io_, node, Model(), 0, 4);
    SetNext(io_, node, "", 0, 1);
  }
  // a holds layers [0, 2) and hands on to b (at b_address), which holds [2, 4).
  void TwoStages(PeerLink& a, PeerLink& b, const std::string& b_address) {
    Load(io_, a, Model(), 0, 2);
    Load(io_, b, Model(), 2, 4);
    SetNext(io_, b, "", 1, 2);
    SetNext(io_, a, b_address, 0, 2);
  }
  void Wait(const std::function<bool()>& done) {
    for (int i = 0; i < 5000 && !done(); ++i) io_.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(io_.waitScope);
  }
  // Steps computed, and forwards they were computed in.
  uint64_t Rows(PeerLink& link) { return link.control.infoRequest().send().wait(io_.waitScope).getInfo().getBatchRows(); }
  uint64_t Batches(PeerLink& link) { return link.control.infoRequest().send().wait(io_.waitScope).getInfo().getBatches(); }

  TempDir dir_;
  std::unique_ptr<kj::AsyncIoContext> io_holder_ = std::make_unique<kj::AsyncIoContext>(kj::setupAsyncIo());
  kj::AsyncIoContext& io_ = *io_holder_;
};

// One session of a pipeline of one or two stages (a == b: one), with a
// recording sink on every stage.
struct Conversation {
  Opened first, last;
  RecordingSink* sink = nullptr;  // owned by the capability the stages hold
  uint32_t pos = 0;
};

Conversation OpenConversation(kj::AsyncIoContext& io, PeerLink& a, PeerLink& b, uint32_t capacity = 64) {
  Conversation c;
  if (&a != &b) c.last = Open(io, b, capacity);
  c.first = Open(io, a, capacity, c.last.ticket);
  auto owned = kj::heap<RecordingSink>();
  c.sink = owned.get();
  wire::StepSink::Client sink = kj::mv(owned);
  for (auto* s : {&c.first.session, &c.last.session}) {
    if (s == &c.last.session && &a == &b) continue;
    auto set = s->setSinkRequest();
    set.setSink(sink);
    set.send().wait(io.waitScope);
  }
  return c;
}

void FillTokens(wire::Step::Builder step, uint32_t start, const std::vector<uint32_t>& tokens) {
  step.setStartPos(start);
  step.setSample(true);
  auto ids = step.initInput().initTokens(static_cast<unsigned>(tokens.size()));
  for (size_t i = 0; i < tokens.size(); ++i) ids.set(static_cast<unsigned>(i), tokens[i]);
}

TEST_F(BatchTest, BatchedStepsEqualStepsAloneOnEveryStage) {
  auto cluster = StartNodes(2);
  auto a = testing::Connect(io_, cluster->addresses()[0], kSecret);
  auto b = testing::Connect(io_, cluster->addresses()[1], kSecret);
  TwoStages(*a, *b, cluster->addresses()[1]);
  const std::vector<std::vector<uint32_t>> prompts = {{1, 2, 3}, {7}, {9, 10, 11, 12, 13}, {42, 5}, {100, 3, 8}};
  const int kSteps = 6;
  // Alone: each prompt, then greedy tokens, one step at a time.
  std::vector<std::vector<uint32_t>> alone(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    Opened last = Open(io_, *b, 64);
    Opened first = Open(io_, *a, 64, last.ticket);
    uint32_t pos = 0;
    uint32_t token = SubmitTokens(io_, first.session, pos, prompts[i], {&last.session});
    pos += static_cast<uint32_t>(prompts[i].size());
    alone[i].push_back(token);
    for (int s = 0; s < kSteps; ++s) {
      alone[i].push_back(token = SubmitTokens(io_, first.session, pos++, {token}, {&last.session}));
    }
  }
  // Together: prompts submitted alone, then every decode step in one batch.
  std::vector<Conversation> c;
  for (size_t i = 0; i < prompts.size(); ++i) {
    c.push_back(OpenConversation(io_, *a, *b));
    auto req = c[i].first.session.submitRequest();
    FillTokens(req.initStep(), 0, prompts[i]);
    req.send().wait(io_.waitScope);
    c[i].pos = static_cast<uint32_t>(prompts[i].size());
  }
  uint64_t rows_a = 0, batches_a = 0, rows_b = 0, batches_b = 0;
  for (int s = 0; s <= kSteps; ++s) {
    Wait([&]() {
      for (auto& k : c) if (k.sink->results.size() < static_cast<size_t>(s + 1)) return false;
      return true;
    });
    if (s == 0) {  // the prompts are in: count from here
      rows_a = Rows(*a), batches_a = Batches(*a), rows_b = Rows(*b), batches_b = Batches(*b);
    }
    if (s == kSteps) break;
    auto req = a->control.submitBatchRequest();
    auto list = req.initSteps(static_cast<unsigned>(c.size()));
    for (size_t i = 0; i < c.size(); ++i) {
      ASSERT_EQ(c[i].sink->results.size(), static_cast<size_t>(s + 1)) << "session " << i << " step " << s;
      list[static_cast<unsigned>(i)].setSession(c[i].first.session);
      FillTokens(list[static_cast<unsigned>(i)].initStep(), c[i].pos++, {c[i].sink->results.back().second});
    }
    req.send().wait(io_.waitScope);
  }
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_TRUE(c[i].sink->failures.empty()) << c[i].sink->failures.front();
    std::vector<uint32_t> tokens;
    for (const auto& r : c[i].sink->results) tokens.push_back(r.second);
    EXPECT_EQ(tokens, alone[i]) << "session " << i;
  }
  // Both stages computed the decode steps in batches, not one by one.
  const uint64_t steps = prompts.size() * kSteps;
  EXPECT_EQ(Rows(*a) - rows_a, steps);
  EXPECT_EQ(Rows(*b) - rows_b, steps);
  EXPECT_LE(Batches(*a) - batches_a, steps / 2) << "the first stage batched them";
  EXPECT_LE(Batches(*b) - batches_b, steps / 2) << "the hand-on kept them together";
}

// A member that fails its checks is reported to its own sink; the others
// run. A Session capability another node issued refuses the whole batch,
// before any member runs.
TEST_F(BatchTest, BadMembersFailAloneAndForeignCapabilitiesAreRefused) {
  auto cluster = StartNodes(2);
  auto a = testing::Connect(io_, cluster->addresses()[0], kSecret);
  auto other = testing::Connect(io_, cluster->addresses()[1], kSecret);
  OneStage(*a);
  OneStage(*other);
  Conversation good = OpenConversation(io_, *a, *a), bad = OpenConversation(io_, *a, *a);
  auto req = a->control.submitBatchRequest();
  auto list = req.initSteps(2);
  list[0].setSession(good.first.session);
  FillTokens(list[0].initStep(), 0, {5});
  list[1].setSession(bad.first.session);
  FillTokens(list[1].initStep(), 0, {1u << 30});
  EXPECT_EQ(ErrorOf([&]() { req.send().wait(io_.waitScope); }), "");
  Wait([&]() { return !good.sink->results.empty() && !bad.sink->failures.empty(); });
  ASSERT_EQ(good.sink->results.size(), 1u);
  ASSERT_EQ(bad.sink->failures.size(), 1u);
  EXPECT_NE(bad.sink->failures[0].find("outside the vocabulary"), std::string::npos) << bad.sink->failures[0];
  EXPECT_TRUE(bad.sink->results.empty());
  // A session of another node, smuggled into this node's batch.
  Opened foreign = Open(io_, *other, 64);
  const uint64_t before = Rows(*a);
  auto smuggled = a->control.submitBatchRequest();
  auto members = smuggled.initSteps(2);
  members[0].setSession(good.first.session);
  FillTokens(members[0].initStep(), 1, {6});
  members[1].setSession(foreign.session);
  FillTokens(members[1].initStep(), 0, {6});
  EXPECT_NE(ErrorOf([&]() { smuggled.send().wait(io_.waitScope); }).find("not a session this node opened"),
            std::string::npos);
  io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).wait(io_.waitScope);
  EXPECT_EQ(Rows(*a), before) << "nothing of the refused batch ran";
}

// A stage-role peer guessing tickets in Upstream.submitBatch runs nothing,
// and an oversized batch is refused outright.
TEST_F(BatchTest, GuessedTicketsInABatchRunNothing) {
  auto cluster = StartNodes(1);
  auto owner = testing::Connect(io_, cluster->addresses()[0], kSecret);
  OneStage(*owner);
  Conversation mine = OpenConversation(io_, *owner, *owner);
  const uint64_t before = Rows(*owner);
  auto intruder = testing::Connect(io_, cluster->addresses()[0], kSecret, wire::PeerRole::STAGE);
  auto req = intruder->upstream.submitBatchRequest();
  req.setHop(0);
  auto list = req.initSteps(8);
  for (unsigned i = 0; i < 8; ++i) {
    const Bytes guess = RandomBytes(kTicketBytes);
    list[i].setTicket(kj::arrayPtr(guess.data(), guess.size()));
    FillTokens(list[i].initStep(), 0, {1});
  }
  EXPECT_EQ(ErrorOf([&]() { req.send().wait(io_.waitScope); }), "") << "members are refused one by one";
  auto huge = intruder->upstream.submitBatchRequest();
  huge.initSteps(1025);
  EXPECT_NE(ErrorOf([&]() { huge.send().wait(io_.waitScope); }).find("over 1024"), std::string::npos);
  io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).wait(io_.waitScope);
  EXPECT_EQ(Rows(*owner), before);
  EXPECT_TRUE(mine.sink->results.empty() && mine.sink->failures.empty()) << "the owner's session saw nothing";
}

// Sessions' tokens in one list, from the sink.
std::vector<uint32_t> Tokens(const RecordingSink& sink) {
  std::vector<uint32_t> tokens;
  for (const auto& r : sink.results) tokens.push_back(r.second);
  return tokens;
}

void FillFeedBack(wire::Step::Builder step, uint32_t start, const std::vector<uint32_t>& tokens, uint32_t more,
                  const std::vector<uint32_t>& stops = {}) {
  FillTokens(step, start, tokens);
  step.setFeedBack(more);
  auto list = step.initStopTokens(static_cast<unsigned>(stops.size()));
  for (size_t i = 0; i < stops.size(); ++i) list.set(static_cast<unsigned>(i), stops[i]);
}

// Three sessions fed back at once: each gets the tokens it gets one step at
// a time, at consecutive positions, and the node computes them together.
TEST_F(BatchTest, FedBackTokensAreTheTokensOfStepsSentOneByOne) {
  auto cluster = StartNodes(1);
  auto a = testing::Connect(io_, cluster->addresses()[0], kSecret);
  OneStage(*a);
  const std::vector<std::vector<uint32_t>> prompts = {{1, 2, 3}, {7}, {42, 5}};
  const uint32_t kMore = 12;
  std::vector<std::vector<uint32_t>> alone(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    Opened s = Open(io_, *a, 64);
    uint32_t pos = static_cast<uint32_t>(prompts[i].size());
    uint32_t token = SubmitTokens(io_, s.session, 0, prompts[i]);
    alone[i].push_back(token);
    for (uint32_t k = 0; k < kMore; ++k) alone[i].push_back(token = SubmitTokens(io_, s.session, pos++, {token}));
  }
  std::vector<Conversation> c;
  for (size_t i = 0; i < prompts.size(); ++i) c.push_back(OpenConversation(io_, *a, *a));
  const uint64_t rows = Rows(*a), batches = Batches(*a);
  auto req = a->control.submitBatchRequest();
  auto list = req.initSteps(static_cast<unsigned>(c.size()));
  for (size_t i = 0; i < c.size(); ++i) {
    list[static_cast<unsigned>(i)].setSession(c[i].first.session);
    FillFeedBack(list[static_cast<unsigned>(i)].initStep(), 0, prompts[i], kMore);
  }
  req.send().wait(io_.waitScope);
  Wait([&]() {
    for (auto& k : c) if (k.sink->results.size() < kMore + 1) return false;
    return true;
  });
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_TRUE(c[i].sink->failures.empty()) << c[i].sink->failures.front();
    EXPECT_EQ(Tokens(*c[i].sink), alone[i]) << "session " << i;
    for (size_t k = 0; k < c[i].sink->results.size(); ++k) {
      EXPECT_EQ(c[i].sink->results[k].first, k == 0 ? 0 : prompts[i].size() + k - 1) << "session " << i;
    }
  }
  EXPECT_EQ(Rows(*a) - rows, c.size() * (kMore + 1)) << "the count is the count: nothing past it ran";
  EXPECT_LE(Batches(*a) - batches, (kMore + 1) * 2) << "the fed-back steps shared forwards";
}

// A session feeding back alone makes its steps on the node without a trip
// through the event loop per token; a session that opens and steps while it
// runs is served at once (the run yields to it and they share forwards),
// and the run's tokens are those of the run undisturbed.
TEST_F(BatchTest, ARunYieldsToOtherWorkAndKeepsItsTokens) {
  auto cluster = StartNodes(1);
  auto a = testing::Connect(io_, cluster->addresses()[0], kSecret);
  OneStage(*a);
  const uint32_t kMore = 250;  // the model's whole context of 256
  Conversation undisturbed = OpenConversation(io_, *a, *a, 256);
  auto req = undisturbed.first.session.submitRequest();
  FillFeedBack(req.initStep(), 0, {1, 2, 3}, kMore);
  req.send().wait(io_.waitScope);
  Wait([&]() { return undisturbed.sink->results.size() >= kMore + 1; });
  ASSERT_EQ(undisturbed.sink->results.size(), kMore + 1);

  Conversation run = OpenConversation(io_, *a, *a, 256);
  auto again = run.first.session.submitRequest();
  FillFeedBack(again.initStep(), 0, {1, 2, 3}, kMore);
  again.send().wait(io_.waitScope);
  Wait([&]() { return !run.sink->results.empty(); });
  Conversation other = OpenConversation(io_, *a, *a);  // opening needs the compute thread too
  auto step = other.first.session.submitRequest();
  FillTokens(step.initStep(), 0, {7, 8});
  step.send().wait(io_.waitScope);
  Wait([&]() { return !other.sink->results.empty(); });
  ASSERT_EQ(other.sink->results.size(), 1u);
  EXPECT_LT(run.sink->results.size(), kMore + 1) << "the other session waited for the whole run";
  Wait([&]() { return run.sink->results.size() >= kMore + 1; });
  EXPECT_TRUE(run.sink->failures.empty());
  EXPECT_EQ(Tokens(*run.sink), Tokens(*undisturbed.sink));
  for (size_t k = 1; k < run.sink->results.size(); ++k) EXPECT_EQ(run.sink->results[k].first, k + 2);
}

// Feeding back ends after a stop token, and at a halt: a step submitted
// after the halt runs, and nothing fed back comes after it.
TEST_F(BatchTest, FeedBackEndsAtAStopTokenAndAtAHalt) {
  auto cluster = StartNodes(1);
  auto a = testing::Connect(io_, cluster->addresses()[0], kSecret);
  OneStage(*a);
  Conversation first = OpenConversation(io_, *a, *a);
  auto req = first.first.session.submitRequest();
  FillFeedBack(req.initStep(), 0, {1, 2, 3}, 8);
  req.send().wait(io_.waitScope);
  Wait([&]() { return first.sink->results.size() >= 9; });
  const std::vector<uint32_t> all = Tokens(*first.sink);
  ASSERT_EQ(all.size(), 9u);
  // The same prompt with the fourth token as a stop token (and one the
  // vocabulary has not): its results end with it.
  Conversation stopped = OpenConversation(io_, *a, *a);
  auto again = stopped.first.session.submitRequest();
  FillFeedBack(again.initStep(), 0, {1, 2, 3}, 8, {all[3], 1u << 30});
  again.send().wait(io_.waitScope);
  Wait([&]() { return stopped.sink->results.size() >= 4; });
  const uint64_t rows = Rows(*a);
  auto probe = stopped.first.session.submitRequest();  // behind anything the node still had
  FillTokens(probe.initStep(), 0, {9});
  probe.send().wait(io_.waitScope);
  Wait([&]() { return stopped.sink->results.size() >= 5; });
  EXPECT_EQ(Rows(*a) - rows, 1u) << "nothing was fed back after the stop token";
  ASSERT_EQ(stopped.sink->results.size(), 5u);
  const std::vector<uint32_t> got = Tokens(*stopped.sink);
  EXPECT_EQ(std::vector<uint32_t>(all.begin(), all.begin() + 4), std::vector<uint32_t>(got.begin(), got.begin() + 4));
  // A long feedback (the model's whole context) halted after its first
  // result, while the node makes its steps.
  Conversation halted = OpenConversation(io_, *a, *a, 256);
  auto longer = halted.first.session.submitRequest();
  FillFeedBack(longer.initStep(), 0, {1, 2, 3}, 250);
  longer.send().wait(io_.waitScope);
  Wait([&]() { return !halted.sink->results.empty(); });
  halted.first.session.haltRequest().send().wait(io_.waitScope);
  auto after = halted.first.session.submitRequest();
  FillTokens(after.initStep(), 0, {9});
  after.send().wait(io_.waitScope);
  Wait([&]() { return !halted.sink->results.empty() && halted.sink->results.back().first == 0 &&
                      halted.sink->results.size() > 1; });
  const size_t seen = halted.sink->results.size();
  EXPECT_LT(seen, 251u) << "the halt stopped the feedback";
  // Once more behind it: nothing fed back came between the two.
  auto last = halted.first.session.submitRequest();
  FillTokens(last.initStep(), 0, {10});
  last.send().wait(io_.waitScope);
  Wait([&]() { return halted.sink->results.size() > seen; });
  ASSERT_EQ(halted.sink->results.size(), seen + 1);
  EXPECT_EQ(halted.sink->results.back().first, 0u);
  EXPECT_TRUE(halted.sink->failures.empty());
}

// Feedback only where it can run: a pipeline of one stage, a sampled step,
// positions within the session, at most 16 stop tokens, and through submit.
TEST_F(BatchTest, FeedBackIsRefusedWhereItCannotRun) {
  auto cluster = StartNodes(2);
  auto a = testing::Connect(io_, cluster->addresses()[0], kSecret);
  auto b = testing::Connect(io_, cluster->addresses()[1], kSecret);
  TwoStages(*a, *b, cluster->addresses()[1]);
  Conversation two = OpenConversation(io_, *a, *b);
  auto split = two.first.session.submitRequest();
  FillFeedBack(split.initStep(), 0, {1, 2}, 4);
  EXPECT_NE(ErrorOf([&]() { split.send().wait(io_.waitScope); }).find("only a pipeline of one stage"), std::string::npos);
  OneStage(*a);
  Conversation one = OpenConversation(io_, *a, *a);  // capacity 64
  auto over = one.first.session.submitRequest();
  FillFeedBack(over.initStep(), 0, {1, 2}, 63);
  EXPECT_NE(ErrorOf([&]() { over.send().wait(io_.waitScope); }).find("exceed the session's capacity"), std::string::npos);
  auto stops = one.first.session.submitRequest();
  FillFeedBack(stops.initStep(), 0, {1, 2}, 4, std::vector<uint32_t>(17, 5));
  EXPECT_NE(ErrorOf([&]() { stops.send().wait(io_.waitScope); }).find("over 16 stop tokens"), std::string::npos);
  auto unsampled = one.first.session.submitRequest();
  FillFeedBack(unsampled.initStep(), 0, {1, 2}, 4);
  unsampled.getStep().setSample(false);
  EXPECT_NE(ErrorOf([&]() { unsampled.send().wait(io_.waitScope); }).find("does not sample"), std::string::npos);
  // The largest count that fits runs to the session's end.
  auto fits = one.first.session.submitRequest();
  FillFeedBack(fits.initStep(), 0, {1, 2}, 62);
  fits.send().wait(io_.waitScope);
  Wait([&]() { return one.sink->results.size() >= 63 || !one.sink->failures.empty(); });
  EXPECT_EQ(one.sink->results.size(), 63u);
  EXPECT_TRUE(one.sink->failures.empty()) << one.sink->failures.front();
}

}  // namespace
}  // namespace strata
