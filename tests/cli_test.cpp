// The binaries' command lines: --help everywhere, and one clear line for
// every bad invocation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace strata {
namespace {

using testing::RunProcess;

std::string Strata() { return testing::BinDir() + "/strata"; }

TEST(CliTest, EveryBinaryHasHelp) {
  for (auto argv : std::vector<std::vector<std::string>>{
           {Strata(), "--help"}, {Strata(), "generate", "--help"}, {Strata(), "plan", "--help"},
           {Strata(), "status", "--help"}, {Strata(), "serve", "--help"}, {Strata(), "serve-model", "--help"}, {Strata(), "make-model", "--help"}, {Strata(), "make-secret", "--help"},
           {testing::BinDir() + "/strata-node", "--help"}, {testing::BinDir() + "/strata-kvquality", "--help"},
           {testing::BinDir() + "/strata-kvscaling", "--help"}}) {
    auto r = RunProcess(argv, 30);
    EXPECT_EQ(r.exit_code, 0) << argv.back() << r.err;
    EXPECT_TRUE(r.out.find("usage:") != std::string::npos || r.out.find("Usage:") != std::string::npos) << r.out;
  }
}

TEST(CliTest, BadInvocationsExplainThemselves) {
  struct Case { std::vector<std::string> argv; std::string message; };
  std::vector<Case> cases = {
      {{Strata()}, "no command given"},
      {{Strata(), "fly"}, "unknown command 'fly'"},
      {{Strata(), "generate", "--model", "m", "--prompt", "x", "--nodes", "a:1", "--local", "2"},
       "--nodes excludes --local"},
      {{Strata(), "status", "--cluster-name", "nobody-here", "--discovery-port", "47999", "--discovery-wait-ms", "300"},
       "no nodes: none beaconed in cluster 'nobody-here'"},
      {{Strata(), "generate", "--model", "m", "--local", "2"}, "give one of --prompt TEXT and --prompt-tokens IDS"},
      {{Strata(), "generate", "--model", "/nonexistent", "--local", "2", "--prompt", "x"},
       "--model /nonexistent: no such directory or GGUF file, and not an http(s) URL or a repo id ORG/NAME[@REVISION]"},
      {{Strata(), "generate", "--model", "acme/none", "--hf-endpoint", "http://127.0.0.1:1", "--local", "1", "--prompt", "x"},
       "--model acme/none: cannot get http://127.0.0.1:1/api/models/acme/none/revision/main"},
      {{Strata(), "generate", "--local", "x"}, "--local: Value x not in range 0 to 64"},
      {{Strata(), "serve", "--cluster", "c.json", "--local", "2"}, "--cluster excludes --local"},
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--memory-limit", "8XB"},
       "--memory-limit: xb unit not recognized"},
      {{Strata(), "generate", "--model", "m", "--nodes", "nohost", "--prompt", "x"}, "bad node address 'nohost'"},
      {{testing::BinDir() + "/strata-node"}, "--listen is required"},
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--threads", "0"}, "--threads: Value 0 not in range"},
      {{testing::BinDir() + "/strata-node", "--listen", "999.1.1.1:5", "--insecure"}, "cannot listen on 999.1.1.1:5"},
      {{testing::BinDir() + "/strata-node", "--listen", "0.0.0.0:0"}, "refusing to listen on 0.0.0.0:0 without a cluster secret"},
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--cluster-secret-file", "/nonexistent"},
       "cannot read the cluster secret file /nonexistent"},
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--tls"}, "--tls needs --tls-dir DIR"},
      {{Strata(), "make-secret"}, "--out FILE is required"},
      {{Strata(), "generate", "--nodes", "a:1", "--session", "xyz", "--prompt", "x"},
       "--session wants the 32 hex digits that --keep-session printed"},
      {{Strata(), "generate", "--local", "2", "--keep-session", "--prompt", "x"}, "--keep-session needs nodes that outlive"},
      {{Strata(), "generate", "--nodes", "a:1", "--prompt-tokens", "1,x"}, "--prompt-tokens wants comma-separated token ids"},
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--swap-dir", "/dev/null/swap"},
       "--swap-dir: cannot use directory /dev/null: Not a directory"},
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--cache-dir", "/dev/null/cache"},
       "--cache-dir: cannot use directory /dev/null: Not a directory"},
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1:0", "--kv-policy", "mru"}, "--kv-policy: mru not in"},
      {{testing::BinDir() + "/strata-node", "--listen", "::1:7700"},
       "--listen: '::1:7700' is not HOST:PORT: a host is a name or address (an IPv6 one in brackets)"},
      // Named like a loopback address, but somebody's machine: no open door without a secret.
      {{testing::BinDir() + "/strata-node", "--listen", "127.0.0.1.nip.io:0"}, "refusing to listen on 127.0.0.1.nip.io:0"},
  };
  for (const auto& c : cases) {
    auto r = RunProcess(c.argv, 30);
    EXPECT_NE(r.exit_code, 0) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << "want '" << c.message << "' in: " << r.err;
  }
}

TEST(CliTest, PlanPrintsTheSplit) {
  testing::TempDir dir;
  TestModelSpec spec;
  spec.layers = 6;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  auto r = RunProcess({Strata(), "plan", "--model", dir / "m", "--local", "3"}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("0     local-0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[0, 2) +embed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[4, 6) +head"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KV for 256 tokens x 1 sessions"), std::string::npos) << r.out;
  // KV for the context and concurrency asked for counts against each node.
  auto big = RunProcess({Strata(), "plan", "--model", dir / "m", "--local", "3", "--context", "2048",
                         "--concurrency", "1000000"}, 30);
  EXPECT_EQ(big.exit_code, 1) << big.out;
  EXPECT_NE(big.err.find("but has only"), std::string::npos) << big.err;
}

// A model whose config and tensors disagree, or whose config leaves a head
// of no width: plan, generate and serve refuse it before any node starts, in
// the same words (one check, in Checkpoint::Open), and plan takes only the
// compute dtypes the others take.
TEST(CliTest, EveryCommandRefusesAModelItCannotLoadInTheSameWords) {
  testing::TempDir dir;
  TestModelSpec spec;
  spec.layers = 2;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "wide", spec);
  testing::MakeModel(dir / "narrow", spec);
  auto edit = [&](const std::string& model, const std::string& key, int64_t value) {
    nlohmann::json config = nlohmann::json::parse(testing::ReadFile(dir / model + "/config.json"));
    ASSERT_TRUE(config.contains(key));
    config[key] = value;
    std::ofstream(dir / model + "/config.json", std::ios::trunc) << config.dump();
  };
  edit("wide", "intermediate_size", 180);
  edit("narrow", "hidden_size", 2);
  const std::vector<std::pair<std::string, std::string>> models = {
      {"wide", "tensor 'model.layers.0.mlp.down_proj.weight' in " + dir / "wide" + " has the wrong shape for the config: [64, 172], want [64, 180]"},
      {"narrow", "hidden_size 2 over num_attention_heads 4 leaves a head_dim of 0"}};
  for (const auto& [model, want] : models) {
    for (const std::vector<std::string>& command :
         {std::vector<std::string>{"plan", "--local", "2"}, {"generate", "--local", "2", "--prompt", "x"},
          {"serve", "--local", "2", "--http", "127.0.0.1:0"}}) {
      std::vector<std::string> argv = {Strata()};
      argv.insert(argv.end(), command.begin(), command.end());
      argv.insert(argv.end(), {"--model", dir / model});
      auto r = RunProcess(argv, 30);
      EXPECT_EQ(r.exit_code, 1) << command[0] << ": " << r.err;
      EXPECT_NE(r.err.find(want), std::string::npos) << command[0] << ": " << r.err;
      EXPECT_EQ(r.err.find("listening"), std::string::npos) << command[0] << " started nodes: " << r.err;
    }
  }
  auto f16 = RunProcess({Strata(), "plan", "--model", dir / "wide", "--local", "2", "--dtype", "f16"}, 30);
  EXPECT_EQ(f16.exit_code, 1);
  EXPECT_NE(f16.err.find("--dtype must be f32 or bf16, got 'f16'"), std::string::npos) << f16.err;
}

// `strata serve-model --repo-id` answers as a Hugging Face-compatible
// endpoint; `strata generate --model ORG/NAME --hf-endpoint` mirrors the
// model from it (checked against the published hashes) and generates exactly
// what the local directory generates; the second run fetches nothing; the
// same model as a plain URL of a model directory works too.
TEST(CliTest, GenerateFromAHubRepoIdAndFromAUrl) {
  testing::TempDir dir;
  TestModelSpec spec;
  spec.layers = 4;
  spec.tokenizer_vocab = 200;
  testing::MakeModel(dir / "m", spec);
  testing::Child hub({Strata(), "serve-model", "--model", dir / "m", "--listen", "127.0.0.1:0", "--repo-id", "acme/tiny"});
  std::string port;
  for (int i = 0; i < 200 && port.empty(); ++i) {
    const std::string out = hub.Stdout();
    const size_t at = out.find("on 127.0.0.1:");
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
      port = out.substr(at + 13, out.find('\n', at) - at - 13);
    }
    usleep(50000);
  }
  ASSERT_FALSE(port.empty()) << hub.Stderr();
  const std::string endpoint = "http://127.0.0.1:" + port;
  auto run = [&](const std::string& model) {
    return RunProcess({Strata(), "generate", "--model", model, "--hf-endpoint", endpoint, "--model-cache", dir / "cache",
                       "--local", "2", "--prompt-tokens", "1,5,9", "--max-tokens", "6", "--json"}, 120);
  };
  auto local = run(dir / "m");
  ASSERT_EQ(local.exit_code, 0) << local.err;
  auto tokens = [](const std::string& json) { return json.substr(json.find("\"tokens\"")); };
  auto cold = run("acme/tiny");
  ASSERT_EQ(cold.exit_code, 0) << cold.err;
  EXPECT_NE(cold.err.find("checked against the source's hashes"), std::string::npos) << cold.err;
  EXPECT_EQ(tokens(cold.out), tokens(local.out));
  auto warm = run("acme/tiny");
  ASSERT_EQ(warm.exit_code, 0) << warm.err;
  EXPECT_NE(warm.err.find("0.0 MiB fetched"), std::string::npos) << warm.err;
  auto url = run(endpoint + "/acme/tiny/resolve/main");
  ASSERT_EQ(url.exit_code, 0) << url.err;
  EXPECT_EQ(tokens(url.out), tokens(local.out));
}

// Each architecture make-model writes runs split over 3 nodes with the
// logits of 1 node, bit for bit, from the CLI as a user runs it.
TEST(CliTest, EveryArchitectureSplitsBitIdentically) {
  for (const char* arch : {"llama3", "qwen2", "qwen3", "mistral"}) {
    SCOPED_TRACE(arch);
    testing::TempDir dir;
    auto made = RunProcess({Strata(), "make-model", "--out", dir / "m", "--arch", arch, "--layers", "3",
                            "--tokenizer-vocab", "200"}, 120);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    for (const char* n : {"1", "3"}) {
      auto r = RunProcess({Strata(), "generate", "--model", dir / "m", "--local", n, "--threads", "1", "--prompt",
                           "In the beginning", "--max-tokens", "6", "--logits-out", dir / (std::string("logits-") + n)}, 120);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const std::string one = testing::ReadFile(dir / "logits-1"), three = testing::ReadFile(dir / "logits-3");
    EXPECT_GT(one.size(), 1000u);
    EXPECT_TRUE(one == three) << "1-node and 3-node logits differ";
  }
  auto bad = RunProcess({Strata(), "make-model", "--out", "/tmp/never", "--arch", "gpt2"}, 30);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--arch must be llama, llama3, qwen2, qwen3 or mistral"), std::string::npos) << bad.err;
}

TEST(CliTest, MakeModelIsDeterministic) {
  testing::TempDir dir;
  for (const char* out : {"a", "b"}) {
    auto r = RunProcess({Strata(), "make-model", "--out", dir / out, "--layers", "2", "--dtype", "bf16", "--seed", "3"}, 60);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_TRUE(testing::ReadFile(dir / "a/model.safetensors") == testing::ReadFile(dir / "b/model.safetensors"));
  // The tokenizer files record their own path; the pieces must match.
  auto pieces = [&](const char* out) {
    auto r = RunProcess({"/usr/bin/spm_export_vocab", "--model=" + dir / out + "/tokenizer.model"}, 30);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  const std::string a = pieces("a");
  EXPECT_GT(a.size(), 100u);
  EXPECT_TRUE(a == pieces("b"));
}

}  // namespace
}  // namespace strata
