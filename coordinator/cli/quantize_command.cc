#include "coordinator/cli/quantize_command.h"

#include <sentencepiece_processor.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "coordinator/text/hf_tokenizer.h"
#include "storage/checkpoint.h"
#include "storage/gguf_quantize.h"

namespace strata {
namespace {

using json = nlohmann::json;

// The SentencePiece vocabulary as tokenizer.ggml.* (llama.cpp's "llama"
// vocabulary: pieces, scores, types).
Status SentencePieceMetadata(const std::string& dir, const ModelConfig& c, std::vector<std::pair<std::string, GgufValue>>* meta,
                             int64_t* bos, int64_t* eos) {
  sentencepiece::SentencePieceProcessor sp;
  const auto loaded = sp.Load(dir + "/tokenizer.model");
  if (!loaded.ok()) return Status::Error("cannot load " + dir + "/tokenizer.model: " + loaded.ToString());
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    tokens.push_back(sp.IdToPiece(id));
    scores.push_back(sp.GetScore(id));
    types.push_back(sp.IsUnknown(id) ? 2 : sp.IsControl(id) ? 3 : sp.IsUnused(id) ? 5 : sp.IsByte(id) ? 6 : 1);
  }
  // A model vocabulary larger than the tokenizer's: padding pieces, never produced.
  for (int64_t id = sp.GetPieceSize(); id < c.vocab_size; ++id) {
    tokens.push_back("<strata_pad_" + std::to_string(id) + ">");
    scores.push_back(-1e9f);
    types.push_back(5);
  }
  meta->push_back({"tokenizer.ggml.model", GgufStr("llama")});
  meta->push_back({"tokenizer.ggml.tokens", GgufStrArray(std::move(tokens))});
  meta->push_back({"tokenizer.ggml.scores", GgufF32Array(std::move(scores))});
  meta->push_back({"tokenizer.ggml.token_type", GgufI32Array(std::move(types))});
  if (sp.unk_id() >= 0) meta->push_back({"tokenizer.ggml.unknown_token_id", GgufU32(static_cast<uint32_t>(sp.unk_id()))});
  *bos = sp.bos_id();
  *eos = sp.eos_id();
  return Status::Ok();
}

// A tokenizer.json's byte-level BPE as llama.cpp's "gpt2" vocabulary:
// tokens, types, merges and the pre-tokenizer's name.
Status BpeMetadata(const std::string& dir, const ModelConfig& c, std::vector<std::pair<std::string, GgufValue>>* meta) {
  auto hf = text::HfTokenizer::Load(dir + "/tokenizer.json");
  if (!hf.ok()) return hf.status();
  auto v = hf.value()->ToGguf();
  if (!v.ok()) return Status::Error(dir + "/tokenizer.json: " + v.status().message());
  for (int64_t id = static_cast<int64_t>(v->tokens.size()); id < c.vocab_size; ++id) {
    v->tokens.push_back("[PAD" + std::to_string(id) + "]");
    v->types.push_back(5);
  }
  std::vector<int32_t> types(v->types.begin(), v->types.end());
  meta->push_back({"tokenizer.ggml.model", GgufStr("gpt2")});
  meta->push_back({"tokenizer.ggml.pre", GgufStr(v->pre)});
  meta->push_back({"tokenizer.ggml.tokens", GgufStrArray(std::move(v->tokens))});
  meta->push_back({"tokenizer.ggml.token_type", GgufI32Array(std::move(types))});
  meta->push_back({"tokenizer.ggml.merges", GgufStrArray(std::move(v->merges))});
  return Status::Ok();
}

// The model's vocabulary as tokenizer.ggml.* (tokenizer.json first, as
// Tokenizer reads it), its BOS/EOS rule and its chat template.
Status TokenizerMetadata(const std::string& dir, const ModelConfig& c,
                         std::vector<std::pair<std::string, GgufValue>>* meta) {
  int64_t bos = -1, eos = -1;
  const bool bpe = ::access((dir + "/tokenizer.json").c_str(), F_OK) == 0;
  Status st = bpe ? BpeMetadata(dir, c, meta) : SentencePieceMetadata(dir, c, meta, &bos, &eos);
  if (!st.ok()) return st;
  if (c.bos_token_id >= 0) bos = c.bos_token_id;
  if (!c.eos_token_ids.empty()) eos = c.eos_token_ids[0];
  if (bos >= 0) meta->push_back({"tokenizer.ggml.bos_token_id", GgufU32(static_cast<uint32_t>(bos))});
  if (eos >= 0) meta->push_back({"tokenizer.ggml.eos_token_id", GgufU32(static_cast<uint32_t>(eos))});
  meta->push_back({"tokenizer.ggml.add_bos_token", GgufBool(c.add_bos)});
  meta->push_back({"tokenizer.ggml.add_eos_token", GgufBool(false)});
  std::ifstream in(dir + "/tokenizer_config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  json t = json::parse(ss.str(), nullptr, false);
  if (t.is_object() && t.contains("chat_template") && t["chat_template"].is_string()) {
    meta->push_back({"tokenizer.chat_template", GgufStr(t["chat_template"].get<std::string>())});
  }
  return Status::Ok();
}

}  // namespace

Status QuantizeModel(Env& env, const QuantizeOptions& o) {
  if (!KnownQuantizeType(o.type)) {
    return Status::Error("--type must be one of " + std::string(QuantizeTypes()) + ", got '" + o.type + "'");
  }
  auto opened = Checkpoint::Open(o.model_dir);
  if (!opened.ok()) return opened.status();
  GgufQuantizeOptions g;
  g.type = o.type;
  g.out = o.out;
  g.progress = o.progress;
  Status st = opened.value()->gguf() != nullptr ? Status::Ok() : TokenizerMetadata(o.model_dir, opened.value()->config(), &g.metadata);
  if (!st.ok()) return st;
  return WriteQuantizedGguf(env, *opened.value(), g);
}

}  // namespace strata
