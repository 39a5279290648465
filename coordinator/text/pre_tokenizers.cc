// Pre-tokenizers of tokenizer.json: how a text is cut into the pieces that
// the model merges one at a time, as the `tokenizers` library cuts it.
#include <unicode/uchar.h>

#include <algorithm>
#include <cctype>

#include "coordinator/text/json_fields.h"
#include "coordinator/text/regex.h"
#include "coordinator/text/text_steps.h"
#include "coordinator/text/utf8.h"

namespace strata::text {
namespace {

// GPT-2's pattern, ByteLevel's own when use_regex is set.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

bool ParseBehavior(const std::string& s, Behavior* b) {
  if (s == "Removed") *b = Behavior::kRemoved;
  else if (s == "Isolated") *b = Behavior::kIsolated;
  else if (s == "MergedWithPrevious") *b = Behavior::kMergedWithPrevious;
  else if (s == "MergedWithNext") *b = Behavior::kMergedWithNext;
  else if (s == "Contiguous") *b = Behavior::kContiguous;
  else return false;
  return true;
}

struct Segment {
  size_t begin, end;
  bool match;
};

// The library's split by delimiter behaviour over the matches of a piece.
void SplitBy(const std::string& s, const std::vector<std::pair<size_t, size_t>>& matches, Behavior behavior,
             bool invert, std::vector<std::string>* out) {
  std::vector<Segment> segs;
  size_t at = 0;
  for (const auto& [b, e] : matches) {
    if (b > at) segs.push_back({at, b, invert});
    segs.push_back({b, e, !invert});
    at = e;
  }
  if (at < s.size()) segs.push_back({at, s.size(), invert});
  std::vector<Segment> merged;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const auto& g : segs) if (!g.match) merged.push_back(g);
      break;
    case Behavior::kIsolated:
      merged = segs;
      break;
    case Behavior::kMergedWithPrevious:
      for (const auto& g : segs) {
        if (g.match && !previous_match && !merged.empty()) merged.back().end = g.end;
        else merged.push_back(g);
        previous_match = g.match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !previous_match && !merged.empty()) merged.back().begin = it->begin;
        else merged.push_back(*it);
        previous_match = it->match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    case Behavior::kContiguous:
      for (const auto& g : segs) {
        if (g.match == previous_match && !merged.empty()) merged.back().end = g.end;
        else merged.push_back(g);
        previous_match = g.match;
      }
      break;
  }
  for (const auto& g : merged) {
    if (g.end > g.begin) out->push_back(s.substr(g.begin, g.end - g.begin));
  }
}

class RegexSplitter final : public PreTokenizer {
 public:
  RegexSplitter(std::unique_ptr<Regex> r, Behavior b, bool invert) : r_(std::move(r)), behavior_(b), invert_(invert) {}
  void Split(const std::string& piece, bool, std::vector<std::string>* out) const override {
    SplitBy(piece, r_->FindAll(piece), behavior_, invert_, out);
  }

 private:
  std::unique_ptr<Regex> r_;
  Behavior behavior_;
  bool invert_;
};

// Characters of a class as delimiters (Digits, Punctuation, WhitespaceSplit).
class CharClassSplit final : public PreTokenizer {
 public:
  enum class Class { kDigit, kPunctuation, kWhitespace };
  CharClassSplit(Class c, Behavior b) : class_(c), behavior_(b) {}
  void Split(const std::string& piece, bool, std::vector<std::string>* out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    for (size_t i = 0; i < piece.size();) {
      const size_t n = CharLen(piece, i);
      if (In(CodepointAt(piece, i))) matches.emplace_back(i, i + n);
      i += n;
    }
    SplitBy(piece, matches, behavior_, false, out);
  }

 private:
  bool In(uint32_t cp) const {
    const auto c = static_cast<UChar32>(cp);
    switch (class_) {
      case Class::kDigit: return u_isdigit(c) || (u_charType(c) == U_LETTER_NUMBER) || (u_charType(c) == U_OTHER_NUMBER);
      case Class::kPunctuation: return (cp < 128 && std::ispunct(static_cast<int>(cp))) || u_ispunct(c);
      case Class::kWhitespace: return u_isUWhiteSpace(c);
    }
    return false;
  }
  Class class_;
  Behavior behavior_;
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, std::unique_ptr<Regex> r) : add_prefix_space_(add_prefix_space), r_(std::move(r)) {}
  void Split(const std::string& piece, bool, std::vector<std::string>* out) const override {
    const std::string s = add_prefix_space_ && (piece.empty() || piece[0] != ' ') ? " " + piece : piece;
    std::vector<std::string> pieces;
    if (r_) SplitBy(s, r_->FindAll(s), Behavior::kIsolated, false, &pieces);
    else pieces.push_back(s);
    for (const auto& p : pieces) {
      std::string mapped;
      for (unsigned char c : p) mapped += ByteLevelChar(c);
      out->push_back(std::move(mapped));
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> r_;  // null: the piece is mapped whole
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  Metaspace(std::string replacement, Prepend p, bool split) : rep_(std::move(replacement)), prepend_(p), split_(split) {}
  void Split(const std::string& piece, bool first, std::vector<std::string>* out) const override {
    std::string s;
    for (char c : piece) {
      if (c == ' ') s += rep_;
      else s.push_back(c);
    }
    const bool starts = s.compare(0, rep_.size(), rep_) == 0;
    if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && first))) s = rep_ + s;
    if (!split_) {
      if (!s.empty()) out->push_back(std::move(s));
      return;
    }
    std::vector<std::pair<size_t, size_t>> matches;
    for (size_t at = s.find(rep_); at != std::string::npos; at = s.find(rep_, at + rep_.size())) {
      matches.emplace_back(at, at + rep_.size());
    }
    SplitBy(s, matches, Behavior::kMergedWithNext, false, out);
  }

 private:
  std::string rep_;
  Prepend prepend_;
  bool split_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void Split(const std::string& piece, bool first, std::vector<std::string>* out) const override {
    std::vector<std::string> pieces{piece};
    for (const auto& step : steps_) {
      std::vector<std::string> next;
      for (size_t i = 0; i < pieces.size(); ++i) step->Split(pieces[i], first && i == 0, &next);
      pieces = std::move(next);
    }
    for (auto& p : pieces) out->push_back(std::move(p));
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

using Built = Result<std::unique_ptr<PreTokenizer>>;

Built BuildSplit(const json& j) {
  PatternField pattern;
  std::string behavior;
  bool invert;
  Behavior b;
  if (!Pattern(j, &pattern) || !Field(j, "behavior", std::string("Removed"), &behavior) ||
      !Field(j, "invert", false, &invert) || !ParseBehavior(behavior, &b)) {
    return BadStep("pre-tokenizer", j, "needs a pattern, a known behavior and a boolean invert");
  }
  auto r = pattern.regex ? Regex::Compile(pattern.text) : Regex::Literal(pattern.text);
  if (!r.ok()) return BadStep("pre-tokenizer", j, r.status().message());
  return std::unique_ptr<PreTokenizer>(new RegexSplitter(std::move(r.value()), b, invert));
}

Built BuildByteLevel(const json& j) {
  bool prefix, use_regex;
  if (!Field(j, "add_prefix_space", true, &prefix) || !Field(j, "use_regex", true, &use_regex)) {
    return BadStep("pre-tokenizer", j, "add_prefix_space and use_regex must be booleans");
  }
  std::unique_ptr<Regex> r;
  if (use_regex) {
    auto c = Regex::Compile(kGpt2Pattern);
    if (!c.ok()) return c.status();
    r = std::move(c.value());
  }
  return std::unique_ptr<PreTokenizer>(new ByteLevel(prefix, std::move(r)));
}

Built BuildMetaspace(const json& j) {
  std::string rep, scheme;
  bool legacy_prefix, split;
  if (!Field(j, "replacement", std::string("\xE2\x96\x81"), &rep) || rep.empty() ||
      !Field(j, "add_prefix_space", true, &legacy_prefix) || !Field(j, "split", true, &split) ||
      !Field(j, "prepend_scheme", std::string(legacy_prefix ? "always" : "never"), &scheme)) {
    return BadStep("pre-tokenizer", j, "needs a replacement character and boolean add_prefix_space/split");
  }
  Metaspace::Prepend p;
  if (scheme == "always") p = Metaspace::Prepend::kAlways;
  else if (scheme == "first") p = Metaspace::Prepend::kFirst;
  else if (scheme == "never") p = Metaspace::Prepend::kNever;
  else return BadStep("pre-tokenizer", j, "prepend_scheme must be always, first or never");
  return std::unique_ptr<PreTokenizer>(new Metaspace(rep, p, split));
}

Built Build(const json& j, int depth) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  const std::string type = StepType(j);
  if (type == "Split") return BuildSplit(j);
  if (type == "ByteLevel") return BuildByteLevel(j);
  if (type == "Metaspace") return BuildMetaspace(j);
  if (type == "Digits") {
    bool individual;
    if (!Field(j, "individual_digits", false, &individual)) return BadStep("pre-tokenizer", j, "individual_digits must be a boolean");
    return std::unique_ptr<PreTokenizer>(new CharClassSplit(
        CharClassSplit::Class::kDigit, individual ? Behavior::kIsolated : Behavior::kContiguous));
  }
  if (type == "Punctuation") {
    std::string behavior;
    Behavior b;
    if (!Field(j, "behavior", std::string("Isolated"), &behavior) || !ParseBehavior(behavior, &b)) {
      return BadStep("pre-tokenizer", j, "behavior is not one the library knows");
    }
    return std::unique_ptr<PreTokenizer>(new CharClassSplit(CharClassSplit::Class::kPunctuation, b));
  }
  if (type == "WhitespaceSplit") {
    return std::unique_ptr<PreTokenizer>(new CharClassSplit(CharClassSplit::Class::kWhitespace, Behavior::kRemoved));
  }
  if (type == "Whitespace") {
    auto r = Regex::Compile(R"(\w+|[^\w\s]+)");
    if (!r.ok()) return r.status();
    return std::unique_ptr<PreTokenizer>(new RegexSplitter(std::move(r.value()), Behavior::kRemoved, true));
  }
  if (type == "Sequence") {
    auto steps = SequenceSteps<PreTokenizer>(j, "pre-tokenizer", "pretokenizers", depth, Build);
    if (!steps.ok()) return steps.status();
    return SequenceOf(std::move(steps.value()));
  }
  return BadStep("pre-tokenizer", j, "is not a type Strata reads (Split, ByteLevel, Metaspace, Digits, Punctuation, "
                                      "Whitespace, WhitespaceSplit, Sequence)");
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const json& j) { return Build(j, 0); }

Result<std::unique_ptr<PreTokenizer>> RegexSplit(const std::string& regex) {
  auto r = Regex::Compile(regex);
  if (!r.ok()) return r.status();
  return std::unique_ptr<PreTokenizer>(new RegexSplitter(std::move(r.value()), Behavior::kIsolated, false));
}

std::unique_ptr<PreTokenizer> ByteLevelStep(bool add_prefix_space) {
  return std::unique_ptr<PreTokenizer>(new ByteLevel(add_prefix_space, nullptr));
}

std::unique_ptr<PreTokenizer> SequenceOf(std::vector<std::unique_ptr<PreTokenizer>> steps) {
  return std::unique_ptr<PreTokenizer>(new Sequence(std::move(steps)));
}

}  // namespace strata::text
