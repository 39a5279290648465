// strata quantize and GGUF models end to end, as a user runs them: the
// default model written as Q8_0 and Q4_K_M runs with --model FILE.gguf on 1
// and 3 local nodes with bit-identical logits, agrees with its original,
// keeps llama.cpp's Q4_K_M mix and fallbacks, and bad files get one clear
// error each.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "coordinator/cluster/local_cluster.h"
#include "storage/env.h"
#include "storage/gguf.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using json = nlohmann::json;
using testing::BinDir;
using testing::DefaultModel;
using testing::RunProcess;

testing::ProcessResult Quantize(const std::string& model, const std::string& type, const std::string& out) {
  return RunProcess({BinDir() + "/strata", "quantize", "--model", model, "--type", type, "--out", out});
}

struct GenerateRun {
  json result;
  std::vector<float> logits;  // [tokens, vocab]
};

GenerateRun Generate(const std::string& model, int nodes, const std::string& logits_path) {
  auto r = RunProcess({BinDir() + "/strata", "generate", "--model", model, "--local", std::to_string(nodes), "--threads",
                       "1", "--dtype", "f32", "--prompt", "And God said", "--max-tokens", "24", "--temperature", "0",
                       "--json", "--logits-out", logits_path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  GenerateRun run;
  run.result = json::parse(r.out, nullptr, false);
  std::ifstream in(logits_path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  run.logits.resize(bytes.size() / 4);
  std::memcpy(run.logits.data(), bytes.data(), run.logits.size() * 4);
  return run;
}

TEST(QuantizeTest, QuantizedDefaultModelSplitsExactlyAndAgreesWithItsOriginal) {
  testing::TempDir dir;
  const GenerateRun original = Generate(DefaultModel(), 1, dir / "f32.logits");
  ASSERT_FALSE(original.result.is_discarded());
  const int64_t vocab = 3000;
  for (const auto& [type, bound] : {std::pair<const char*, double>{"q8_0", 0.5}, {"q4_k_m", 1.5}}) {
    SCOPED_TRACE(type);
    const std::string file = dir / (std::string(type) + ".gguf");
    auto q = Quantize(DefaultModel(), type, file);
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(q.err.find("wrote " + file), std::string::npos) << q.err;
    const GenerateRun one = Generate(file, 1, dir / "one.logits"), three = Generate(file, 3, dir / "three.logits");
    ASSERT_FALSE(one.result.is_discarded());
    EXPECT_EQ(three.result["plan"].size(), 3u);
    EXPECT_EQ(one.result["prompt_tokens"], original.result["prompt_tokens"]);  // the GGUF vocabulary tokenizes alike
    EXPECT_EQ(one.result["tokens"], three.result["tokens"]);
    ASSERT_EQ(one.logits.size(), three.logits.size());
    EXPECT_EQ(std::memcmp(one.logits.data(), three.logits.data(), one.logits.size() * 4), 0) << "1 vs 3 nodes";
    // Against the original: the same greedy tokens until the first
    // difference (a near tie), and logits within `bound` up to there.
    const auto& a = original.result["tokens"];
    const auto& b = one.result["tokens"];
    size_t same = 0;
    while (same < a.size() && same < b.size() && a[same] == b[same]) ++same;
    EXPECT_GE(same, 12u) << "greedy tokens part at " << same;
    double worst = 0, sum = 0;
    for (size_t i = 0; i < same * vocab && i < one.logits.size(); ++i) {
      const double d = std::fabs(static_cast<double>(one.logits[i]) - original.logits[i]);
      worst = std::max(worst, d);
      sum += d;
    }
    RecordProperty(std::string(type) + "_max_abs_dlogit", std::to_string(worst));
    RecordProperty(std::string(type) + "_mean_abs_dlogit", std::to_string(sum / (same * vocab)));
    EXPECT_LT(worst, bound);
    EXPECT_GT(worst, 0);
  }
}

TEST(QuantizeTest, Q4KMKeepsLlamaCppsMixAndFallbacks) {
  testing::TempDir dir;
  ASSERT_EQ(Quantize(DefaultModel(), "q4_k_m", dir / "m.gguf").exit_code, 0);
  auto f = GgufFile::Open(dir / "m.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto type = [&](const std::string& name) {
    const TensorView* v = f.value()->FindTensor(name);
    return v == nullptr ? std::string("missing") : std::string(DTypeString(v->dtype));
  };
  EXPECT_EQ(f.value()->Int("general.file_type").value(), 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(type("token_embd.weight"), "Q6_K");                // tied: the output's type
  EXPECT_EQ(type("output.weight"), "missing");
  EXPECT_EQ(type("blk.0.attn_q.weight"), "Q4_K");
  EXPECT_EQ(type("blk.0.attn_v.weight"), "Q4_K");
  EXPECT_EQ(type("blk.2.attn_v.weight"), "Q6_K");              // llama.cpp's use_more_bits layers of 6: 2 and 5
  EXPECT_EQ(type("blk.5.attn_v.weight"), "Q6_K");
  EXPECT_EQ(type("blk.0.ffn_down.weight"), "Q5_0");            // rows of 704: Q4_K's fallback
  EXPECT_EQ(type("blk.5.ffn_down.weight"), "Q8_0");            // and Q6_K's
  EXPECT_EQ(type("blk.0.attn_norm.weight"), "F32");
  EXPECT_EQ(f.value()->String("tokenizer.ggml.model").value(), "llama");
  EXPECT_EQ(f.value()->Array("tokenizer.ggml.tokens", GgufValue::Kind::kString).value()->strings.size(), 3000u);
  // plan reads the file too, and counts its bytes as stored.
  auto plan = RunProcess({BinDir() + "/strata", "plan", "--model", dir / "m.gguf", "--local", "2"});
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
}

// --distribute with a GGUF file: three real nodes that may not open it by
// path fetch only their stages' byte ranges from the coordinator, verified,
// and generate exactly what nodes that read the file generate.
TEST(QuantizeTest, NodesFetchTheirStagesOfAGgufFile) {
  testing::TempDir dir, caches, allowed;
  const std::string gguf = dir / "m.gguf";
  ASSERT_EQ(Quantize(DefaultModel(), "q4_k_m", gguf).exit_code, 0);
  LocalClusterOptions o;
  o.nodes = 3;
  o.node_binary = BinDir() + "/strata-node";
  o.threads = 1;
  o.models_dirs = {allowed.path()};  // not where the file is: the nodes cannot open it by path
  for (int i = 0; i < 3; ++i) o.node_args.push_back({"--cache-dir", caches / std::to_string(i)});
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  std::string addresses;
  for (const auto& a : cluster.value()->addresses()) addresses += (addresses.empty() ? "" : ",") + a;
  auto run = [&](const std::vector<std::string>& how) {
    std::vector<std::string> argv = {BinDir() + "/strata", "generate", "--model", gguf, "--prompt", "And God said",
                                     "--max-tokens", "8", "--temperature", "0", "--json", "--connect-timeout-ms", "30000"};
    argv.insert(argv.end(), how.begin(), how.end());
    return RunProcess(argv, 120);
  };
  auto fetched = run({"--nodes", addresses, "--distribute"});
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  auto out = json::parse(fetched.out);
  const uint64_t file_bytes = std::filesystem::file_size(gguf);
  EXPECT_GT(out["model_bytes_served"].get<uint64_t>(), file_bytes / 2);
  EXPECT_LT(out["model_bytes_served"].get<uint64_t>(), file_bytes + file_bytes / 2) << "each stage its own ranges";
  int shards = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(caches.path())) {
    shards += entry.path().filename() == "model.gguf";
  }
  EXPECT_EQ(shards, 3);
  auto from_file = run({"--local", "3", "--threads", "1"});
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_EQ(out["tokens"], json::parse(from_file.out)["tokens"]);
}

std::vector<int32_t> TokenTypes() {  // unknown, two controls, the rest normal
  std::vector<int32_t> t(64, 1);
  t[0] = 2;
  t[1] = t[2] = 3;
  return t;
}

TEST(QuantizeTest, BadFilesAndFlagsGetOneClearError) {
  testing::TempDir dir;
  auto bad_type = Quantize(DefaultModel(), "q3_k", dir / "x.gguf");
  EXPECT_EQ(bad_type.exit_code, 1);
  EXPECT_NE(bad_type.err.find("--type must be one of"), std::string::npos) << bad_type.err;
  auto no_dir = Quantize(dir / "nothing", "q8_0", dir / "x.gguf");
  EXPECT_EQ(no_dir.exit_code, 1);
  EXPECT_NE(no_dir.err.find("nothing"), std::string::npos) << no_dir.err;
  auto help = RunProcess({BinDir() + "/strata", "quantize", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("q4_k_m"), std::string::npos);

  // A file cut short: its tensors run past the end.
  ASSERT_EQ(Quantize(DefaultModel(), "q8_0", dir / "whole.gguf").exit_code, 0);
  std::filesystem::copy_file(dir / "whole.gguf", dir / "cut.gguf");
  std::filesystem::resize_file(dir / "cut.gguf", std::filesystem::file_size(dir / "whole.gguf") / 2);
  auto r = RunProcess({BinDir() + "/strata", "generate", "--model", dir / "cut.gguf", "--local", "1", "--prompt", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("runs past the end of the file"), std::string::npos) << r.err;

  // Metadata that disagrees with the shapes: the embedding is 256 wide, the config says 128.
  PosixEnv env;
  auto zeros = [](uint8_t*) {};
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int i = 3; i < 64; ++i) pieces.push_back("p" + std::to_string(i));
  ASSERT_TRUE(WriteGguf(env, dir / "liar.gguf",
                        {{"general.architecture", GgufStr("llama")},
                         {"llama.embedding_length", GgufU32(128)},
                         {"llama.feed_forward_length", GgufU32(256)},
                         {"llama.block_count", GgufU32(1)},
                         {"llama.attention.head_count", GgufU32(2)},
                         {"llama.vocab_size", GgufU32(64)},
                         {"tokenizer.ggml.model", GgufStr("llama")},
                         {"tokenizer.ggml.tokens", GgufStrArray(pieces)},
                         {"tokenizer.ggml.scores", GgufF32Array(std::vector<float>(64, 0.0f))},
                         {"tokenizer.ggml.token_type", GgufI32Array(TokenTypes())}},
                        {{"token_embd.weight", DType::kQ8_0, {64, 256}, zeros}})
                  .ok());
  auto liar = RunProcess({BinDir() + "/strata", "generate", "--model", dir / "liar.gguf", "--local", "1",
                          "--prompt-tokens", "1,2"});
  EXPECT_EQ(liar.exit_code, 1);
  EXPECT_NE(liar.err.find("model.embed_tokens.weight"), std::string::npos) << liar.err;
  EXPECT_NE(liar.err.find("wrong shape"), std::string::npos) << liar.err;
}

}  // namespace
}  // namespace strata
