// Normalizers of tokenizer.json: Unicode forms through ICU, and the string
// edits the `tokenizers` library defines.
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/locid.h>
#include <unicode/unistr.h>

#include "coordinator/text/json_fields.h"
#include "coordinator/text/regex.h"
#include "coordinator/text/text_steps.h"
#include "coordinator/text/utf8.h"

namespace strata::text {
namespace {

enum class Form { kNfc, kNfd, kNfkc, kNfkd };

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(const icu::Normalizer2* n) : n_(n) {}
  std::string Normalize(std::string_view s) const override {
    UErrorCode err = U_ZERO_ERROR;
    const icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
    const icu::UnicodeString out = n_->normalize(u, err);
    std::string r;
    if (U_FAILURE(err)) return std::string(s);
    out.toUTF8String(r);
    return r;
  }

 private:
  const icu::Normalizer2* n_;  // ICU's, immutable and shared
};

class Lowercase final : public Normalizer {
 public:
  std::string Normalize(std::string_view s) const override {
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
    u.toLower(icu::Locale::getRoot());
    std::string r;
    u.toUTF8String(r);
    return r;
  }
};

// Combining marks removed (after an NFD, accents).
class StripAccents final : public Normalizer {
 public:
  std::string Normalize(std::string_view s) const override {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      const size_t n = CharLen(s, i);
      if (u_charType(static_cast<UChar32>(CodepointAt(s, i))) != U_NON_SPACING_MARK) out.append(s.substr(i, n));
      i += n;
    }
    return out;
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view s) const override {
    size_t b = 0, e = s.size();
    while (left_ && b < e && u_isUWhiteSpace(static_cast<UChar32>(CodepointAt(s, b)))) b += CharLen(s, b);
    while (right_ && e > b) {
      size_t k = e - 1;
      while (k > b && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80) --k;
      if (!u_isUWhiteSpace(static_cast<UChar32>(CodepointAt(s, k)))) break;
      e = k;
    }
    return std::string(s.substr(b, e - b));
  }

 private:
  bool left_, right_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string p) : p_(std::move(p)) {}
  std::string Normalize(std::string_view s) const override { return s.empty() ? std::string() : p_ + std::string(s); }

 private:
  std::string p_;
};

class Replace final : public Normalizer {
 public:
  Replace(std::unique_ptr<Regex> r, std::string content) : r_(std::move(r)), content_(std::move(content)) {}
  std::string Normalize(std::string_view s) const override {
    std::string out;
    size_t at = 0;
    for (const auto& [b, e] : r_->FindAll(s)) {
      out.append(s.substr(at, b - at));
      out += content_;
      at = e;
    }
    out.append(s.substr(at));
    return out;
  }

 private:
  std::unique_ptr<Regex> r_;
  std::string content_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string Normalize(std::string_view s) const override {
    std::string t(s);
    for (const auto& n : steps_) t = n->Normalize(t);
    return t;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

Result<std::unique_ptr<Normalizer>> MakeForm(const json& j, Form form) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = form == Form::kNfc    ? icu::Normalizer2::getNFCInstance(err)
                              : form == Form::kNfd  ? icu::Normalizer2::getNFDInstance(err)
                              : form == Form::kNfkc ? icu::Normalizer2::getNFKCInstance(err)
                                                    : icu::Normalizer2::getNFKDInstance(err);
  if (U_FAILURE(err) || n == nullptr) return BadStep("normalizer", j, std::string("ICU has no such form: ") + u_errorName(err));
  return std::unique_ptr<Normalizer>(new UnicodeForm(n));
}

Result<std::unique_ptr<Normalizer>> Build(const json& j, int depth) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  const std::string type = StepType(j);
  if (type == "NFC") return MakeForm(j, Form::kNfc);
  if (type == "NFD") return MakeForm(j, Form::kNfd);
  if (type == "NFKC") return MakeForm(j, Form::kNfkc);
  if (type == "NFKD") return MakeForm(j, Form::kNfkd);
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new Lowercase());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccents());
  if (type == "Strip") {
    bool left, right;
    if (!Field(j, "strip_left", true, &left) || !Field(j, "strip_right", true, &right)) {
      return BadStep("normalizer", j, "strip_left and strip_right must be booleans");
    }
    return std::unique_ptr<Normalizer>(new Strip(left, right));
  }
  if (type == "Prepend") {
    std::string p;
    if (!Field(j, "prepend", std::string(), &p)) return BadStep("normalizer", j, "prepend must be a string");
    return std::unique_ptr<Normalizer>(new Prepend(p));
  }
  if (type == "Replace") {
    PatternField pattern;
    std::string content;
    if (!Pattern(j, &pattern) || !Field(j, "content", std::string(), &content)) {
      return BadStep("normalizer", j, "needs a pattern ({\"String\"} or {\"Regex\"}) and a content string");
    }
    auto r = pattern.regex ? Regex::Compile(pattern.text) : Regex::Literal(pattern.text);
    if (!r.ok()) return BadStep("normalizer", j, r.status().message());
    return std::unique_ptr<Normalizer>(new Replace(std::move(r.value()), content));
  }
  if (type == "Sequence") {
    auto steps = SequenceSteps<Normalizer>(j, "normalizer", "normalizers", depth, Build);
    if (!steps.ok()) return steps.status();
    return std::unique_ptr<Normalizer>(new Sequence(std::move(steps.value())));
  }
  return BadStep("normalizer", j, "is not a type Strata reads (NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, "
                                   "Prepend, Replace, Sequence)");
}

}  // namespace

Result<std::unique_ptr<Normalizer>> NormalizerFromJson(const json& j) { return Build(j, 0); }

std::unique_ptr<Normalizer> Nfc() {
  auto n = MakeForm(json::object(), Form::kNfc);
  return n.ok() ? std::move(n.value()) : nullptr;
}

}  // namespace strata::text
