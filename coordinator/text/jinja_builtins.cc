#include "coordinator/text/jinja_builtins.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <optional>

#include "coordinator/text/utf8.h"

namespace strata::text::jinja {
namespace {

const std::string& StrArg(const CallArgs& a, size_t i, const char* name, const std::string& fallback) {
  const Value* v = a.Arg(i, name);
  if (v == nullptr || v->kind == Value::Kind::kUndefined || v->kind == Value::Kind::kNone) return fallback;
  if (!v->is_string()) throw RenderError(std::string("argument '") + name + "' must be a string");
  return v->s;
}

void CheckSize(size_t n, size_t max) {
  if (n > max) throw RenderError("the template's output would pass " + std::to_string(max) + " bytes");
}

std::string StripChars(const std::string& s, const std::string& chars, bool left, bool right) {
  const std::string set = chars.empty() ? std::string(" \t\n\r\f\v") : chars;
  size_t b = 0, e = s.size();
  while (left && b < e && set.find(s[b]) != std::string::npos) ++b;
  while (right && e > b && set.find(s[e - 1]) != std::string::npos) --e;
  return s.substr(b, e - b);
}

std::string Cased(const std::string& s, int mode) {  // 0 lower, 1 upper, 2 title, 3 capitalize
  std::string out = s;
  bool start = true;
  for (size_t k = 0; k < out.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(out[k]);
    if (c >= 0x80) {
      start = false;
      continue;  // ASCII only: non-ASCII letters keep their case
    }
    if (mode == 0) out[k] = static_cast<char>(std::tolower(c));
    else if (mode == 1) out[k] = static_cast<char>(std::toupper(c));
    else if (mode == 2) out[k] = static_cast<char>(start ? std::toupper(c) : std::tolower(c));
    else out[k] = static_cast<char>(k == 0 ? std::toupper(c) : std::tolower(c));
    start = !std::isalnum(c);
  }
  return out;
}

std::string ReplaceAll(const std::string& s, const std::string& from, const std::string& to, int64_t count, size_t max) {
  if (from.empty()) return s;
  std::string out;
  size_t at = 0;
  int64_t n = 0;
  for (size_t k = s.find(from); k != std::string::npos && (count < 0 || n < count); k = s.find(from, at), ++n) {
    out.append(s, at, k - at);
    out += to;
    at = k + from.size();
    CheckSize(out.size(), max);
  }
  out.append(s, at, std::string::npos);
  return out;
}

Value Items(const Value& v) {
  if (!v.is_mapping()) throw RenderError(std::string("items() of a ") + KindName(v));
  Value l = Value::NewList();
  for (const auto& [k, x] : v.dict->items) l.list->push_back(Value::NewList({Value::Str(k), x}));
  return l;
}

size_t Length(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kString: {
      size_t n = 0;
      for (size_t i = 0; i < v.s.size(); i += CharLen(v.s, i)) ++n;
      return n;
    }
    case Value::Kind::kList: return v.list->size();
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: return v.dict->items.size();
    case Value::Kind::kUndefined: return 0;
    default: throw RenderError(std::string("length of a ") + KindName(v));
  }
}

Value Join(const Value& v, const std::string& sep, const Value* attribute, size_t max) {
  if (v.kind != Value::Kind::kList) throw RenderError(std::string("join of a ") + KindName(v));
  Value out = Value::Str("");
  for (size_t k = 0; k < v.list->size(); ++k) {
    if (k) out = Concat(out, Value::Str(sep));
    Value x = (*v.list)[k];
    if (attribute != nullptr) x = Subscript(x, *attribute);
    out = Concat(out, x.is_string() ? x : Derived(Str(x), x));
    CheckSize(out.s.size(), max);
  }
  return out;
}

const List& AsList(const Value& v, const char* what) {
  if (v.kind != Value::Kind::kList) throw RenderError(std::string(what) + " of a " + KindName(v));
  return *v.list;
}

// selectattr/rejectattr(attr[, test[, arg]]), select/reject(test[, arg]).
Value Select(const Value& v, const CallArgs& a, bool by_attr, bool keep) {
  Value out = Value::NewList();
  const size_t first = by_attr ? 1 : 0;
  for (const Value& x : AsList(v, "select")) {
    const Value item = by_attr ? Subscript(x, a.args.empty() ? Value() : a.args[0]) : x;
    bool pass;
    if (a.args.size() > first) {
      if (!a.args[first].is_string()) throw RenderError("a test name must be a string");
      CallArgs t;
      t.args.assign(a.args.begin() + static_cast<long>(first) + 1, a.args.end());
      pass = ApplyTest(a.args[first].s, item, t);
    } else {
      pass = Truthy(item);
    }
    if (pass == keep) out.list->push_back(x);
  }
  return out;
}

}  // namespace

Value Subscript(const Value& obj, const Value& key) {
  if (obj.is_mapping()) {
    if (!key.is_string()) return Value();
    const Value* v = obj.dict->Find(key.s);
    return v != nullptr ? *v : Value();
  }
  if ((obj.kind == Value::Kind::kList || obj.is_string()) && key.kind == Value::Kind::kInt) {
    const int64_t n = obj.is_string() ? static_cast<int64_t>(obj.s.size()) : static_cast<int64_t>(obj.list->size());
    const int64_t i = key.i < 0 ? key.i + n : key.i;
    if (i < 0 || i >= n) return Value();
    return obj.is_string() ? Derived(obj.s.substr(static_cast<size_t>(i), 1), obj) : (*obj.list)[static_cast<size_t>(i)];
  }
  return Value();
}

namespace {

// The `list` filter of a string (its characters) or a mapping (its keys).
Value ListOf(const Value& v) {
  if (v.is_string()) {
    Value l = Value::NewList();
    for (size_t i = 0; i < v.s.size(); i += CharLen(v.s, i)) l.list->push_back(Derived(v.s.substr(i, CharLen(v.s, i)), v));
    return l;
  }
  if (v.is_mapping()) {
    Value l = Value::NewList();
    for (const auto& [k, x] : v.dict->items) l.list->push_back(Value::Str(k));
    return l;
  }
  throw RenderError(std::string("list of a ") + KindName(v));
}

// A string reversed by character, or a list reversed.
Value Reversed(const Value& v) {
  if (v.is_string()) {
    std::string r;
    for (size_t i = v.s.size(); i > 0;) {
      size_t k = i - 1;
      while (k > 0 && (static_cast<uint8_t>(v.s[k]) & 0xC0) == 0x80) --k;
      r += v.s.substr(k, i - k);
      i = k;
    }
    return Derived(r, v);
  }
  List l = AsList(v, "reverse");
  std::reverse(l.begin(), l.end());
  return Value::NewList(std::move(l));
}

// `map(attribute=...)` or `map("filter")`.
Value Mapped(const Value& v, const CallArgs& a, size_t max) {
  Value out = Value::NewList();
  const Value* attr = a.Kw("attribute");
  for (const Value& x : AsList(v, "map")) {
    if (attr != nullptr) out.list->push_back(Subscript(x, *attr));
    else if (!a.args.empty() && a.args[0].is_string()) out.list->push_back(ApplyFilter(a.args[0].s, x, CallArgs(), max));
    else throw RenderError("map needs attribute= or a filter name");
  }
  return out;
}

// `indent(width, first)`: every line after the first (or every line) padded.
Value Indented(const Value& v, const CallArgs& a, size_t max) {
  const Value* w = a.Arg(0, "width");
  const Value* first = a.Arg(1, "first");
  const std::string pad(w != nullptr && w->kind == Value::Kind::kInt ? static_cast<size_t>(std::clamp<int64_t>(w->i, 0, 64)) : 4, ' ');
  std::string s = Str(v), out = first != nullptr && Truthy(*first) ? pad : "";
  for (size_t k = 0; k < s.size(); ++k) {
    out.push_back(s[k]);
    if (s[k] == '\n' && k + 1 < s.size() && s[k + 1] != '\n') out += pad;
    CheckSize(out.size(), max);
  }
  return Derived(out, v);
}

// A list without repeats, in first-seen order.
Value Unique(const Value& v) {
  Value out = Value::NewList();
  for (const Value& x : AsList(v, "unique")) {
    bool seen = false;
    for (const Value& y : *out.list) seen = seen || Equal(x, y);
    if (!seen) out.list->push_back(x);
  }
  return out;
}

}  // namespace

Value ApplyFilter(const std::string& name, const Value& v, const CallArgs& a, size_t max) {
  const std::string none;
  if (name == "trim") return Derived(StripChars(Str(v), StrArg(a, 0, "chars", none), true, true), v);
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    return Derived(Cased(Str(v), name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3), v);
  }
  if (name == "length" || name == "count") return Value::Int(static_cast<int64_t>(Length(v)));
  if (name == "string") return v.is_string() ? v : Derived(Str(v), v);
  if (name == "safe" || (name == "list" && v.kind == Value::Kind::kList)) return v;
  if (name == "tojson") {
    const Value* indent = a.Arg(0, "indent");
    const std::string text = ToJson(v, indent != nullptr && indent->kind == Value::Kind::kInt ? static_cast<int>(indent->i) : 0);
    CheckSize(text.size(), max);
    return Derived(text, v);
  }
  if (name == "int") {
    if (v.is_number()) return Value::Int(static_cast<int64_t>(v.number()));
    if (v.is_string()) return Value::Int(std::strtoll(v.s.c_str(), nullptr, 10));
    return Value::Int(0);
  }
  if (name == "float") return Value::Float(v.is_number() ? v.number() : v.is_string() ? std::strtod(v.s.c_str(), nullptr) : 0.0);
  if (name == "abs") return v.kind == Value::Kind::kInt ? Value::Int(v.i < 0 ? -v.i : v.i) : Value::Float(std::abs(v.number()));
  if (name == "list") return ListOf(v);
  if (name == "first" || name == "last") {
    if (v.is_string()) return v.s.empty() ? Value() : Subscript(v, Value::Int(name == "first" ? 0 : -1));
    const List& l = AsList(v, name.c_str());
    return l.empty() ? Value() : name == "first" ? l.front() : l.back();
  }
  if (name == "reverse") return Reversed(v);
  if (name == "join") return Join(v, StrArg(a, 0, "d", none), a.Kw("attribute"), max);
  if (name == "default" || name == "d") {
    const Value* b = a.Arg(1, "boolean");
    const bool use = v.kind == Value::Kind::kUndefined || (b != nullptr && Truthy(*b) && !Truthy(v));
    const Value* d = a.Arg(0, "default_value");
    return use ? (d != nullptr ? *d : Value::Str("")) : v;
  }
  if (name == "replace") {
    const Value* c = a.Arg(2, "count");
    const Value* with = a.Arg(1, "new");
    return Value::Str(ReplaceAll(Str(v), StrArg(a, 0, "old", none), StrArg(a, 1, "new", none),
                                 c != nullptr && c->kind == Value::Kind::kInt ? c->i : -1, max),
                      v.tainted() || (with != nullptr && with->tainted()));
  }
  if (name == "items") return Items(v);
  if (name == "selectattr" || name == "rejectattr") return Select(v, a, true, name == "selectattr");
  if (name == "select" || name == "reject") return Select(v, a, false, name == "select");
  if (name == "map") return Mapped(v, a, max);
  if (name == "indent") return Indented(v, a, max);
  if (name == "unique") return Unique(v);
  if (name == "dictsort") {
    Value out = Items(v);
    std::stable_sort(out.list->begin(), out.list->end(), [](const Value& x, const Value& y) { return (*x.list)[0].s < (*y.list)[0].s; });
    return out;
  }
  throw RenderError("unknown filter '" + name + "'");
}

bool ApplyTest(const std::string& name, const Value& v, const CallArgs& a) {
  using K = Value::Kind;
  if (name == "defined") return v.kind != K::kUndefined;
  if (name == "undefined") return v.kind == K::kUndefined;
  if (name == "none") return v.kind == K::kNone;
  if (name == "true") return v.kind == K::kBool && v.b;
  if (name == "false") return v.kind == K::kBool && !v.b;
  if (name == "boolean") return v.kind == K::kBool;
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == K::kInt;
  if (name == "float") return v.kind == K::kFloat;
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") return v.kind == K::kList || v.is_string() || v.is_mapping();
  if (name == "sequence") return v.kind == K::kList || v.is_string() || v.is_mapping();
  if (name == "callable") return v.kind == K::kMacro || v.kind == K::kFunction;
  if (name == "odd" || name == "even") {
    if (v.kind != K::kInt) throw RenderError("odd/even of a " + std::string(KindName(v)));
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value* d = a.Arg(0, "num");
    if (v.kind != K::kInt || d == nullptr || d->kind != K::kInt || d->i == 0) throw RenderError("divisibleby wants integers");
    return v.i % d->i == 0;
  }
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") {
    const Value* o = a.Arg(0, "other");
    return o != nullptr && Equal(v, *o);
  }
  if (name == "ne" || name == "!=") {
    const Value* o = a.Arg(0, "other");
    return o == nullptr || !Equal(v, *o);
  }
  if (name == "in") {
    const Value* o = a.Arg(0, "seq");
    if (o == nullptr) return false;
    if (o->is_string()) return v.is_string() && o->s.find(v.s) != std::string::npos;
    if (o->kind == K::kList) {
      for (const Value& x : *o->list) if (Equal(x, v)) return true;
      return false;
    }
    return o->is_mapping() && v.is_string() && o->dict->Find(v.s) != nullptr;
  }
  if (name == "lower" || name == "upper") return v.is_string() && Cased(v.s, name == "lower" ? 0 : 1) == v.s;
  throw RenderError("unknown test '" + name + "'");
}

namespace {

// Python's str.split: on `sep`, or on runs of whitespace without one.
Value SplitString(const Value& obj, const CallArgs& a) {
  const std::string none;
  const std::string& s = obj.s;
  const std::string& sep = StrArg(a, 0, "sep", none);
  const Value* m = a.Arg(1, "maxsplit");
  int64_t left = m != nullptr && m->kind == Value::Kind::kInt ? m->i : -1;
  Value out = Value::NewList();
  if (sep.empty()) {  // runs of whitespace, as Python's split()
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) break;
      size_t e = i;
      if (left == 0) e = s.size();
      else while (e < s.size() && !std::isspace(static_cast<unsigned char>(s[e]))) ++e;
      out.list->push_back(Derived(s.substr(i, e - i), obj));
      --left;
      i = e;
    }
    return out;
  }
  size_t at = 0;
  for (size_t k = s.find(sep); k != std::string::npos && left != 0; k = s.find(sep, at), --left) {
    out.list->push_back(Derived(s.substr(at, k - at), obj));
    at = k + sep.size();
  }
  out.list->push_back(Derived(s.substr(at), obj));
  return out;
}

// A string's methods; nullopt when it has none of this name.
std::optional<Value> StringMethod(const Value& obj, const std::string& name, const CallArgs& a, size_t max) {
  const std::string none;
  const std::string& s = obj.s;
  if (name == "startswith" || name == "endswith") {
    const std::string& p = StrArg(a, 0, "prefix", none);
    const bool hit = s.size() >= p.size() && (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                                                   : s.compare(s.size() - p.size(), p.size(), p) == 0);
    return Value::Bool(hit);
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return Derived(StripChars(s, StrArg(a, 0, "chars", none), name != "rstrip", name != "lstrip"), obj);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    return Derived(Cased(s, name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3), obj);
  }
  if (name == "replace") {
    const Value* c = a.Arg(2, "count");
    const Value* with = a.Arg(1, "new");
    return Value::Str(ReplaceAll(s, StrArg(a, 0, "old", none), StrArg(a, 1, "new", none),
                                 c != nullptr && c->kind == Value::Kind::kInt ? c->i : -1, max),
                      obj.tainted() || (with != nullptr && with->tainted()));
  }
  if (name == "split") return SplitString(obj, a);
  if (name == "find") {
    const size_t k = s.find(StrArg(a, 0, "sub", none));
    return Value::Int(k == std::string::npos ? -1 : static_cast<int64_t>(k));
  }
  if (name == "count") {
    const std::string& sub = StrArg(a, 0, "sub", none);
    int64_t n = 0;
    if (!sub.empty()) for (size_t k = s.find(sub); k != std::string::npos; k = s.find(sub, k + sub.size())) ++n;
    return Value::Int(n);
  }
  if (name == "join") {
    const Value* items = a.Arg(0, "iterable");
    if (items == nullptr) throw RenderError("join() needs a list");
    return Join(*items, s, nullptr, max);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace") {
    bool all = !s.empty();
    for (unsigned char c : s) {
      all = all && (name == "isdigit" ? std::isdigit(c) : name == "isalpha" ? std::isalpha(c) : std::isspace(c));
    }
    return Value::Bool(all);
  }
  return std::nullopt;
}

std::optional<Value> MappingMethod(const Value& obj, const std::string& name, const CallArgs& a) {
  if (name == "items") return Items(obj);
  if (name == "keys" || name == "values") {
    Value l = Value::NewList();
    for (const auto& [k, x] : obj.dict->items) l.list->push_back(name == "keys" ? Value::Str(k) : x);
    return l;
  }
  if (name == "get") {
    const Value* k = a.Arg(0, "key");
    Value got = k != nullptr ? Subscript(obj, *k) : Value();
    const Value* d = a.Arg(1, "default");
    return got.kind != Value::Kind::kUndefined ? got : d != nullptr ? *d : Value::None();
  }
  return std::nullopt;
}

std::optional<Value> ListMethod(const Value& obj, const std::string& name, const CallArgs& a, size_t max) {
  if (name == "append") {
    if (a.args.size() != 1) throw RenderError("append() takes one value");
    CheckSize(obj.list->size() + 1, max);
    obj.list->push_back(a.args[0]);
    return Value::None();
  }
  if (name == "index" || name == "count") {
    const Value* x = a.Arg(0, "value");
    int64_t n = 0;
    for (size_t k = 0; k < obj.list->size(); ++k) {
      if (x != nullptr && Equal((*obj.list)[k], *x)) {
        if (name == "index") return Value::Int(static_cast<int64_t>(k));
        ++n;
      }
    }
    if (name == "index") throw RenderError("index(): the value is not in the list");
    return Value::Int(n);
  }
  return std::nullopt;
}

}  // namespace

Value CallMethod(const Value& obj, const std::string& name, const CallArgs& a, size_t max) {
  std::optional<Value> out;
  if (obj.is_string()) out = StringMethod(obj, name, a, max);
  else if (obj.is_mapping()) out = MappingMethod(obj, name, a);
  else if (obj.kind == Value::Kind::kList) out = ListMethod(obj, name, a, max);
  if (out) return *out;
  throw RenderError(std::string("a ") + KindName(obj) + " has no method '" + name + "'");
}

bool IsGlobalFunction(const std::string& name) {
  return name == "namespace" || name == "range" || name == "raise_exception" || name == "strftime_now" || name == "dict";
}

Value CallFunction(const std::string& name, const CallArgs& a) {
  if (name == "namespace" || name == "dict") {
    Value ns = Value::NewDict();
    if (name == "namespace") ns.kind = Value::Kind::kNamespace;
    if (!a.args.empty() && a.args[0].is_mapping()) {
      for (const auto& [k, v] : a.args[0].dict->items) ns.dict->Set(k, v);
    }
    for (const auto& [k, v] : a.kwargs) ns.dict->Set(k, v);
    return ns;
  }
  if (name == "range") {
    int64_t start = 0, stop = 0, step = 1;
    for (const auto& x : a.args) if (x.kind != Value::Kind::kInt) throw RenderError("range() takes integers");
    if (a.args.size() == 1) stop = a.args[0].i;
    else if (a.args.size() >= 2) start = a.args[0].i, stop = a.args[1].i;
    if (a.args.size() == 3) step = a.args[2].i;
    if (step == 0 || a.args.empty() || a.args.size() > 3) throw RenderError("range() takes 1 to 3 integers, a step not 0");
    const int64_t n = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0) : (start > stop ? (start - stop - step - 1) / -step : 0);
    if (n > 100000) throw RenderError("range() of more than 100000 numbers");
    Value l = Value::NewList();
    for (int64_t k = 0; k < n; ++k) l.list->push_back(Value::Int(start + k * step));
    return l;
  }
  if (name == "raise_exception") {
    throw RenderError("the template raised: " + (a.args.empty() ? std::string("an error") : Str(a.args[0])));
  }
  if (name == "strftime_now") {
    char buf[128];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    const std::string fmt = a.args.empty() ? std::string("%Y-%m-%d") : Str(a.args[0]);
    const size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    return Value::Str(std::string(buf, n));
  }
  throw RenderError("unknown function '" + name + "'");
}

}  // namespace strata::text::jinja
