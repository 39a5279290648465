// A node's memory under load: 64 sessions of random lengths on one real
// strata-node with a small RAM budget. Its accounting of weights, KV pages
// and buffers never exceeds the budget; what does not fit is refused with
// one clear error naming the tier and its budget, and the node serves on.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <kj/vector.h>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>

#include "coordinator/cluster/local_cluster.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

uint64_t RamUsed(kj::AsyncIoContext& io, PeerLink& link, uint64_t* budget) {
  auto info = link.control.infoRequest().send().wait(io.waitScope).getInfo();
  for (auto t : info.getTiers()) {
    if (std::string(t.getTier().cStr()) == "ram") {
      *budget = t.getBudgetBytes();
      return t.getUsedBytes();
    }
  }
  ADD_FAILURE() << "no ram tier in the node's info";
  return 0;
}

// Returns the node's swap counters.
wire::SwapCounters::Reader SwapOf(capnp::Response<wire::Control::InfoResults>& info) { return info.getInfo().getSwap(); }

// One round: every session asks at once for 1 to 160 more positions (the
// node sees 64 concurrent steps). Returns each refusal's message.
std::vector<std::string> StepEverySession(kj::AsyncIoContext& io, std::vector<wire::Session::Client>& sessions,
                                          std::vector<uint32_t>& lengths, std::mt19937& rng, int* served,
                                          int* refused) {
  kj::Vector<kj::Promise<void>> steps;
  std::vector<std::string> errors(sessions.size());
  for (size_t i = 0; i < sessions.size(); ++i) {
    const uint32_t n = 1 + rng() % 160;
    auto fill = [start = lengths[i], n, i](wire::Step::Builder step) {
      step.setStartPos(start);
      auto ids = step.initInput().initTokens(n);
      for (uint32_t j = 0; j < n; ++j) ids.set(j, static_cast<uint32_t>(1 + (j * 7 + i) % 400));
    };
    steps.add(testing::SubmitAsync(io, sessions[i], kj::mv(fill))
                  .then([&, i, n](uint32_t) { lengths[i] += n; ++*served; },
                        [&, i](kj::Exception&& e) { errors[i] = e.getDescription().cStr(); ++*refused; }));
  }
  kj::joinPromises(steps.releaseAsArray()).wait(io.waitScope);
  std::vector<std::string> refusals;
  for (auto& e : errors) {
    if (!e.empty()) refusals.push_back(kj::mv(e));
  }
  return refusals;
}

void RunSixtyFourSessions(bool swap) {
  testing::TempDir dir, swap_dir;
  TestModelSpec spec;
  spec.layers = 4;
  spec.hidden = 128;
  spec.heads = 4;
  spec.kv_heads = 4;
  spec.context = 2048;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  LocalClusterOptions o;
  o.nodes = 1;
  o.node_binary = testing::BinDir() + "/strata-node";
  o.models_dirs = {testing::TempRoot()};
  o.threads = 1;
  o.memory_per_node = 24u << 20;  // weights ~3 MiB; KV 4 KiB a token: room for a few thousand tokens
  if (swap) o.extra_args = {"--swap-dir", swap_dir.path(), "--swap-limit", "16MiB", "--kv-policy", "lru"};
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  auto io = kj::setupAsyncIo();
  auto link = testing::Connect(io, cluster.value()->addresses()[0], "");
  testing::Load(io, *link, dir / "m", 0, 4);
  testing::SetNext(io, *link, "", 0, 1);
  std::mt19937 rng(7);
  std::vector<wire::Session::Client> sessions;
  std::vector<uint32_t> lengths(64, 0);
  for (int i = 0; i < 64; ++i) sessions.push_back(testing::Open(io, *link, 2048).session);
  uint64_t budget = 0, peak = 0;
  int refused = 0, served = 0;
  for (int round = 0; round < 6; ++round) {
    for (const auto& e : StepEverySession(io, sessions, lengths, rng, &served, &refused)) {
      // The error names the tier that is full and its budget.
      EXPECT_NE(e.find("but the node's ram budget is"), std::string::npos) << e;
      if (swap) EXPECT_NE(e.find("nvme budget is"), std::string::npos) << e;
    }
    peak = std::max(peak, RamUsed(io, *link, &budget));
    // Half the sessions end; new ones take their place.
    for (size_t i = round % 2; i < sessions.size(); i += 2) {
      sessions[i] = nullptr;
      sessions[i] = testing::Open(io, *link, 2048).session;
      lengths[i] = 0;
    }
  }
  EXPECT_EQ(budget, 24u << 20);
  EXPECT_LE(peak, budget) << "the node's accounting went over its budget";
  EXPECT_GT(served, 64) << "most steps fit";
  EXPECT_GT(refused, 0) << "the budgets were small enough to refuse some";
  auto info = link->control.infoRequest().send().wait(io.waitScope);
  for (auto t : info.getInfo().getTiers()) EXPECT_LE(t.getUsedBytes(), t.getBudgetBytes()) << t.getTier().cStr();
  if (swap) {
    EXPECT_GT(SwapOf(info).getPagesOut(), 0u) << "RAM ran short, so pages went to NVMe";
    EXPECT_GT(SwapOf(info).getPagesIn(), 0u);
    EXPECT_EQ(SwapOf(info).getFailures(), 0u);
  }
  ::testing::Test::RecordProperty(swap ? "steps_served_with_swap" : "steps_served", served);
  ::testing::Test::RecordProperty(swap ? "steps_refused_with_swap" : "steps_refused", refused);
  // The node serves on.
  sessions.clear();
  auto s = testing::Open(io, *link, 16).session;
  EXPECT_LT(testing::SubmitTokens(io, s, 0, {1}), static_cast<uint32_t>(spec.vocab));
}

TEST(NodeMemoryTest, BudgetHoldsWith64SessionsOfRandomLengths) { RunSixtyFourSessions(false); }
TEST(NodeMemoryTest, BudgetsHoldWith64SessionsSwappingToNvme) { RunSixtyFourSessions(true); }

// Three real nodes with an NVMe tier; the CLI keeps a conversation, the
// nodes park its KV on disk, and a second CLI run continues it.
class KeptSessionTest : public ::testing::Test {
 protected:
  void Start(const std::string& ttl, int nodes = 3) {
    TestModelSpec spec;
    spec.layers = 6;
    spec.context = 512;
    testing::MakeModel(dir_ / "m", spec);
    LocalClusterOptions o;
    o.nodes = nodes;
    o.node_binary = testing::BinDir() + "/strata-node";
    o.models_dirs = {testing::TempRoot()};
    o.threads = 1;
    o.memory_per_node = 256u << 20;
    o.extra_args = {"--swap-dir", swap_.path(), "--session-ttl", ttl};
    auto cluster = LocalCluster::Start(o);
    ASSERT_TRUE(cluster.ok()) << cluster.status().message();
    cluster_ = std::move(cluster.value());
    for (const auto& a : cluster_->addresses()) nodes_ += (nodes_.empty() ? "" : ",") + a;
  }
  nlohmann::json Generate(std::vector<std::string> args, int expect_exit = 0, std::string* err = nullptr) {
    std::vector<std::string> argv = {testing::BinDir() + "/strata", "generate", "--model", dir_ / "m", "--nodes",
                                     nodes_, "--json", "--max-tokens", "12"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::RunProcess(argv);
    EXPECT_EQ(r.exit_code, expect_exit) << r.err;
    if (err != nullptr) *err = r.err;
    if (r.exit_code != 0) return nlohmann::json();
    return nlohmann::json::parse(r.out);
  }
  nlohmann::json::array_t Tokens(const nlohmann::json& j, const char* key) { return j[key]; }
  // The ids of a kept run and the prompt of its continuation, for --prompt-tokens.
  static std::string WholeConversation(const nlohmann::json& first, const nlohmann::json& second) {
    std::string ids;
    for (const auto* part : {&first["prompt_tokens"], &first["tokens"], &second["prompt_tokens"]}) {
      for (const auto& t : *part) ids += (ids.empty() ? "" : ",") + std::to_string(t.get<int>());
    }
    return ids;
  }
  testing::TempDir dir_, swap_;
  std::unique_ptr<LocalCluster> cluster_;
  std::string nodes_;
};

// On one node the first run decodes on the node, feeding its tokens back;
// the kept conversation still holds exactly what was generated, and its
// continuation is the uninterrupted run's.
TEST_F(KeptSessionTest, OneNodeFeedingBackKeepsExactlyTheConversation) {
  Start("600", 1);
  auto first = Generate({"--prompt", "the quick brown fox", "--keep-session"});
  ASSERT_TRUE(first.contains("session_id"));
  auto second = Generate({"--session", first["session_id"], "--prompt", " jumps over"});
  ASSERT_FALSE(second.is_null());
  EXPECT_EQ(second["position"], first["prompt_tokens"].size() + first["tokens"].size());
  const std::string ids = WholeConversation(first, second);
  auto whole = Generate({"--prompt-tokens", ids});
  ASSERT_FALSE(whole.is_null());
  EXPECT_EQ(second["tokens"], whole["tokens"]);
}

TEST_F(KeptSessionTest, ContinuesFromNvmeWithTheTokensOfOneUninterruptedRun) {
  Start("600");
  auto first = Generate({"--prompt", "the quick brown fox", "--keep-session"});
  ASSERT_TRUE(first.contains("session_id"));
  const std::string id = first["session_id"];
  auto io = kj::setupAsyncIo();
  // Every stage parked the idle conversation's KV on NVMe.
  for (const auto& a : cluster_->addresses()) {
    auto link = testing::Connect(io, a, "");
    for (int i = 0; i < 100; ++i) {
      auto info = link->control.infoRequest().send().wait(io.waitScope);
      if (SwapOf(info).getSessionsOnDisk() == 1) break;
      usleep(20000);
    }
    auto info = link->control.infoRequest().send().wait(io.waitScope);
    EXPECT_EQ(SwapOf(info).getSessionsOnDisk(), 1u) << a;
    EXPECT_EQ(info.getInfo().getKeptSessions(), 1u) << a;
  }
  auto second = Generate({"--session", id, "--prompt", " jumps over"});
  ASSERT_FALSE(second.is_null());
  const size_t held = first["prompt_tokens"].size() + first["tokens"].size();
  EXPECT_EQ(second["position"], held) << "the continuation starts after the whole first run";
  // The same conversation run in one go, token for token.
  const std::string ids = WholeConversation(first, second);
  // Its KV came back from disk rather than being recomputed.
  for (const auto& a : cluster_->addresses()) {
    auto link = testing::Connect(io, a, "");
    auto info = link->control.infoRequest().send().wait(io.waitScope);
    EXPECT_GE(SwapOf(info).getPagesIn(), 1u) << a;
    EXPECT_GE(SwapOf(info).getRamMisses(), 1u) << a;
  }
  auto whole = Generate({"--prompt-tokens", ids});
  ASSERT_FALSE(whole.is_null());
  EXPECT_EQ(second["tokens"], whole["tokens"]);
  // A session id nobody kept is refused with a reason.
  std::string err;
  Generate({"--session", std::string(32, 'a'), "--prompt", "x"}, 1, &err);
  EXPECT_NE(err.find("no kept session has that id"), std::string::npos) << err;
}

TEST_F(KeptSessionTest, ExpiresAfterItsTtlAndFreesItsPages) {
  Start("1");
  auto first = Generate({"--prompt", "the quick brown fox", "--keep-session"});
  ASSERT_TRUE(first.contains("session_id"));
  // Until every node has let it go (its TTL is 1 s).
  auto io = kj::setupAsyncIo();
  auto kept = [&]() {
    uint32_t n = 0;
    for (const auto& a : cluster_->addresses()) {
      auto link = testing::Connect(io, a, "");
      n += link->control.infoRequest().send().wait(io.waitScope).getInfo().getKeptSessions();
    }
    return n;
  };
  EXPECT_TRUE(testing::WaitFor([&]() { return kept() == 0; }, 30)) << "the kept session outlived its TTL";
  std::string err;
  Generate({"--session", first["session_id"], "--prompt", " more"}, 1, &err);
  EXPECT_NE(err.find("no kept session has that id"), std::string::npos) << err;
  for (const auto& a : cluster_->addresses()) {
    auto link = testing::Connect(io, a, "");
    auto info = link->control.infoRequest().send().wait(io.waitScope);
    EXPECT_EQ(info.getInfo().getKeptSessions(), 0u) << a;
    EXPECT_EQ(info.getInfo().getActiveSessions(), 0u) << a;
    EXPECT_EQ(SwapOf(info).getSessionsOnDisk(), 0u) << a;
    for (auto t : info.getInfo().getTiers()) {
      if (std::string(t.getTier().cStr()) == "nvme") EXPECT_EQ(t.getUsedBytes(), 0u) << a;
    }
  }
}

// Three real nodes whose RAM budgets hold a fraction of their shards: they
// stream the rest from NVMe at every token, and the logits equal those of
// nodes that hold everything in RAM, bit for bit.
TEST(NodeMemoryTest, ShardsBiggerThanRamStreamAndMatchInRamLogits) {
  testing::TempDir dir, swap;
  TestModelSpec spec;
  spec.hidden = 256;
  spec.intermediate = 688;
  spec.layers = 9;  // ~2.9 MB a layer in F32
  spec.context = 128;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  auto run = [&](const std::vector<std::string>& nodes_args, const std::string& logits) {
    std::vector<std::string> argv = {testing::BinDir() + "/strata", "generate", "--model", dir / "m", "--prompt",
                                     "a b c d e f", "--max-tokens", "10", "--json", "--logits-out", logits};
    argv.insert(argv.end(), nodes_args.begin(), nodes_args.end());
    return testing::RunProcess(argv, 300);
  };
  auto in_ram = run({"--local", "3", "--threads", "1"}, dir / "ram.bin");
  ASSERT_EQ(in_ram.exit_code, 0) << in_ram.err;

  LocalClusterOptions o;
  o.nodes = 3;
  o.node_binary = testing::BinDir() + "/strata-node";
    o.models_dirs = {testing::TempRoot()};
  o.threads = 1;
  o.memory_per_node = 8u << 20;  // a third of the model is ~9 MB: each node streams its layers
  // A --swap-dir that does not exist yet: each node makes it, private.
  const std::string swap_dir = swap / "not/yet";
  o.extra_args = {"--swap-dir", swap_dir};
  o.log_path = dir / "nodes.log";
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  std::string nodes;
  for (const auto& a : cluster.value()->addresses()) nodes += (nodes.empty() ? "" : ",") + a;
  auto streamed = run({"--nodes", nodes}, dir / "streamed.bin");
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  EXPECT_NE(streamed.err.find("stream the layers"), std::string::npos) << streamed.err;
  // Every node holds more weights than its RAM tier has charged: the rest
  // is on its NVMe tier.
  auto io = kj::setupAsyncIo();
  for (const auto& address : cluster.value()->addresses()) {
    auto link = testing::Connect(io, address, "");
    auto info = link->control.infoRequest().send().wait(io.waitScope).getInfo();
    uint64_t ram = 0, nvme = 0;
    for (auto t : info.getTiers()) {
      if (std::string(t.getTier().cStr()) == "ram") ram = t.getUsedBytes();
      if (std::string(t.getTier().cStr()) == "nvme") nvme = t.getUsedBytes();
      EXPECT_LE(t.getUsedBytes(), t.getBudgetBytes());
    }
    EXPECT_GT(info.getShardBytes(), ram) << address;
    EXPECT_GT(nvme, 0u) << address;
  }
  const std::string a = testing::ReadFile(dir / "ram.bin"), b = testing::ReadFile(dir / "streamed.bin");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "streamed logits differ from in-RAM logits";
  EXPECT_EQ(nlohmann::json::parse(in_ram.out)["tokens"], nlohmann::json::parse(streamed.out)["tokens"]);
  struct stat st {};
  ASSERT_EQ(::stat(swap_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

}  // namespace
}  // namespace strata
