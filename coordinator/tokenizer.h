#pragma once
// Tokenizer: a checkpoint's SentencePiece model plus its BOS rule: its
// tokenizer.model, or a GGUF file's tokenizer.ggml.* vocabulary
// (tokenizer.ggml.model "llama": pieces, scores and types, merged by score
// as llama.cpp's SPM tokenizer does).
// Thread-compatible (const methods may run concurrently).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "storage/model_config.h"
#include "storage/status.h"

namespace sentencepiece { class SentencePieceProcessor; }

namespace strata {

class GgufFile;

class Tokenizer {
 public:
  // Loads DIR/tokenizer.model, or the vocabulary of the GGUF file at that
  // path; BOS handling comes from the model's config.
  // A GGUF model's tokenizer comes from its opened file when given (no second parse).
  static Result<std::unique_ptr<Tokenizer>> Load(const std::string& dir, const ModelConfig& config,
                                                 const GgufFile* gguf = nullptr);
  ~Tokenizer();

  std::vector<int32_t> Encode(const std::string& text, bool bos = true) const;  // BOS prepended when the model wants it and `bos`
  // Ids the tokenizer does not know (a model vocabulary larger than the
  // tokenizer's) decode to nothing rather than failing.
  std::string Decode(const std::vector<int32_t>& ids) const;
  bool IsEos(int32_t id) const;
  int32_t bos() const { return add_bos_ ? bos_id_ : -1; }  // what Encode prepends (-1: nothing)
  int32_t piece_count() const;

 private:
  Tokenizer() = default;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  bool add_bos_ = true;
  int32_t bos_id_ = -1;
  std::vector<int64_t> eos_ids_;
};

}  // namespace strata
