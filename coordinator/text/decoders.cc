// Decoders of tokenizer.json: token strings back to text, as the
// `tokenizers` library's decode_chain steps do.
#include <cctype>
#include <cstdio>

#include "coordinator/text/json_fields.h"
#include "coordinator/text/text_steps.h"
#include "coordinator/text/utf8.h"

namespace strata::text {
namespace {

// Byte-level characters back to bytes, all tokens as one text (lossy UTF-8);
// a token with a character outside the alphabet keeps its own bytes.
class ByteLevel final : public Decoder {
 public:
  void Decode(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const auto& t : *tokens) {
      std::string mine;
      bool all = true;
      for (size_t i = 0; i < t.size() && all;) {
        const int b = ByteOfByteLevelChar(CodepointAt(t, i));
        if (b < 0) all = false;
        else mine.push_back(static_cast<char>(b));
        i += CharLen(t, i);
      }
      bytes += all ? mine : t;
    }
    *tokens = {LossyUtf8(bytes)};
  }
};

class Metaspace final : public Decoder {
 public:
  Metaspace(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void Decode(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      std::string out;
      for (size_t k = 0; k < t.size();) {
        if (t.compare(k, rep_.size(), rep_) == 0) {
          if (!(i == 0 && strip_first_)) out.push_back(' ');
          k += rep_.size();
        } else {
          out.push_back(t[k++]);
        }
      }
      t = std::move(out);
    }
  }

 private:
  std::string rep_;
  bool strip_first_;
};

// Runs of <0xNN> tokens back to their bytes; a run that is not UTF-8 gives one U+FFFD a byte.
class ByteFallback final : public Decoder {
 public:
  void Decode(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (LossyUtf8(run) == run) {
        out.push_back(run);
      } else {
        for (size_t k = 0; k < run_len; ++k) out.push_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_len = 0;
    };
    for (auto& t : *tokens) {
      unsigned v = 0;
      char tail = 0;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
          std::sscanf(t.c_str() + 3, "%2x%c", &v, &tail) == 2 && tail == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4]))) {
        run.push_back(static_cast<char>(v));
        ++run_len;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class Fuse final : public Decoder {
 public:
  void Decode(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const auto& t : *tokens) all += t;
    *tokens = {std::move(all)};
  }
};

class Replace final : public Decoder {
 public:
  Replace(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void Decode(std::vector<std::string>* tokens) const override {
    for (auto& t : *tokens) {
      std::string out;
      size_t at = 0;
      for (size_t k = t.find(from_); k != std::string::npos; k = t.find(from_, at)) {
        out.append(t, at, k - at);
        out += to_;
        at = k + from_.size();
      }
      out.append(t, at, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string from_, to_;
};

class Strip final : public Decoder {
 public:
  Strip(std::string content, int64_t start, int64_t stop) : c_(std::move(content)), start_(start), stop_(stop) {}
  void Decode(std::vector<std::string>* tokens) const override {
    for (auto& t : *tokens) {
      size_t b = 0, e = t.size();
      for (int64_t k = 0; k < start_ && e - b >= c_.size() && t.compare(b, c_.size(), c_) == 0; ++k) b += c_.size();
      for (int64_t k = 0; k < stop_ && e - b >= c_.size() && t.compare(e - c_.size(), c_.size(), c_) == 0; ++k) e -= c_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string c_;
  int64_t start_, stop_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void Decode(std::vector<std::string>* tokens) const override {
    for (const auto& d : steps_) d->Decode(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

using Built = Result<std::unique_ptr<Decoder>>;

Built BuildMetaspace(const json& j) {
  std::string rep, scheme;
  bool legacy_prefix;
  if (!Field(j, "replacement", std::string("\xE2\x96\x81"), &rep) || rep.empty() ||
      !Field(j, "add_prefix_space", true, &legacy_prefix) ||
      !Field(j, "prepend_scheme", std::string(legacy_prefix ? "always" : "never"), &scheme)) {
    return BadStep("decoder", j, "needs a replacement character and a prepend_scheme");
  }
  return std::unique_ptr<Decoder>(new Metaspace(rep, scheme != "never"));
}

Built Build(const json& j, int depth) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  const std::string type = StepType(j);
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevel());
  if (type == "Metaspace") return BuildMetaspace(j);
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallback());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new Fuse());
  if (type == "Replace") {
    PatternField pattern;
    std::string content;
    if (!Pattern(j, &pattern) || pattern.regex || pattern.text.empty() || !Field(j, "content", std::string(), &content)) {
      return BadStep("decoder", j, "needs a non-empty {\"String\"} pattern and a content string");
    }
    return std::unique_ptr<Decoder>(new Replace(pattern.text, content));
  }
  if (type == "Strip") {
    std::string content;
    int64_t start, stop;
    if (!Field(j, "content", std::string(" "), &content) || content.empty() || !Field(j, "start", int64_t{0}, &start) ||
        !Field(j, "stop", int64_t{0}, &stop)) {
      return BadStep("decoder", j, "needs a content character and integer start/stop");
    }
    return std::unique_ptr<Decoder>(new Strip(content, start, stop));
  }
  if (type == "Sequence") {
    auto steps = SequenceSteps<Decoder>(j, "decoder", "decoders", depth, Build);
    if (!steps.ok()) return steps.status();
    return std::unique_ptr<Decoder>(new Sequence(std::move(steps.value())));
  }
  return BadStep("decoder", j, "is not a type Strata reads (ByteLevel, Metaspace, ByteFallback, Fuse, Replace, Strip, Sequence)");
}

}  // namespace

Result<std::unique_ptr<Decoder>> DecoderFromJson(const json& j) { return Build(j, 0); }

std::unique_ptr<Decoder> ByteLevelDecoder() { return std::unique_ptr<Decoder>(new ByteLevel()); }

}  // namespace strata::text
