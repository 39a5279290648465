#include "coordinator/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>

namespace strata {

Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir, const ModelConfig& config) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const std::string path = dir + "/tokenizer.model";
  auto status = t->sp_->Load(path);
  if (!status.ok()) return Status::Error("cannot load tokenizer " + path + ": " + status.ToString());
  t->add_bos_ = config.add_bos;
  t->bos_id_ = static_cast<int32_t>(config.bos_token_id >= 0 ? config.bos_token_id : t->sp_->bos_id());
  t->eos_ids_ = config.eos_token_ids;
  if (t->eos_ids_.empty() && t->sp_->eos_id() >= 0) t->eos_ids_.push_back(t->sp_->eos_id());
  return t;
}

std::vector<int32_t> Tokenizer::Encode(const std::string& text, bool bos) const {
  std::vector<int> pieces;
  sp_->Encode(text, &pieces);
  std::vector<int32_t> ids;
  if (bos && add_bos_ && bos_id_ >= 0) ids.push_back(bos_id_);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::vector<int> known;
  for (int32_t id : ids) {
    if (id >= 0 && id < sp_->GetPieceSize() && !IsEos(id) && id != bos_id_) known.push_back(id);
  }
  std::string text;
  sp_->Decode(known, &text);
  return text;
}

bool Tokenizer::IsEos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), static_cast<int64_t>(id)) != eos_ids_.end();
}

int32_t Tokenizer::piece_count() const { return sp_->GetPieceSize(); }

}  // namespace strata
