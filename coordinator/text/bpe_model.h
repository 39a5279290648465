#pragma once
// A byte-pair-encoding model: a vocabulary and its merges by rank, applied
// to one pre-tokenized piece at a time as the `tokenizers` library's BPE
// does (lowest rank first, leftmost on a tie; ignore_merges, byte_fallback,
// unk and fuse_unk, a continuing-subword prefix and an end-of-word suffix).
// Immutable after Build; thread-safe.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"

namespace strata::text {

class BpeModel {
 public:
  struct Options {
    std::string unk_token;            // empty: characters the vocabulary lacks are dropped
    bool fuse_unk = false;            // consecutive unknowns make one unk
    bool byte_fallback = false;       // unknown characters as <0xNN> tokens where the vocabulary has them
    bool ignore_merges = false;       // a piece that is a token is that token, unmerged
    std::string continuing_prefix;    // before every symbol but a word's first
    std::string end_suffix;           // after a word's last symbol
  };
  static constexpr int32_t kMaxId = 1 << 24;  // ids beyond are refused (a vocabulary of 16M tokens)

  // Validates before it allocates by id: ids in [0, kMaxId), each once;
  // every merge's two sides and its result in the vocabulary.
  static Result<std::unique_ptr<BpeModel>> Build(std::vector<std::pair<std::string, int32_t>> vocab,
                                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                                 Options options);

  void Encode(std::string_view piece, std::vector<int32_t>* out) const;
  int32_t IdOf(std::string_view token) const;       // -1: not in the vocabulary
  const std::string* TokenOf(int32_t id) const;     // null: no such id
  int32_t id_end() const { return static_cast<int32_t>(tokens_.size()); }  // 1 + the largest id
  // The merges in rank order, as token strings (for writing a GGUF vocabulary).
  std::vector<std::pair<std::string, std::string>> Merges() const;

 private:
  struct Merge {
    int32_t rank;
    int32_t id;  // what the pair becomes
  };
  static uint64_t Key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
  void Symbols(std::string_view piece, std::vector<int32_t>* symbols) const;

  BpeModel() = default;
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<std::string> tokens_;     // by id; empty where no token has the id
  std::vector<bool> present_;           // by id
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<uint64_t> merge_order_;   // keys by rank
  Options options_;
  int32_t unk_id_ = -1;
};

}  // namespace strata::text
