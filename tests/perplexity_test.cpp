// strata perplexity (coordinator/pipeline/perplexity): the negative log-likelihood of
// a row of logits against double-precision arithmetic done here; and end to
// end on the default model, as a user runs it: the figure equals the one
// computed here from `strata generate --logits-out` at every scored
// position, is bit-identical on 1 and 3 nodes, moves (a little) with INT8
// KV, and bad input gets one clear error.
#include "coordinator/pipeline/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace strata {
namespace {

using json = nlohmann::json;
using testing::BinDir;
using testing::RunProcess;

TEST(PerplexityTest, NegativeLogLikelihoodOfARow) {
  const std::vector<float> logits = {1.0f, 2.0f, -3.0f, 1000.0f};
  // log-sum-exp shifted by the maximum: no overflow at 1000.
  const double lse = 1000.0 + std::log(1.0 + std::exp(-999.0) + std::exp(-998.0) + std::exp(-1003.0));
  EXPECT_NEAR(NegativeLogLikelihood(logits, 4, 3), lse - 1000.0, 1e-12);
  EXPECT_NEAR(NegativeLogLikelihood(logits, 4, 1), lse - 2.0, 1e-9);
  EXPECT_TRUE(std::isnan(NegativeLogLikelihood(logits, 4, 4))) << "a target past the vocabulary";
  EXPECT_TRUE(std::isnan(NegativeLogLikelihood(logits, 5, 0))) << "a row of the wrong size";
  EXPECT_TRUE(std::isnan(NegativeLogLikelihood({1.0f, NAN}, 2, 0))) << "a NaN logit";
  EXPECT_TRUE(std::isnan(NegativeLogLikelihood({1.0f, INFINITY}, 2, 0)));
}

json Perplexity(const std::string& file, const std::vector<std::string>& more) {
  std::vector<std::string> argv = {BinDir() + "/strata", "perplexity", "--file", file, "--threads", "1", "--json"};
  argv.insert(argv.end(), more.begin(), more.end());
  auto r = RunProcess(argv, 300);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out, nullptr, false);
}

// The logits at the last position of `ids` (one generate run).
std::vector<float> LastLogits(const std::vector<int32_t>& ids, const std::string& path) {
  std::string list;
  for (int32_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  auto r = RunProcess({BinDir() + "/strata", "generate", "--local", "1", "--threads", "1", "--prompt-tokens", list,
                       "--max-tokens", "1", "--json", "--logits-out", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(path, std::ios::binary);
  std::vector<float> row(3000);
  in.read(reinterpret_cast<char*>(row.data()), static_cast<std::streamsize>(row.size() * 4));
  EXPECT_TRUE(in.good());
  return row;
}

TEST(PerplexityTest, ScoresTheSecondHalfOfEachChunkAsGenerateSeesIt) {
  testing::TempDir dir;
  const std::string text = dir / "text.txt";
  std::ofstream(text) << "In the beginning God created the heaven and the earth. And the earth was without form, and "
                         "void; and darkness was upon the face of the deep.\n";
  const int ctx = 8;
  json one = Perplexity(text, {"--local", "1", "--ctx", std::to_string(ctx), "--chunks", "2"});
  ASSERT_FALSE(one.is_discarded());
  EXPECT_EQ(one["chunks"], 2);
  EXPECT_EQ(one["tokens_scored"], 2 * (ctx - ctx / 2));
  json three = Perplexity(text, {"--local", "3", "--ctx", std::to_string(ctx), "--chunks", "2"});
  EXPECT_EQ(one["perplexity"], three["perplexity"]) << "split or not, the same logits";
  EXPECT_EQ(one["chunk_perplexity"], three["chunk_perplexity"]);

  // The same figure from generate's logits, position by position: chunk c
  // is BOS then tokens [c*ctx + 1, (c+1)*ctx) of the text's stream (which
  // starts with BOS, as llama-perplexity's does).
  auto ids = RunProcess({BinDir() + "/strata", "generate", "--local", "1", "--threads", "1", "--prompt", "x",
                         "--max-tokens", "1", "--json"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  const int32_t bos = json::parse(ids.out)["prompt_tokens"][0];
  std::ifstream in(text);
  std::stringstream ss;
  ss << in.rdbuf();
  // The text's token ids: from a generate run whose prompt is the text (BOS first).
  auto whole = RunProcess({BinDir() + "/strata", "generate", "--local", "1", "--threads", "1", "--prompt", ss.str(),
                           "--max-tokens", "1", "--json"});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  std::vector<int32_t> tokens = json::parse(whole.out)["prompt_tokens"].get<std::vector<int32_t>>();
  ASSERT_EQ(tokens.front(), bos);
  ASSERT_GE(tokens.size(), 2u * ctx);
  double total = 0;
  for (int c = 0; c < 2; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * ctx, tokens.begin() + (c + 1) * ctx);
    chunk[0] = bos;
    for (int pos = ctx / 2; pos < ctx; ++pos) {
      const std::vector<int32_t> prefix(chunk.begin(), chunk.begin() + pos);
      total += NegativeLogLikelihood(LastLogits(prefix, dir / "row.f32"), 3000, chunk[static_cast<size_t>(pos)]);
    }
  }
  const double expected = std::exp(total / (2 * (ctx - ctx / 2)));
  // generate runs the prefix as one prompt chunk, perplexity as decode steps: equal up to rounding.
  EXPECT_NEAR(one["perplexity"].get<double>(), expected, 1e-3 * expected);

  // INT8 KV: a different cache, a close figure.
  json int8 = Perplexity(text, {"--local", "1", "--ctx", std::to_string(ctx), "--chunks", "2", "--kv-dtype", "int8"});
  ASSERT_FALSE(int8.is_discarded());
  EXPECT_NE(int8["perplexity"], one["perplexity"]);
  EXPECT_NEAR(int8["perplexity"].get<double>(), one["perplexity"].get<double>(), 0.1 * one["perplexity"].get<double>());
}

TEST(PerplexityTest, BadInputGetsOneClearError) {
  testing::TempDir dir;
  std::ofstream(dir / "short.txt") << "And God said";
  auto run = [&](const std::vector<std::string>& more) {
    std::vector<std::string> argv = {BinDir() + "/strata", "perplexity", "--local", "1", "--threads", "1"};
    argv.insert(argv.end(), more.begin(), more.end());
    return RunProcess(argv, 120);
  };
  auto shorter = run({"--file", dir / "short.txt"});
  EXPECT_EQ(shorter.exit_code, 1);
  EXPECT_NE(shorter.err.find("shorter than one chunk of --ctx 256"), std::string::npos) << shorter.err;
  auto missing = run({"--file", dir / "none.txt"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
  auto too_long = run({"--file", dir / "short.txt", "--ctx", "100000"});
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_NE(too_long.err.find("--ctx must be 4 to the model's context of 256"), std::string::npos) << too_long.err;
  auto no_file = run({});
  EXPECT_EQ(no_file.exit_code, 2);
  EXPECT_NE(no_file.err.find("--file"), std::string::npos) << no_file.err;
  std::ofstream(dir / "long.txt") << "And God said, Let there be light: and there was light.";
  auto kv = RunProcess({BinDir() + "/strata", "perplexity", "--nodes", "127.0.0.1:1", "--file", dir / "long.txt",
                        "--ctx", "4", "--kv-dtype", "int8"});
  EXPECT_EQ(kv.exit_code, 1);
  EXPECT_NE(kv.err.find("--kv-dtype sets the KV of --local nodes"), std::string::npos) << kv.err;
  auto bad_kv = run({"--file", dir / "long.txt", "--ctx", "4", "--kv-dtype", "int4"});
  EXPECT_EQ(bad_kv.exit_code, 1);
  EXPECT_NE(bad_kv.err.find("--kv-dtype must be compute or int8"), std::string::npos) << bad_kv.err;
  auto help = RunProcess({BinDir() + "/strata", "perplexity", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--ctx"), std::string::npos);
}

}  // namespace
}  // namespace strata
