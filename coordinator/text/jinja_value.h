#pragma once
// The values of Strata's Jinja renderer: Python's none, bool, int, float,
// str, list and dict (insertion-ordered), a namespace, and Jinja's
// undefined. A string carries the byte ranges of it that came from an
// untrusted source (a user's message): they follow concatenation exactly
// and taint the whole of anything else computed from them.
// Values are copied cheaply (lists and dicts are shared, as in Python).
// Not thread-safe; a template's rendering owns its values.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace strata::text::jinja {

using Spans = std::vector<std::pair<size_t, size_t>>;  // [begin, end) byte ranges

struct Value;
using List = std::vector<Value>;
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value v);
};
struct Macro;

struct Value {
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kMacro, kFunction };
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;    // kString; kFunction: its name
  Spans untrusted;  // kString: the untrusted ranges of s
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // kDict, kNamespace
  std::shared_ptr<const Macro> macro;

  static Value None() { return Of(Kind::kNone); }
  static Value Bool(bool v) { Value x = Of(Kind::kBool); x.b = v; return x; }
  static Value Int(int64_t v) { Value x = Of(Kind::kInt); x.i = v; return x; }
  static Value Float(double v) { Value x = Of(Kind::kFloat); x.f = v; return x; }
  static Value Str(std::string v, bool tainted = false);
  static Value NewList(List items = {});
  static Value NewDict();
  static Value Function(std::string name) { Value x = Of(Kind::kFunction); x.s = std::move(name); return x; }

  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat; }
  bool is_mapping() const { return kind == Kind::kDict || kind == Kind::kNamespace; }
  // Any untrusted byte in it (strings: directly; lists/dicts: anywhere inside; past 64 levels: assumed).
  bool tainted(int depth = 0) const;
  double number() const { return kind == Kind::kFloat ? f : static_cast<double>(kind == Kind::kBool ? b : i); }

 private:
  static Value Of(Kind k) { Value x; x.kind = k; return x; }
};

// While an Arena is current on a thread, every list and dict made there is
// remembered; its destructor empties those still alive, which breaks the
// cycles a template can make (`set ns.me = ns`, `xs.append(xs)`) so that
// nothing outlives the rendering.
class Arena {
 public:
  Arena();
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  static void Remember(const std::shared_ptr<List>& l);
  static void Remember(const std::shared_ptr<Dict>& d);

 private:
  Arena* previous_;
  std::vector<std::weak_ptr<List>> lists_;
  std::vector<std::weak_ptr<Dict>> dicts_;
};

// A copy of `v` whose lists and dicts are new (and so the current arena's).
Value DeepCopy(const Value& v, int depth = 0);

bool Truthy(const Value& v);
bool Equal(const Value& a, const Value& b, int depth = 0);  // past 64 levels: unequal
// Python's str() of the value (None, True, 1.5, ...); a string is itself.
std::string Str(const Value& v, int depth = 0);  // past 64 levels: "[...]"
const char* KindName(const Value& v);
// a + b of two strings, the untrusted ranges of both kept.
Value Concat(const Value& a, const Value& b);
// The same text, wholly untrusted if `from` had anything untrusted.
Value Derived(std::string s, const Value& from);

// JSON in and out: `untrusted` marks every string that comes in (the
// content of a user's message); tojson as @huggingface/jinja and Python's
// json.dumps write it (", " and ": " separators unless indented; no ASCII escaping).
Value FromJson(const nlohmann::json& j, bool untrusted);
std::string ToJson(const Value& v, int indent, int depth = 0);

}  // namespace strata::text::jinja
