// Integration: real strata-node processes on loopback, driven by the real
// strata CLI or by a raw Cap'n Proto client. Every node is stopped at the end
// of its test (LocalCluster's destructor), pass or fail.
#include <capnp/rpc-twoparty.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <kj/async-io.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "coordinator/cluster/local_cluster.h"
#include "coordinator/pipeline/pipeline.h"
#include "protocol/tensor_codec.h"
#include "protocol/version.h"
#include "tests/lying_stage.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using json = nlohmann::json;
using testing::RunProcess;
using testing::TempDir;

std::unique_ptr<LocalCluster> StartNodes(int n, int threads = 1, LocalClusterOptions o = {}) {
  o.nodes = n;
  o.node_binary = testing::BinDir() + "/strata-node";
    o.models_dirs = {testing::TempRoot()};
  o.threads = threads;
  auto c = LocalCluster::Start(o);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return std::move(c.value());
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::vector<std::string> Generate(const std::string& model, std::vector<std::string> extra) {
  std::vector<std::string> argv = {testing::BinDir() + "/strata", "generate", "--model", model, "--prompt",
                                   "Everyone is permitted to copy", "--max-tokens", "24", "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

json ParseJson(const testing::ProcessResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

class PipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    TestModelSpec f32;
    f32.layers = 6;
    f32.tokenizer_vocab = 300;
    testing::MakeModel(*dir_ / "f32", f32);
    TestModelSpec bf16 = f32;
    bf16.dtype = DType::kBF16;
    bf16.files = 2;
    testing::MakeModel(*dir_ / "bf16", bf16);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Model(const char* name) { return *dir_ / name; }
  static TempDir* dir_;
};
TempDir* PipelineTest::dir_ = nullptr;

// Three real nodes produce exactly the tokens and logits of one node; with
// `nodes` options (a secret, TLS) and the coordinator flags that match.
void ExpectSplitIsExact(const std::string& model, const std::string& dtype, LocalClusterOptions nodes = {},
                        std::vector<std::string> flags = {}) {
  TempDir out;
  auto one = RunProcess(Generate(model, {"--local", "1", "--threads", "1", "--dtype", dtype, "--logits-out", out / "one"}));
  auto cluster = StartNodes(3, 1, nodes);
  flags.insert(flags.end(), {"--nodes", Join(cluster->addresses()), "--dtype", dtype, "--logits-out", out / "three"});
  auto three = RunProcess(Generate(model, flags));
  json a = ParseJson(one), b = ParseJson(three);
  ASSERT_EQ(b["plan"].size(), 3u);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  EXPECT_EQ(a["text"], b["text"]);
  const std::string la = testing::ReadFile(out / "one"), lb = testing::ReadFile(out / "three");
  EXPECT_EQ(la.size(), a["tokens"].size() * 512 * sizeof(float)) << "one row of vocab f32 per generated token";
  EXPECT_TRUE(la == lb) << "logits differ between 1 and 3 nodes";
  // Without logits one node decodes on its own, feeding its tokens back: the same tokens.
  json fed = ParseJson(RunProcess(Generate(model, {"--local", "1", "--threads", "1", "--dtype", dtype})));
  EXPECT_EQ(fed["tokens"], a["tokens"]);
}

TEST_F(PipelineTest, ThreeNodesMatchOneNodeF32) { ExpectSplitIsExact(Model("f32"), "f32"); }
TEST_F(PipelineTest, ThreeNodesMatchOneNodeBf16) { ExpectSplitIsExact(Model("bf16"), "bf16"); }

// The cluster's own secret and TLS change nothing in the numbers.
TEST_F(PipelineTest, ThreeNodesMatchOneNodeWithSecretAndTls) {
  TempDir keys;
  auto made = RunProcess({testing::BinDir() + "/strata", "make-secret", "--out", keys / "secret", "--tls", keys / "tls"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  struct stat st;
  ASSERT_EQ(::stat((keys / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((keys / "tls/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string secret = testing::ReadFile(keys / "secret");
  secret.erase(secret.find_last_not_of("\n") + 1);
  LocalClusterOptions nodes;
  nodes.secret = secret;
  ExpectSplitIsExact(Model("bf16"), "bf16", nodes, {"--cluster-secret-file", keys / "secret"});
  nodes.tls_cert = keys / "tls/cert.pem";
  nodes.tls_key = keys / "tls/key.pem";
  nodes.tls_ca = keys / "tls/ca.pem";
  ExpectSplitIsExact(Model("f32"), "f32", nodes, {"--cluster-secret-file", keys / "secret", "--tls-dir", keys / "tls"});
  // --local with TLS: the nodes it starts speak TLS too.
  json local = ParseJson(RunProcess(Generate(Model("f32"), {"--local", "2", "--threads", "1", "--tls-dir", keys / "tls"})));
  EXPECT_EQ(local["tokens"].size(), 24u);
  // --local --tls with no files: a CA of the run's own, gone when it ends.
  TempDir tmp;
  const char* was = std::getenv("TMPDIR");
  const std::string saved = was != nullptr ? was : "";
  ::setenv("TMPDIR", tmp.path().c_str(), 1);
  auto ephemeral = RunProcess(Generate(Model("f32"), {"--local", "2", "--threads", "1", "--tls"}));
  was != nullptr ? ::setenv("TMPDIR", saved.c_str(), 1) : ::unsetenv("TMPDIR");
  ASSERT_EQ(ephemeral.exit_code, 0) << ephemeral.err;
  EXPECT_EQ(ParseJson(ephemeral)["tokens"], local["tokens"]);
  EXPECT_EQ(ParseJson(ephemeral)["links"], "secret+tls");  // and a TLS link to a plain node fails its hello
  EXPECT_EQ(local["links"], "secret+tls");
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path())) << "the run's TLS files outlived it";
  // A TLS cluster refuses a plain client and one whose CA is another cluster's.
  auto cluster = StartNodes(1, 1, nodes);
  auto plain = RunProcess({testing::BinDir() + "/strata", "status", "--nodes", cluster->addresses()[0],
                           "--cluster-secret-file", keys / "secret", "--connect-timeout-ms", "3000"});
  EXPECT_EQ(plain.exit_code, 1) << plain.out;
  ASSERT_EQ(RunProcess({testing::BinDir() + "/strata", "make-secret", "--out", keys / "other", "--tls", keys / "other-tls"})
                .exit_code, 0);
  auto stranger = RunProcess({testing::BinDir() + "/strata", "status", "--nodes", cluster->addresses()[0],
                              "--cluster-secret-file", keys / "secret", "--tls-dir", keys / "other-tls",
                              "--connect-timeout-ms", "3000"});
  EXPECT_EQ(stranger.exit_code, 1) << stranger.out;
  auto member = RunProcess({testing::BinDir() + "/strata", "status", "--nodes", cluster->addresses()[0],
                            "--cluster-secret-file", keys / "secret", "--tls-dir", keys / "tls"});
  EXPECT_EQ(member.exit_code, 0) << member.out;
  EXPECT_NE(member.out.find("secret+tls"), std::string::npos) << member.out;
  // Each node's CPU probe and the kernel path it runs per weight type.
  EXPECT_NE(member.out.find("cpu: "), std::string::npos) << member.out;
  EXPECT_NE(member.out.find("kernels: f32:"), std::string::npos) << member.out;
  EXPECT_NE(member.out.find("q4_k:"), std::string::npos) << member.out;
  auto again = RunProcess({testing::BinDir() + "/strata", "make-secret", "--out", keys / "secret"});
  EXPECT_NE(again.err.find("never overwrites"), std::string::npos) << again.err;
}

TEST_F(PipelineTest, SeededSamplingRepeatsAcrossSplits) {
  const std::vector<std::string> sampling = {"--temperature", "0.9", "--top-k", "40", "--top-p", "0.95", "--seed", "7"};
  auto extra = sampling;
  extra.insert(extra.end(), {"--local", "1", "--threads", "1"});
  json a = ParseJson(RunProcess(Generate(Model("f32"), extra)));
  extra = sampling;
  extra.insert(extra.end(), {"--local", "2", "--threads", "1"});
  json b = ParseJson(RunProcess(Generate(Model("f32"), extra)));
  EXPECT_EQ(a["tokens"], b["tokens"]);
  extra = {"--temperature", "0.9", "--seed", "8", "--local", "2", "--threads", "1"};
  json c = ParseJson(RunProcess(Generate(Model("f32"), extra)));
  EXPECT_NE(a["tokens"], c["tokens"]) << "another seed gives another sample";
}

TEST_F(PipelineTest, StreamsTextAndPrintsSummary) {
  auto r = RunProcess({testing::BinDir() + "/strata", "generate", "--model", Model("f32"), "--local", "2", "--threads", "1",
                "--prompt", "the licence", "--max-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_NE(r.err.find("decode"), std::string::npos);
  EXPECT_NE(r.err.find("tok/s"), std::string::npos);
  EXPECT_NE(r.err.find("stage 1: local-1"), std::string::npos) << r.err;
}

// Two coordinators share the same nodes: each has its own session (its own
// KV cache) and gets exactly the tokens it gets alone.
TEST_F(PipelineTest, ConcurrentSessionsShareNodes) {
  auto cluster = StartNodes(2);
  const std::vector<std::string> nodes = {"--nodes", Join(cluster->addresses())};
  json alone = ParseJson(RunProcess(Generate(Model("f32"), nodes)));
  auto second = Generate(Model("f32"), nodes);
  second[5] = "The licence is";
  testing::Child a(Generate(Model("f32"), nodes)), b(second);
  int code_a = -1, code_b = -1;
  ASSERT_TRUE(a.Wait(60, &code_a));
  ASSERT_TRUE(b.Wait(60, &code_b));
  ASSERT_EQ(code_a, 0) << a.Stderr();
  ASSERT_EQ(code_b, 0) << b.Stderr();
  EXPECT_EQ(json::parse(a.Stdout())["tokens"], alone["tokens"]);
  json other = json::parse(b.Stdout());
  EXPECT_EQ(other["tokens"].size(), 24u);
  EXPECT_NE(other["tokens"], alone["tokens"]);
}

TEST_F(PipelineTest, KilledNodeFailsTheRequestQuickly) {
  TempDir dir;
  TestModelSpec spec;
  spec.layers = 6;
  spec.context = 8192;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  auto cluster = StartNodes(3);
  testing::Child cli({testing::BinDir() + "/strata", "generate", "--model", dir / "m", "--nodes",
                      Join(cluster->addresses()), "--prompt", "a long story", "--max-tokens", "8000"});
  // Wait until text streams, then kill the middle node.
  for (int i = 0; i < 400 && cli.Stdout().size() < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_GE(cli.Stdout().size(), 20u) << "generation never started: " << cli.Stderr();
  ::kill(cluster->pids()[1], SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  int code = 0;
  ASSERT_TRUE(cli.Wait(10, &code)) << "the CLI hung after a node died";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(code, 0);
  EXPECT_LT(seconds, 5.0);
  const std::string err = cli.Stderr();
  EXPECT_NE(err.find("strata: "), std::string::npos) << err;
  EXPECT_NE(err.find(cluster->addresses()[1]), std::string::npos) << "the error names the dead node: " << err;
  EXPECT_EQ(err.find("exception:"), std::string::npos) << "no KJ prefix reaches the user: " << err;
}

// A deadline is told by the deadline itself, not by a failure's words: a
// peer's error that says "operation timed out" stays that peer's error.
TEST(RpcEnvTest, ATimeoutIsTheDeadlinesAndNamedWithIt) {
  auto io = kj::setupAsyncIo();
  RpcEnv env(io, Timeouts{});
  auto never = kj::newPromiseAndFulfiller<void>();
  try {
    env.Await(kj::mv(never.promise), 50, "waiting for the node");
    ADD_FAILURE() << "a promise that never resolves returned";
  } catch (const PipelineError& e) {
    EXPECT_STREQ(e.what(), "waiting for the node: timed out after 50 ms");
  }
  kj::Promise<void> lying = kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                          kj::str("remote exception: operation timed out"));
  try {
    env.Await(kj::mv(lying), 10000, "node 1");
    ADD_FAILURE() << "a failed promise returned";
  } catch (const PipelineError& e) {
    EXPECT_STREQ(e.what(), "node 1: operation timed out");
  }
}

// KJ wraps a std::exception thrown in a continuation as "std::exception: ..."
// and a peer's as "remote exception: ..."; neither says anything to a user.
TEST(ExceptionTextTest, DropsHowTheErrorTravelledAndEscapesPeerBytes) {
  kj::Maybe<kj::Exception> wrapped =
      kj::runCatchingExceptions([]() { throw std::runtime_error("node local-1 (127.0.0.1:5): gone\n"); });
  KJ_IF_MAYBE(e, wrapped) {
    EXPECT_NE(std::string(e->getDescription().cStr()).find("std::exception: "), std::string::npos);
    EXPECT_EQ(ExceptionText(*e), "node local-1 (127.0.0.1:5): gone\\x0a");
  } else {
    ADD_FAILURE() << "nothing was thrown";
  }
  kj::Exception remote(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                       kj::str("remote exception: std::exception: the stage failed"));
  EXPECT_EQ(ExceptionText(remote), "the stage failed (disconnected)");
}

TEST_F(PipelineTest, UnreachableNodeIsNamed) {
  auto r = RunProcess(Generate(Model("f32"), {"--nodes", "127.0.0.1:1", "--connect-timeout-ms", "3000"}), 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot reach node at 127.0.0.1:1"), std::string::npos) << r.err;
  // Every hello goes at once; the node named is the first in the given order
  // that did not answer, whichever refused first.
  r = RunProcess(Generate(Model("f32"), {"--nodes", "127.0.0.1:2,127.0.0.1:1", "--connect-timeout-ms", "3000"}), 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot reach node at 127.0.0.1:2"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
}

// A last stage is a peer like any other: its reply is checked before any
// of it is used, and a lie fails the run naming that stage (it never exits 0
// with the lie in its output, as it did with NaN or short logits).
TEST_F(PipelineTest, ALyingLastStageFailsTheRunNamingIt) {
  const struct {
    testing::Lie lie;
    const char* says;
  } cases[] = {
      {testing::Lie::kTokenOutsideVocabulary, "sent token id 1048576, outside the vocabulary of 512"},
      {testing::Lie::kNanLogits, "sent logits that are NaN or infinite"},
      {testing::Lie::kShortLogits, "sent bad logits: missing or not f32 [512]"},
      {testing::Lie::kManyStageTimes, "sent 100000 stage times for a pipeline of 1 stages"},
  };
  TempDir out;
  for (const auto& c : cases) {
    testing::LyingStage liar(c.lie, 512);
    auto r = RunProcess(Generate(Model("f32"), {"--nodes", liar.address(), "--logits-out", out / "logits"}), 60);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("node liar (" + liar.address() + ")"), std::string::npos) << r.err;
  }
}

TEST_F(PipelineTest, MoreNodesThanLayersIsRefused) {
  auto r = RunProcess(Generate(Model("f32"), {"--local", "7"}), 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("more nodes (7) than layers (6)"), std::string::npos) << r.err;
}

TEST_F(PipelineTest, PromptLongerThanContextIsRefused) {
  TempDir dir;
  TestModelSpec spec;
  spec.context = 16;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  auto argv = Generate(dir / "m", {"--local", "1"});
  argv[5] = std::string(400, 'x') + " and some words that make the prompt long enough to overflow";
  auto r = RunProcess(argv, 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("longer than the model's context of 16"), std::string::npos) << r.err;
}

TEST_F(PipelineTest, UnknownArchitectureIsRefused) {
  TempDir dir;
  TestModelSpec spec;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  std::ofstream(dir / "m/config.json") << R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"})";
  auto r = RunProcess(Generate(dir / "m", {"--local", "1"}), 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown architecture 'GPT2LMHeadModel'"), std::string::npos) << r.err;
}

TEST_F(PipelineTest, MissingTensorOnANodeIsNamed) {
  TempDir dir;
  TestModelSpec spec;
  spec.layers = 4;
  spec.files = 4;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  // Drop the file that holds layer 2 from the index: the node that owns
  // layer 2 cannot find it.
  std::ifstream in(dir / "m/model.safetensors.index.json");
  json index = json::parse(in);
  json map = json::object();
  for (auto& [name, file] : index["weight_map"].items()) {
    if (name.rfind("model.layers.2.", 0) != 0) map[name] = file;
  }
  index["weight_map"] = map;
  std::remove((dir / "m/model-00003-of-00004.safetensors").c_str());
  std::ofstream(dir / "m/model.safetensors.index.json", std::ios::trunc) << index.dump();
  auto r = RunProcess(Generate(dir / "m", {"--local", "2", "--threads", "1"}), 60);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing tensor 'model.layers.2."), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("node local-1"), std::string::npos) << "names the node: " << r.err;
  EXPECT_EQ(r.err.find("exception:"), std::string::npos) << "no KJ prefix reaches the user: " << r.err;
}

TEST_F(PipelineTest, StatusShowsTheLoadedShards) {
  auto cluster = StartNodes(2);
  auto generated = ParseJson(RunProcess(Generate(Model("f32"), {"--nodes", Join(cluster->addresses())})));
  ASSERT_EQ(generated.count("tokens"), 1u);
  auto r = RunProcess({testing::BinDir() + "/strata", "status", "--nodes", Join(cluster->addresses())});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The split follows the nodes' measured speeds: status shows the one the plan chose.
  ASSERT_EQ(generated["plan"].size(), 2u);
  for (const auto& stage : generated["plan"]) {
    const std::string range = "[" + std::to_string(stage["first_layer"].get<int>()) + ", " +
                              std::to_string(stage["end_layer"].get<int>()) + ")";
    EXPECT_NE(r.out.find(range), std::string::npos) << range << " in " << r.out;
  }
  EXPECT_NE(r.out.find("ram "), std::string::npos) << "each node's tiers: " << r.out;
  auto down = RunProcess({testing::BinDir() + "/strata", "status", "--nodes", "127.0.0.1:1"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.out.find("DOWN"), std::string::npos);
}

TEST_F(PipelineTest, CtrlCStopsGenerationAndLocalNodes) {
  TempDir dir;
  TestModelSpec spec;
  spec.context = 8192;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  testing::Child cli({"/usr/bin/env", "STRATA_LOG=info", testing::BinDir() + "/strata", "generate", "--model", dir / "m",
                      "--local", "2", "--threads", "1", "--prompt", "story", "--max-tokens", "8000"});
  for (int i = 0; i < 400 && cli.Stdout().size() < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_GE(cli.Stdout().size(), 20u) << cli.Stderr();
  ::kill(cli.pid(), SIGINT);
  int code = 0;
  ASSERT_TRUE(cli.Wait(10, &code));
  EXPECT_EQ(code, 1);
  const std::string err = cli.Stderr();
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  // The plan (logged at info) names the node addresses; nobody listens there now.
  size_t at = err.find("(127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << err;
  const std::string address = err.substr(at + 1, err.find(')', at) - at - 1);
  auto r = RunProcess({testing::BinDir() + "/strata", "status", "--nodes", address, "--connect-timeout-ms", "2000"});
  EXPECT_EQ(r.exit_code, 1) << "node " << address << " still answers after Ctrl-C";
}

TEST_F(PipelineTest, HelloRefusesAnotherProtocolVersion) {
  auto cluster = StartNodes(1);
  auto io = kj::setupAsyncIo();
  testing::RawPeer c(io, cluster->addresses()[0]);
  auto req = c.node().challengeRequest();
  req.setProtocolVersion(kProtocolVersion + 1);
  req.initClientNonce(kNonceBytes);
  const std::string e = testing::ErrorOf([&]() { req.send().wait(io.waitScope); });
  EXPECT_NE(e.find("protocol version " + std::to_string(kProtocolVersion + 1)), std::string::npos) << e;
}

// A node maps the checkpoint and touches only its own layers: its resident
// memory grows by about its shard's bytes, not the model's.
TEST_F(PipelineTest, NodeResidentMemoryFollowsItsShard) {
  TempDir dir;
  TestModelSpec spec;
  spec.hidden = 512;
  spec.heads = 8;
  spec.kv_heads = 8;
  spec.intermediate = 1536;
  spec.layers = 8;
  spec.vocab = 1024;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);  // ~13.6 MB a layer in F32, ~113 MB in all
  auto cluster = StartNodes(1);
  auto io = kj::setupAsyncIo();
  auto link = testing::Connect(io, cluster->addresses()[0], "");
  const uint64_t before = link->control.infoRequest().send().wait(io.waitScope).getInfo().getResidentBytes();
  // The last two layers and the head: a shard that computes on its own.
  auto load = link->control.loadShardRequest();
  load.initSpec().setModelDir(dir / "m");
  load.getSpec().setFirstLayer(6);
  load.getSpec().setEndLayer(8);
  load.send().wait(io.waitScope);
  // Run one token through the shard so every weight page it owns is touched.
  auto open = link->control.openSessionRequest();
  open.setCapacity(4);
  open.initSampling().setTopP(1.0f);
  auto session = open.send().wait(io.waitScope).getSession();
  auto fill = [](wire::Step::Builder step) {
    step.setSample(true);
    HostTensor h;
    h.shape = {1, 512};  // [tokens, hidden]
    h.data.assign(512 * 4, 0);
    EncodeTensor(h, step.initInput().initHidden());
  };
  EXPECT_LT(testing::SubmitAsync(io, session, kj::mv(fill)).wait(io.waitScope), 1024u);
  auto info = link->control.infoRequest().send().wait(io.waitScope).getInfo();
  const double grown = static_cast<double>(info.getResidentBytes()) - static_cast<double>(before);
  const double shard = static_cast<double>(info.getShardBytes());
  const double model = 113.0e6;
  RecordProperty("shard_bytes", std::to_string(shard));
  RecordProperty("rss_growth_bytes", std::to_string(grown));
  EXPECT_GT(shard, 25e6);
  EXPECT_LT(shard, 30e6);
  EXPECT_LT(grown, shard * 1.25 + 4e6) << "RSS grew " << grown << " for a shard of " << shard;
  EXPECT_GT(grown, shard * 0.7) << "the forward should have paged the shard in";
  EXPECT_LT(grown, model * 0.4);
}

}  // namespace
}  // namespace strata
