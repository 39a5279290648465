#pragma once
// The steps around a Hugging Face tokenizer's model, read from its
// tokenizer.json as the `tokenizers` library defines them:
//   Normalizer:   text -> text (NFC, NFKC, Lowercase, Prepend, Replace, Strip, Sequence ...)
//   PreTokenizer: a piece -> smaller pieces (Split with a regex, ByteLevel,
//                 Digits, Metaspace, Whitespace, Punctuation, Sequence ...)
//   Decoder:      token strings -> text pieces (ByteLevel, Metaspace,
//                 ByteFallback, Fuse, Replace, Strip, Sequence)
// Each is immutable once built; thread-safe. Text is valid UTF-8 throughout.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"

namespace strata::text {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string Normalize(std::string_view s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends the pieces of `piece` to `out`. `first`: the piece starts the
  // text (Metaspace's prepend_scheme "first").
  virtual void Split(const std::string& piece, bool first, std::vector<std::string>* out) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (the library's decode_chain).
  virtual void Decode(std::vector<std::string>* tokens) const = 0;
};

// Each builder takes the JSON object of its step (null: no step, a null
// pointer) and names the step it refuses.
Result<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& j);
Result<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& j);
Result<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& j);

// Pieces of `piece` between and around the matches of `regex` (GPT-2's
// pattern and llama.cpp's named ones come as Split steps of this kind).
Result<std::unique_ptr<PreTokenizer>> RegexSplit(const std::string& regex);
std::unique_ptr<PreTokenizer> ByteLevelStep(bool add_prefix_space);  // no regex of its own
std::unique_ptr<PreTokenizer> SequenceOf(std::vector<std::unique_ptr<PreTokenizer>> steps);
std::unique_ptr<Normalizer> Nfc();
std::unique_ptr<Decoder> ByteLevelDecoder();

}  // namespace strata::text
