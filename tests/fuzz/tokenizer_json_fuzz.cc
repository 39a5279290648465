// libFuzzer: Hugging Face tokenizers. An input that starts with '{' is a
// tokenizer.json (loaded, then used); any other is a text for a fixed
// byte-level tokenizer with every kind of step, whose decode must give the
// text back. Neither may crash, throw or hang.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "coordinator/text/hf_tokenizer.h"
#include "coordinator/text/utf8.h"

namespace {

using nlohmann::json;
using strata::text::ByteLevelChar;
using strata::text::HfTokenizer;

// Llama 3's steps over a 256-byte vocabulary, some merges and added tokens.
std::string FixedTokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelChar(static_cast<uint8_t>(b))] = b;
  const std::string sp = ByteLevelChar(' ');
  const std::vector<std::pair<std::string, std::string>> merges = {{sp, "t"}, {"h", "e"}, {sp + "t", "he"}, {"i", "n"},
                                                                   {sp, sp}, {"e", "r"}, {sp + sp, sp + sp}};
  json m = json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    m.push_back(a + " " + b);
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
  }
  json added = json::array({{{"id", id}, {"content", "<|im_start|>"}, {"special", true}},
                            {{"id", id + 1}, {"content", "<|im_end|>"}, {"special", true}},
                            {{"id", id + 2}, {"content", "<think>"}, {"special", false}, {"normalized", false}}});
  json split = {{"type", "Split"},
                {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
                {"behavior", "Isolated"}};
  return json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"ignore_merges", true}}},
              {"pre_tokenizer", {{"type", "Sequence"},
                                 {"pretokenizers", json::array({split, {{"type", "Digits"}, {"individual_digits", true}},
                                                                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
              {"decoder", {{"type", "ByteLevel"}}},
              {"added_tokens", added}}
      .dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  if (size > 0 && data[0] == '{') {
    auto t = HfTokenizer::FromJson(in, "fuzz");
    if (t.ok()) t.value()->Decode(t.value()->Encode("Hello <|im_start|> w\xC3\xB6rld 12345\r\n  x"));
    return 0;
  }
  static const auto fixed = HfTokenizer::FromJson(FixedTokenizer(), "fixed");
  if (!fixed.ok()) __builtin_trap();
  const std::string text = strata::text::LossyUtf8(in);
  if (fixed.value()->Decode(fixed.value()->Encode(text)) != text) __builtin_trap();  // byte-level: lossless
  return 0;
}
