#include "coordinator/text/hf_tokenizer.h"

#include <sys/stat.h>
#include <unicode/uchar.h>

#include <algorithm>
#include <fstream>

#include "coordinator/text/json_fields.h"
#include "coordinator/text/utf8.h"

namespace strata::text {
namespace {

// The Split patterns of the tokenizer.json files behind llama.cpp's
// tokenizer.ggml.pre names (Llama 3's and Qwen 2's, the same in every file).
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct PreName {
  const char* name;
  const char* split;  // "gpt2": ByteLevel's own regex
  bool nfc;
};
constexpr PreName kPreNames[] = {{"llama-bpe", kLlama3Split, false},
                                  {"qwen2", kQwen2Split, true},
                                  {"gpt2", "gpt2", false},
                                  {"smollm", "smollm", false}};  // SmolLM2: digits one by one, then GPT-2's regex

const PreName* PreByName(const std::string& name) {
  const std::string n = name == "llama3" || name == "llama-v3" ? "llama-bpe" : name == "default" ? "gpt2" : name;
  for (const auto& p : kPreNames) {
    if (n == p.name) return &p;
  }
  return nullptr;
}

// Sequence[Split(regex, Isolated), ByteLevel(no regex)] -> the regex;
// ByteLevel(GPT-2's regex) -> "gpt2"; anything else -> "".
std::string PreSignature(const json& p) {
  auto plain_byte_level = [](const json& b, bool use_regex) {
    bool prefix, regex;
    return StepType(b) == "ByteLevel" && Field(b, "add_prefix_space", true, &prefix) && !prefix &&
           Field(b, "use_regex", true, &regex) && regex == use_regex;
  };
  if (plain_byte_level(p, true)) return "gpt2";
  if (StepType(p) == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array() &&
      p["pretokenizers"].size() == 2) {
    const json& d = p["pretokenizers"][0];
    bool individual;
    if (StepType(d) == "Digits" && Field(d, "individual_digits", false, &individual) && individual &&
        plain_byte_level(p["pretokenizers"][1], true)) {
      return "smollm";
    }
  }
  if (StepType(p) != "Sequence" || !p.contains("pretokenizers") || !p["pretokenizers"].is_array() ||
      p["pretokenizers"].size() != 2) {
    return "";
  }
  const json& s = p["pretokenizers"][0];
  PatternField pattern;
  std::string behavior;
  bool invert;
  if (StepType(s) != "Split" || !Pattern(s, &pattern) || !pattern.regex || !Field(s, "behavior", std::string(), &behavior) ||
      behavior != "Isolated" || !Field(s, "invert", false, &invert) || invert) {
    return "";
  }
  return plain_byte_level(p["pretokenizers"][1], false) ? pattern.text : "";
}

bool Inside(const TrustedRanges* trusted, size_t b, size_t e) {
  if (trusted == nullptr) return true;
  for (const auto& [tb, te] : *trusted) {
    if (b >= tb && e <= te) return true;
  }
  return false;
}

bool IsWordChar(std::string_view s, size_t i) {
  const auto c = static_cast<UChar32>(CodepointAt(s, i));
  return u_isalnum(c) || c == '_';
}

size_t PrevCharStart(std::string_view s, size_t i) {
  size_t k = i - 1;
  while (k > 0 && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80) --k;
  return k;
}

Result<std::string> ReadBounded(const std::string& path, size_t max_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::Error("cannot open " + path);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Status::Error(path + ": " + std::to_string(st.st_size) + " bytes is over the limit of " + std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(text.size()))) return Status::Error("cannot read " + path);
  return text;
}

Result<BpeModel::Options> ModelOptions(const json& m) {
  BpeModel::Options o;
  if (!Field(m, "unk_token", std::string(), &o.unk_token) || !Field(m, "fuse_unk", false, &o.fuse_unk) ||
      !Field(m, "byte_fallback", false, &o.byte_fallback) || !Field(m, "ignore_merges", false, &o.ignore_merges) ||
      !Field(m, "continuing_subword_prefix", std::string(), &o.continuing_prefix) ||
      !Field(m, "end_of_word_suffix", std::string(), &o.end_suffix)) {
    return Status::Error("model: a field has the wrong type (unk_token, fuse_unk, byte_fallback, ignore_merges, "
                         "continuing_subword_prefix, end_of_word_suffix)");
  }
  return o;
}

Result<std::vector<std::pair<std::string, std::string>>> Merges(const json& m) {
  std::vector<std::pair<std::string, std::string>> merges;
  if (!m.contains("merges")) return merges;
  if (!m["merges"].is_array()) return Status::Error("model: merges must be a list");
  merges.reserve(m["merges"].size());
  for (const json& x : m["merges"]) {
    if (x.is_string()) {
      const std::string s = x.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return Status::Error("model: merge '" + EscapeText(s, 64) + "' is not two tokens split by a space");
      }
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {
      merges.emplace_back(x[0].get<std::string>(), x[1].get<std::string>());
    } else {
      return Status::Error("model: a merge is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return merges;
}

Result<AddedToken> ParseAdded(const json& a) {
  AddedToken t;
  int64_t id;
  if (!a.is_object() || !Field(a, "id", int64_t{-1}, &id) || !Field(a, "content", std::string(), &t.content) ||
      !Field(a, "special", false, &t.special) || !Field(a, "normalized", !t.special, &t.normalized) ||
      !Field(a, "lstrip", false, &t.lstrip) || !Field(a, "rstrip", false, &t.rstrip) ||
      !Field(a, "single_word", false, &t.single_word)) {
    return Status::Error("added_tokens: an entry has a field of the wrong type");
  }
  if (id < 0 || id >= BpeModel::kMaxId || t.content.empty() || LossyUtf8(t.content) != t.content) {
    return Status::Error("added_tokens: '" + EscapeText(t.content, 64) + "' needs a non-empty UTF-8 content and an id in 0.." +
                         std::to_string(BpeModel::kMaxId - 1));
  }
  t.id = static_cast<int32_t>(id);
  return t;
}

}  // namespace

Result<std::unique_ptr<HfTokenizer>> HfTokenizer::Load(const std::string& path) {
  auto text = ReadBounded(path, kMaxFileBytes);
  if (!text.ok()) return text.status();
  return FromJson(text.value(), path);
}

Result<std::unique_ptr<HfTokenizer>> HfTokenizer::FromJson(std::string_view text, const std::string& origin) {
  const json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(origin + ": not a JSON object");
  auto fail = [&](const Status& s) { return Status::Error(origin + ": " + s.message()); };
  try {
    if (!j.contains("model") || !j["model"].is_object()) return fail(Status::Error("no model object"));
    const json& m = j["model"];
    const std::string type = StepType(m).empty() && m.contains("merges") ? "BPE" : StepType(m);
    if (type != "BPE") {
      return fail(Status::Error("model type '" + EscapeText(type, 64) +
                                "' is not read (only BPE; SentencePiece models come as tokenizer.model)"));
    }
    if (!m.contains("vocab") || !m["vocab"].is_object()) return fail(Status::Error("model: no vocab object"));
    std::vector<std::pair<std::string, int32_t>> vocab;
    vocab.reserve(m["vocab"].size());
    for (const auto& [token, id] : m["vocab"].items()) {
      if (!id.is_number_integer()) return fail(Status::Error("model: the id of '" + EscapeText(token, 64) + "' is not an integer"));
      const int64_t v = id.get<int64_t>();
      vocab.emplace_back(token, v < 0 || v >= BpeModel::kMaxId ? -1 : static_cast<int32_t>(v));
    }
    auto merges = Merges(m);
    auto options = ModelOptions(m);
    if (!merges.ok()) return fail(merges.status());
    if (!options.ok()) return fail(options.status());
    std::unique_ptr<HfTokenizer> t(new HfTokenizer());
    auto model = BpeModel::Build(std::move(vocab), merges.value(), options.value());
    if (!model.ok()) return fail(model.status());
    t->model_ = std::move(model.value());
    const json null;
    auto normalizer = NormalizerFromJson(j.contains("normalizer") ? j["normalizer"] : null);
    auto pre = PreTokenizerFromJson(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : null);
    auto decoder = DecoderFromJson(j.contains("decoder") ? j["decoder"] : null);
    if (!normalizer.ok()) return fail(normalizer.status());
    if (!pre.ok()) return fail(pre.status());
    if (!decoder.ok()) return fail(decoder.status());
    t->normalizer_ = std::move(normalizer.value());
    t->pre_tokenizer_ = std::move(pre.value());
    t->decoder_ = std::move(decoder.value());
    t->pre_signature_ = j.contains("pre_tokenizer") ? PreSignature(j["pre_tokenizer"]) : "";
    t->nfc_ = j.contains("normalizer") && StepType(j["normalizer"]) == "NFC";
    t->plain_ = !j.contains("normalizer") || j["normalizer"].is_null();
    if (j.contains("added_tokens")) {
      if (!j["added_tokens"].is_array()) return fail(Status::Error("added_tokens must be a list"));
      for (const json& a : j["added_tokens"]) {
        auto added = ParseAdded(a);
        if (!added.ok()) return fail(added.status());
        t->added_.push_back(std::move(added.value()));
      }
    }
    Status indexed = t->Index();
    if (!indexed.ok()) return fail(indexed);
    return t;
  } catch (const json::exception& e) {
    return Status::Error(origin + ": " + e.what());
  }
}

Result<std::unique_ptr<HfTokenizer>> HfTokenizer::FromGguf(const GgufVocab& v, const std::string& origin) {
  auto fail = [&](const std::string& why) { return Status::Error(origin + ": " + why); };
  const PreName* pre = PreByName(v.pre);
  if (pre == nullptr) {
    return fail("tokenizer.ggml.pre '" + EscapeText(v.pre, 64) + "' is not a pre-tokenizer Strata knows (llama-bpe, qwen2, gpt2, smollm)");
  }
  if (v.tokens.empty() || v.types.size() != v.tokens.size() || v.tokens.size() > static_cast<size_t>(BpeModel::kMaxId)) {
    return fail("tokenizer.ggml.tokens and token_type must be non-empty, of one length and at most " +
                std::to_string(BpeModel::kMaxId));
  }
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::unordered_map<std::string, int32_t> seen;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int64_t type = v.types[i];
    if (type < 1 || type > 6) return fail("token " + std::to_string(i) + " has type " + std::to_string(type));
    if (type == 3 || type == 4) {
      AddedToken a;
      a.id = static_cast<int32_t>(i);
      a.content = v.tokens[i];
      a.special = type == 3;
      if (!a.content.empty() && LossyUtf8(a.content) == a.content) t->added_.push_back(std::move(a));
      continue;
    }
    if (type == 5 || !seen.emplace(v.tokens[i], static_cast<int32_t>(i)).second) continue;  // unused, or a repeat
    vocab.emplace_back(v.tokens[i], static_cast<int32_t>(i));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(v.merges.size());
  for (const auto& s : v.merges) {
    const size_t sp = s.find(' ', 1);
    if (sp == std::string::npos) return fail("tokenizer.ggml.merges: '" + EscapeText(s, 64) + "' is not two tokens");
    merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
  }
  // Added tokens may repeat in the model's vocabulary: the merges may name them.
  for (const auto& a : t->added_) {
    if (seen.emplace(a.content, a.id).second) vocab.emplace_back(a.content, a.id);
  }
  auto model = BpeModel::Build(std::move(vocab), merges, BpeModel::Options());
  if (!model.ok()) return fail(model.status().message());
  t->model_ = std::move(model.value());
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  if (std::string(pre->split) == "gpt2" || std::string(pre->split) == "smollm") {
    auto p = PreTokenizerFromJson(std::string(pre->split) == "gpt2"
                                      ? byte_level
                                      : json{{"type", "Sequence"},
                                             {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level}}});
    if (!p.ok()) return p.status();
    t->pre_tokenizer_ = std::move(p.value());
  } else {
    auto split = RegexSplit(pre->split);
    if (!split.ok()) return split.status();
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(std::move(split.value()));
    steps.push_back(ByteLevelStep(false));
    t->pre_tokenizer_ = SequenceOf(std::move(steps));
  }
  if (pre->nfc) t->normalizer_ = Nfc();
  t->decoder_ = ByteLevelDecoder();
  t->pre_signature_ = pre->split;
  t->nfc_ = pre->nfc;
  t->plain_ = !pre->nfc;
  Status indexed = t->Index();
  if (!indexed.ok()) return fail(indexed.message());
  return t;
}

Result<HfTokenizer::GgufVocab> HfTokenizer::ToGguf() const {
  GgufVocab v;
  for (const auto& p : kPreNames) {
    if (pre_signature_ == p.split && (p.nfc ? nfc_ : plain_)) v.pre = p.name;
  }
  if (v.pre.empty()) {
    return Status::Error("no llama.cpp pre-tokenizer (tokenizer.ggml.pre) matches this tokenizer.json's normalizer and "
                         "pre-tokenizer (known: llama-bpe, qwen2, gpt2, smollm)");
  }
  const int32_t n = id_end();
  v.tokens.resize(static_cast<size_t>(n));
  v.types.assign(static_cast<size_t>(n), 5);  // unused, until a token has the id
  for (int32_t id = 0; id < n; ++id) {
    if (const std::string* tok = model_->TokenOf(id)) {
      v.tokens[id] = *tok;
      v.types[id] = 1;
    } else {
      v.tokens[id] = "[PAD" + std::to_string(id) + "]";
    }
  }
  for (const auto& a : added_) {
    v.tokens[a.id] = a.content;
    v.types[a.id] = a.special ? 3 : 4;
  }
  for (const auto& [a, b] : model_->Merges()) v.merges.push_back(a + " " + b);
  return v;
}

Status HfTokenizer::Index() {
  for (size_t i = 0; i < added_.size(); ++i) {
    if (!added_by_id_.emplace(added_[i].id, i).second) {
      return Status::Error("added token id " + std::to_string(added_[i].id) + " appears twice");
    }
    added_by_content_.emplace(added_[i].content, added_[i].id);
  }
  for (int k = 0; k < 2; ++k) added_by_byte_[k].assign(256, {});
  for (size_t i = 0; i < added_.size(); ++i) {
    added_by_byte_[added_[i].normalized ? 1 : 0][static_cast<uint8_t>(added_[i].content[0])].push_back(i);
  }
  for (auto& table : added_by_byte_) {
    for (auto& list : table) {
      std::stable_sort(list.begin(), list.end(),
                       [&](size_t a, size_t b) { return added_[a].content.size() > added_[b].content.size(); });
    }
  }
  return Status::Ok();
}

int32_t HfTokenizer::id_end() const {
  int32_t end = model_->id_end();
  for (const auto& a : added_) end = std::max(end, a.id + 1);
  return end;
}

int32_t HfTokenizer::IdOf(std::string_view token) const {
  auto it = added_by_content_.find(std::string(token));
  return it != added_by_content_.end() ? it->second : model_->IdOf(token);
}

// Leftmost-longest matches of the added tokens (raw or normalized ones).
std::vector<HfTokenizer::Match> HfTokenizer::FindAdded(std::string_view s, bool normalized, const TrustedRanges* trusted,
                                                       size_t base) const {
  std::vector<Match> out;
  const auto& table = added_by_byte_[normalized ? 1 : 0];
  size_t p = 0, last_end = 0;
  while (p < s.size()) {
    const AddedToken* hit = nullptr;
    for (size_t idx : table[static_cast<uint8_t>(s[p])]) {
      const AddedToken& a = added_[idx];
      if (s.compare(p, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    size_t b = p, e = hit != nullptr ? p + hit->content.size() : p;
    const bool whole_word = hit == nullptr || !hit->single_word ||
                            ((b == 0 || !IsWordChar(s, PrevCharStart(s, b))) && (e >= s.size() || !IsWordChar(s, e)));
    if (hit == nullptr || !whole_word || !Inside(trusted, base + b, base + e)) {
      ++p;
      continue;
    }
    auto space = [&](size_t i) { return u_isUWhiteSpace(static_cast<UChar32>(CodepointAt(s, i))); };
    while (hit->lstrip && b > last_end && space(PrevCharStart(s, b))) b = PrevCharStart(s, b);
    while (hit->rstrip && e < s.size() && space(e)) e += CharLen(s, e);
    out.push_back({b, e, hit->id});
    p = last_end = e;
  }
  return out;
}

// A run of text between added tokens: normalized, split, merged.
void HfTokenizer::EncodeRun(const std::string& s, bool first, const TrustedRanges* trusted, size_t base,
                            std::vector<int32_t>* out) const {
  const std::string n = normalizer_ ? normalizer_->Normalize(s) : s;
  // Normalized added tokens are offsets into the normalized text: recognised
  // only where the whole run is trusted.
  std::vector<Match> found;
  if (Inside(trusted, base, base + s.size())) found = FindAdded(n, true, nullptr, 0);
  size_t at = 0;
  auto pieces = [&](size_t b, size_t e) {
    if (e <= b) return;
    std::vector<std::string> split;
    if (pre_tokenizer_) pre_tokenizer_->Split(n.substr(b, e - b), first && b == 0, &split);
    else split.push_back(n.substr(b, e - b));
    for (const auto& piece : split) model_->Encode(piece, out);
  };
  for (const auto& m : found) {
    pieces(at, m.begin);
    out->push_back(m.id);
    at = m.end;
  }
  pieces(at, n.size());
}

std::vector<int32_t> HfTokenizer::Encode(std::string_view text, const TrustedRanges* trusted) const {
  std::vector<int32_t> out;
  size_t at = 0;
  for (const auto& m : FindAdded(text, false, trusted, 0)) {
    if (m.begin > at) EncodeRun(std::string(text.substr(at, m.begin - at)), at == 0, trusted, at, &out);
    out.push_back(m.id);
    at = m.end;
  }
  if (at < text.size()) EncodeRun(std::string(text.substr(at)), at == 0, trusted, at, &out);
  return out;
}

std::string HfTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<std::string> pending;
  auto flush = [&] {
    if (pending.empty()) return;
    if (decoder_) decoder_->Decode(&pending);
    for (size_t i = 0; i < pending.size(); ++i) {
      if (!decoder_ && i > 0) out.push_back(' ');
      out += pending[i];
    }
    pending.clear();
  };
  for (int32_t id : ids) {
    auto added = added_by_id_.find(id);
    if (added != added_by_id_.end()) {
      flush();
      out += added_[added->second].content;
    } else if (const std::string* tok = model_->TokenOf(id)) {
      pending.push_back(*tok);
    }
  }
  flush();
  return LossyUtf8(out);
}

}  // namespace strata::text
