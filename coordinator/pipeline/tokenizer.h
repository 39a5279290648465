#pragma once
// Tokenizer: a checkpoint's vocabulary plus its BOS/EOS rules. The
// vocabulary is the first of:
//   - a GGUF file's tokenizer.ggml.*: "llama" (SentencePiece-style pieces,
//     scores and types, merged by score as llama.cpp's SPM tokenizer does) or
//     "gpt2" (byte-level BPE with merges and a tokenizer.ggml.pre name);
//   - DIR/tokenizer.json (Hugging Face's, BPE), as the `tokenizers` library reads it;
//   - DIR/tokenizer.model (SentencePiece).
// Thread-compatible (const methods may run concurrently).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/model_config.h"

namespace sentencepiece { class SentencePieceProcessor; }

namespace strata {
namespace text { class HfTokenizer; }

// A piece of a prompt. Added and special tokens (<|im_start|> ...) are
// recognised only in trusted parts: a chat template's own text, never a
// user's message.
struct TextPart {
  std::string text;
  bool trusted = true;
};

class GgufFile;

class Tokenizer {
 public:
  // Loads DIR/tokenizer.model, or the vocabulary of the GGUF file at that
  // path; BOS handling comes from the model's config.
  // A GGUF model's tokenizer comes from its opened file when given (no second parse).
  static Result<std::unique_ptr<Tokenizer>> Load(const std::string& dir, const ModelConfig& config,
                                                 const GgufFile* gguf = nullptr);
  ~Tokenizer();

  // BOS prepended when the model wants it and `bos`. Special tokens in `text`
  // are recognised (a prompt is trusted, as the tokenizers library does);
  // invalid UTF-8 is read as U+FFFD.
  std::vector<int32_t> Encode(const std::string& text, bool bos = true) const;
  // The parts as one text, special tokens recognised only in trusted parts
  // (a SentencePiece model never matches its control tokens in text).
  std::vector<int32_t> EncodeParts(const std::vector<TextPart>& parts, bool bos) const;
  // Ids the tokenizer does not know (a model vocabulary larger than the
  // tokenizer's) decode to nothing rather than failing.
  std::string Decode(const std::vector<int32_t>& ids) const;
  bool IsEos(int32_t id) const;
  const std::vector<int64_t>& eos_ids() const { return eos_ids_; }
  std::string Piece(int32_t id) const;  // one token's text, a special one's included ("" past the vocabulary)
  int32_t bos() const { return add_bos_ ? bos_id_ : -1; }  // what Encode prepends (-1: nothing)
  int32_t piece_count() const;  // 1 + the largest id the tokenizer has
  const char* kind() const { return hf_ ? "bpe" : "sentencepiece"; }
  // The fewest tokens a text of `bytes` bytes can encode to (no token covers
  // more bytes than the longest piece): a prompt far over the context is
  // refused before the work of encoding it.
  int64_t FewestTokens(size_t bytes) const { return static_cast<int64_t>(bytes / longest_piece_bytes_); }

 private:
  Tokenizer() = default;
  Status LoadVocabulary(const std::string& dir, const GgufFile* gguf);
  // Exactly one is set.
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::unique_ptr<text::HfTokenizer> hf_;
  bool add_bos_ = true;
  int32_t bos_id_ = -1;
  std::vector<int64_t> eos_ids_;
  size_t longest_piece_bytes_ = 1;
};

// A generation's text, token by token: Push decodes a window of the last
// few tokens, not the whole text (that was quadratic in the length), and
// gives what the new token completes. The window's first tokens give the
// decoder the context the whole text would (a leading space, the start of
// a byte sequence); what the window decodes to past its earlier text is
// new, as incremental detokenizers (vLLM's, TGI's) take it. Text that ends
// in U+FFFD is held back: a character split over tokens (an emoji, most
// CJK in a byte-level vocabulary) decodes so until its last byte is in.
// Flush gives what is held at the end, so the whole is Decode(all ids).
// Not thread-safe; borrows the tokenizer.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string Push(int32_t id);  // the text this token completes ("" while a character is incomplete)
  std::string Flush();           // what is held back (an incomplete or invalid last character)
  const std::string& text() const { return text_; }

 private:
  std::vector<int32_t> Window(size_t begin, size_t end) const;
  // Takes the window's decode `text` when it extends window_text_; the added part.
  std::string Take(const std::string& text);

  const Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  std::string text_;                    // of ids_ [0, window_end_)
  size_t window_begin_ = 0, window_end_ = 0;
  std::string window_text_;             // ids_ [window_begin_, window_end_) decoded alone
};

}  // namespace strata
