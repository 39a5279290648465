#include "coordinator/pipeline/tokenizer.h"

#include <sentencepiece_processor.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/escape.h"
#include "coordinator/text/hf_tokenizer.h"
#include "coordinator/text/utf8.h"
#include "storage/gguf.h"
#include "storage/gguf_model.h"

namespace strata {
namespace {

// SentencePiece's ModelProto, written by hand (protobuf wire format): the
// few fields a GGUF vocabulary fills.
class Proto {
 public:
  void Varint(uint32_t field, uint64_t v) {
    Key(field, 0);
    Raw(v);
  }
  void Int32(uint32_t field, int64_t v) { Varint(field, static_cast<uint64_t>(v)); }  // negative: ten bytes
  void Float(uint32_t field, float v) {
    Key(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    out_.append(b, 4);
  }
  void Bytes(uint32_t field, const std::string& s) {
    Key(field, 2);
    Raw(s.size());
    out_ += s;
  }
  const std::string& str() const { return out_; }

 private:
  void Key(uint32_t field, uint32_t wire) { Raw((static_cast<uint64_t>(field) << 3) | wire); }
  void Raw(uint64_t v) {
    do {
      out_.push_back(static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
      v >>= 7;
    } while (v != 0);
  }
  std::string out_;
};

// A "gpt2" vocabulary: byte-level BPE, as the tokenizer.json it came from.
Result<std::unique_ptr<text::HfTokenizer>> GgufBpe(const GgufFile& f) {
  auto tokens = f.Array("tokenizer.ggml.tokens", GgufValue::Kind::kString);
  auto types = f.Array("tokenizer.ggml.token_type", GgufValue::Kind::kInt);
  auto merges = f.Array("tokenizer.ggml.merges", GgufValue::Kind::kString);
  auto pre = f.String("tokenizer.ggml.pre");
  if (!tokens.ok()) return tokens.status();
  if (!types.ok()) return types.status();
  if (!merges.ok()) return merges.status();
  text::HfTokenizer::GgufVocab v;
  v.tokens = tokens.value()->strings;
  v.types = types.value()->ints;
  v.merges = merges.value()->strings;
  v.pre = pre.ok() ? pre.value() : "default";
  return text::HfTokenizer::FromGguf(v, f.path());
}

Result<std::string> GgufSentencePiece(const GgufFile& f) {
  const std::string& path = f.path();
  auto tokens = f.Array("tokenizer.ggml.tokens", GgufValue::Kind::kString);
  auto scores = f.Array("tokenizer.ggml.scores", GgufValue::Kind::kFloat);
  auto types = f.Array("tokenizer.ggml.token_type", GgufValue::Kind::kInt);
  if (!tokens.ok()) return tokens.status();
  if (!scores.ok()) return scores.status();
  if (!types.ok()) return types.status();
  const size_t n = tokens.value()->strings.size();
  if (n == 0 || scores.value()->floats.size() != n || types.value()->ints.size() != n) {
    return Status::Error(path + ": tokenizer.ggml.tokens, scores and token_type must be non-empty and of one length");
  }
  Proto m;
  bool bytes = false;
  for (size_t i = 0; i < n; ++i) {
    const int64_t type = types.value()->ints[i];
    if (type < 1 || type > 6) return Status::Error(path + ": token " + std::to_string(i) + " has type " + std::to_string(type));
    bytes = bytes || type == 6;
    Proto piece;
    piece.Bytes(1, tokens.value()->strings[i]);
    piece.Float(2, static_cast<float>(scores.value()->floats[i]));
    piece.Varint(3, static_cast<uint64_t>(type));
    m.Bytes(1, piece.str());
  }
  Proto trainer;
  trainer.Varint(3, 2);  // BPE: pieces merge by score
  trainer.Int32(4, static_cast<int64_t>(n));
  trainer.Varint(35, bytes);
  auto id = [&](const char* key, int64_t fallback) {
    auto v = f.Int(key);
    return v.ok() && v.value() >= 0 && v.value() < static_cast<int64_t>(n) ? v.value() : fallback;
  };
  trainer.Int32(40, id("tokenizer.ggml.unknown_token_id", 0));
  trainer.Int32(41, id("tokenizer.ggml.bos_token_id", -1));
  trainer.Int32(42, id("tokenizer.ggml.eos_token_id", -1));
  trainer.Int32(43, id("tokenizer.ggml.padding_token_id", -1));
  m.Bytes(2, trainer.str());
  Proto normalizer;
  normalizer.Bytes(1, "identity");
  auto space = f.Bool("tokenizer.ggml.add_space_prefix");
  normalizer.Varint(3, space.ok() ? space.value() : true);
  normalizer.Varint(4, false);  // llama.cpp keeps runs of spaces
  normalizer.Varint(5, true);
  m.Bytes(3, normalizer.str());
  return m.str();
}

}  // namespace

Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir, const ModelConfig& config,
                                                   const GgufFile* gguf) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  std::unique_ptr<GgufFile> opened;
  if (gguf == nullptr && IsGgufFile(dir)) {
    auto file = GgufFile::Open(dir);
    if (!file.ok()) return file.status();
    opened = std::move(file.value());
    gguf = opened.get();
  }
  Status loaded = t->LoadVocabulary(dir, gguf);
  if (!loaded.ok()) return loaded;
  const std::string origin = gguf != nullptr ? dir : dir + (t->hf_ ? "/tokenizer.json" : "/tokenizer.model");
  if (config.vocab_size > 0 && t->piece_count() > config.vocab_size) {
    return Status::Error(origin + ": the tokenizer has " + std::to_string(t->piece_count()) +
                         " tokens but the model's vocab_size is " + std::to_string(config.vocab_size));
  }
  t->add_bos_ = config.add_bos;
  t->bos_id_ = static_cast<int32_t>(config.bos_token_id >= 0 ? config.bos_token_id : t->sp_ ? t->sp_->bos_id() : -1);
  t->eos_ids_ = config.eos_token_ids;
  if (t->eos_ids_.empty() && t->sp_ && t->sp_->eos_id() >= 0) t->eos_ids_.push_back(t->sp_->eos_id());
  for (int32_t id = 0; id < t->piece_count(); ++id) {
    t->longest_piece_bytes_ = std::max(t->longest_piece_bytes_, t->Piece(id).size());
  }
  return t;
}

Status Tokenizer::LoadVocabulary(const std::string& dir, const GgufFile* gguf) {
  std::string path = dir + "/tokenizer.model";
  sentencepiece::util::Status status;
  if (gguf != nullptr) {
    path = dir;
    auto model = gguf->String("tokenizer.ggml.model");
    if (!model.ok()) return model.status();
    if (model.value() == "gpt2") {
      auto bpe = GgufBpe(*gguf);
      if (!bpe.ok()) return bpe.status();
      hf_ = std::move(bpe.value());
      return Status::Ok();
    }
    if (model.value() != "llama") {
      return Status::Error(dir + ": tokenizer.ggml.model '" + EscapeText(model.value(), 64) +
                           "' is not a vocabulary Strata reads (llama: SentencePiece, gpt2: byte-level BPE)");
    }
    auto proto = GgufSentencePiece(*gguf);
    if (!proto.ok()) return proto.status();
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    status = sp_->LoadFromSerializedProto(proto.value());
  } else if (::access((dir + "/tokenizer.json").c_str(), F_OK) == 0) {
    auto hf = text::HfTokenizer::Load(dir + "/tokenizer.json");
    if (!hf.ok()) return hf.status();
    hf_ = std::move(hf.value());
    return Status::Ok();
  } else {
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    status = sp_->Load(path);
  }
  if (!status.ok()) return Status::Error("cannot load tokenizer " + path + ": " + status.ToString());
  return Status::Ok();
}

std::vector<int32_t> Tokenizer::Encode(const std::string& text, bool bos) const {
  return EncodeParts({TextPart{text, true}}, bos);
}

std::vector<int32_t> Tokenizer::EncodeParts(const std::vector<TextPart>& parts, bool bos) const {
  std::string joined;
  text::TrustedRanges trusted;
  for (const auto& p : parts) {
    const size_t at = joined.size();
    joined += text::LossyUtf8(p.text);
    if (p.trusted) trusted.emplace_back(at, joined.size());
  }
  std::vector<int32_t> ids;
  if (bos && add_bos_ && bos_id_ >= 0) ids.push_back(bos_id_);
  if (hf_) {
    const std::vector<int32_t> pieces = hf_->Encode(joined, &trusted);
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    return ids;
  }
  std::vector<int> pieces;
  sp_->Encode(joined, &pieces);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::vector<int> known;
  for (int32_t id : ids) {
    if (id >= 0 && id < piece_count() && !IsEos(id) && id != bos_id_) known.push_back(id);
  }
  if (hf_) return hf_->Decode(std::vector<int32_t>(known.begin(), known.end()));
  std::string text;
  sp_->Decode(known, &text);
  return text;
}

std::string Tokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= piece_count()) return "";
  return hf_ ? hf_->Decode({id}) : sp_->IdToPiece(id);
}

bool Tokenizer::IsEos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), static_cast<int64_t>(id)) != eos_ids_.end();
}

int32_t Tokenizer::piece_count() const { return hf_ ? hf_->id_end() : sp_->GetPieceSize(); }

std::vector<int32_t> IncrementalDecoder::Window(size_t begin, size_t end) const {
  return std::vector<int32_t>(ids_.begin() + static_cast<long>(begin), ids_.begin() + static_cast<long>(end));
}

std::string IncrementalDecoder::Push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_.Decode(Window(window_begin_, ids_.size()));
  static const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  const bool incomplete = text.size() >= kReplacement.size() &&
                          text.compare(text.size() - kReplacement.size(), kReplacement.size(), kReplacement) == 0;
  if (incomplete) return "";
  return Take(text);
}

std::string IncrementalDecoder::Flush() {
  if (window_end_ == ids_.size()) return "";
  return Take(tokenizer_.Decode(Window(window_begin_, ids_.size())));
}

std::string IncrementalDecoder::Take(const std::string& text) {
  constexpr size_t kContext = 8;  // tokens of context a window keeps
  if (text.size() < window_text_.size() || text.compare(0, window_text_.size(), window_text_) != 0) return "";
  std::string added = text.substr(window_text_.size());
  text_ += added;
  window_end_ = ids_.size();
  window_text_ = text;
  if (window_end_ - window_begin_ >= 2 * kContext) {
    window_begin_ = window_end_ - kContext;
    window_text_ = tokenizer_.Decode(Window(window_begin_, window_end_));
  }
  return added;
}

}  // namespace strata
