#pragma once
// A Hugging Face tokenizer: tokenizer.json's BPE model with its added
// tokens, normalizer, pre-tokenizer and decoder, used as the `tokenizers`
// library uses it (encode without the post-processor's specials: the caller
// adds BOS by the model's rule). GGUF files with a BPE vocabulary
// (tokenizer.ggml.model "gpt2") build the same object.
// Immutable after loading; thread-safe.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "coordinator/text/bpe_model.h"
#include "coordinator/text/text_steps.h"

namespace strata::text {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;     // a control token (the chat markers, BOS/EOS)
  bool normalized = false;  // matched in the normalized text rather than the raw one
  bool lstrip = false, rstrip = false, single_word = false;
};

// Byte ranges of a text in which added tokens are recognised.
using TrustedRanges = std::vector<std::pair<size_t, size_t>>;

class HfTokenizer {
 public:
  static constexpr size_t kMaxFileBytes = 256u << 20;

  // `path`: a tokenizer.json (at most kMaxFileBytes). Errors name the path.
  static Result<std::unique_ptr<HfTokenizer>> Load(const std::string& path);
  static Result<std::unique_ptr<HfTokenizer>> FromJson(std::string_view text, const std::string& origin);

  // The parts a GGUF vocabulary gives: tokens by id, llama.cpp's token types
  // (3 control and 4 user-defined are added tokens), merges "a b", and the
  // pre-tokenizer by llama.cpp's name (tokenizer.ggml.pre).
  struct GgufVocab {
    std::vector<std::string> tokens;
    std::vector<int64_t> types;
    std::vector<std::string> merges;
    std::string pre;
  };
  static Result<std::unique_ptr<HfTokenizer>> FromGguf(const GgufVocab& vocab, const std::string& origin);
  // The vocabulary as GGUF writes it; its `pre` is llama.cpp's name for this
  // tokenizer's pre-tokenizer (an error where llama.cpp has none).
  Result<GgufVocab> ToGguf() const;

  // `text` must be valid UTF-8. Added tokens are recognised only inside
  // `trusted` (null: everywhere, as the library does by default).
  std::vector<int32_t> Encode(std::string_view text, const TrustedRanges* trusted = nullptr) const;
  // Every id, specials included; unknown ids are skipped. Lossy UTF-8.
  std::string Decode(const std::vector<int32_t>& ids) const;
  int32_t IdOf(std::string_view token) const;  // an added token or a model token; -1: none
  int32_t id_end() const;                      // 1 + the largest id

 private:
  HfTokenizer() = default;
  Status Index();
  struct Match {
    size_t begin, end;
    int32_t id;
  };
  std::vector<Match> FindAdded(std::string_view s, bool normalized, const TrustedRanges* trusted, size_t base) const;
  void EncodeRun(const std::string& s, bool first, const TrustedRanges* trusted, size_t base, std::vector<int32_t>* out) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, size_t> added_by_id_;
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::vector<std::vector<size_t>> added_by_byte_[2];  // [normalized][first byte] -> added_, longest first
  std::string pre_signature_;  // the Split regex (or "gpt2") behind ToGguf's pre name
  bool nfc_ = false;           // the normalizer is exactly NFC
  bool plain_ = false;         // there is no normalizer
};

}  // namespace strata::text
