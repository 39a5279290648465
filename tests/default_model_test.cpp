// The default model (models/kjv-5m, trained by scripts/train_default_model.sh):
// greedy output is identical on 1, 2 and 3 nodes, and it writes words of its
// corpus, the King James Bible.
#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace strata {
namespace {

using json = nlohmann::json;

std::vector<std::string> Words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    } else if (!word.empty()) {
      words.push_back(word);
      word.clear();
    }
  }
  return words;
}

json Generate(int nodes) {
  // No --model: the default must resolve to the shipped model.
  auto r = testing::RunProcess({testing::BinDir() + "/strata", "generate", "--local", std::to_string(nodes),
                                "--threads", "1", "--prompt", "And God said", "--max-tokens", "48", "--json"},
                               120);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out, nullptr, false);
}

TEST(DefaultModelTest, SameTextOnAnySplitAndWordsFromTheCorpus) {
  const json one = Generate(1), two = Generate(2), three = Generate(3);
  ASSERT_FALSE(one.is_discarded());
  ASSERT_FALSE(two.is_discarded());
  ASSERT_FALSE(three.is_discarded());
  EXPECT_EQ(one["tokens"], two["tokens"]);
  EXPECT_EQ(one["tokens"], three["tokens"]);
  EXPECT_EQ(three["plan"].size(), 3u);

  // The corpus vocabulary, from Debian's bible-kjv (installed by setup).
  auto bible = testing::RunProcess({"/usr/bin/bible", "-l100000", "Gen1:1-Rev22:21"}, 60);
  ASSERT_EQ(bible.exit_code, 0) << "the bible-kjv package is missing: " << bible.err;
  const auto corpus_words = Words(bible.out);
  const std::set<std::string> vocabulary(corpus_words.begin(), corpus_words.end());
  ASSERT_GT(vocabulary.size(), 10000u);

  const std::string text = one["text"];
  const auto words = Words(text);
  ASSERT_GE(words.size(), 15u) << text;
  int known = 0;
  for (const auto& w : words) known += vocabulary.count(w);
  const double share = static_cast<double>(known) / words.size();
  RecordProperty("known_word_share", std::to_string(share));
  EXPECT_GE(share, 0.85) << "generated: " << text;
  EXPECT_GE(std::set<std::string>(words.begin(), words.end()).size(), 8u) << "not one word repeated: " << text;
}

}  // namespace
}  // namespace strata
