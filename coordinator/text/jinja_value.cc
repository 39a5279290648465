#include "coordinator/text/jinja_value.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace strata::text::jinja {

const Value* Dict::Find(const std::string& key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::Set(const std::string& key, Value v) {
  for (auto& [k, old] : items) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  items.emplace_back(key, std::move(v));
}

Value Value::Str(std::string v, bool tainted) {
  Value x = Of(Kind::kString);
  if (tainted && !v.empty()) x.untrusted.emplace_back(0, v.size());
  x.s = std::move(v);
  return x;
}

Value Value::NewList(List items) {
  Value x = Of(Kind::kList);
  x.list = std::make_shared<List>(std::move(items));
  Arena::Remember(x.list);
  return x;
}

Value Value::NewDict() {
  Value x = Of(Kind::kDict);
  x.dict = std::make_shared<Dict>();
  Arena::Remember(x.dict);
  return x;
}

namespace {
thread_local Arena* current_arena = nullptr;
}  // namespace

Arena::Arena() : previous_(current_arena) { current_arena = this; }

Arena::~Arena() {
  current_arena = previous_;
  // Emptied, not freed: what a cycle kept alive lets go of itself.
  for (auto& w : lists_) {
    if (auto l = w.lock()) List().swap(*l);
  }
  for (auto& w : dicts_) {
    if (auto d = w.lock()) decltype(d->items)().swap(d->items);
  }
}

void Arena::Remember(const std::shared_ptr<List>& l) {
  if (current_arena != nullptr) current_arena->lists_.push_back(l);
}

void Arena::Remember(const std::shared_ptr<Dict>& d) {
  if (current_arena != nullptr) current_arena->dicts_.push_back(d);
}

Value DeepCopy(const Value& v, int depth) {
  if (depth > 64) return Value::None();
  if (v.kind == Value::Kind::kList) {
    Value l = Value::NewList();
    for (const auto& x : *v.list) l.list->push_back(DeepCopy(x, depth + 1));
    return l;
  }
  if (v.is_mapping()) {
    Value d = Value::NewDict();
    d.kind = v.kind;
    for (const auto& [k, x] : v.dict->items) d.dict->Set(k, DeepCopy(x, depth + 1));
    return d;
  }
  return v;
}

namespace {
constexpr int kMaxNesting = 64;        // lists in dicts in lists...: a template can build cycles
constexpr size_t kMaxText = 1u << 20;  // what printing one value may write (a list holding itself twice doubles a level)
}  // namespace

bool Value::tainted(int depth) const {
  if (depth > kMaxNesting) return true;  // too deep to look through: assume the worst
  switch (kind) {
    case Kind::kString: return !untrusted.empty();
    case Kind::kList:
      for (const auto& v : *list) if (v.tainted(depth + 1)) return true;
      return false;
    case Kind::kDict:
    case Kind::kNamespace:
      for (const auto& [k, v] : dict->items) if (v.tainted(depth + 1)) return true;
      return false;
    default: return false;
  }
}

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.b;
    case Value::Kind::kInt: return v.i != 0;
    case Value::Kind::kFloat: return v.f != 0;
    case Value::Kind::kString: return !v.s.empty();
    case Value::Kind::kList: return !v.list->empty();
    case Value::Kind::kDict: return !v.dict->items.empty();
    default: return true;
  }
}

bool Equal(const Value& a, const Value& b, int depth) {
  if (depth > kMaxNesting) return false;
  if (a.is_number() && b.is_number()) return a.number() == b.number();
  if ((a.kind == Value::Kind::kBool) != (b.kind == Value::Kind::kBool)) {
    if (a.kind == Value::Kind::kBool && b.is_number()) return a.b == (b.number() != 0) && (b.number() == 0 || b.number() == 1);
    if (b.kind == Value::Kind::kBool && a.is_number()) return b.b == (a.number() != 0) && (a.number() == 0 || a.number() == 1);
    return false;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kBool: return a.b == b.b;
    case Value::Kind::kString: return a.s == b.s;
    case Value::Kind::kList:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) if (!Equal((*a.list)[k], (*b.list)[k], depth + 1)) return false;
      return true;
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->Find(k);
        if (o == nullptr || !Equal(v, *o, depth + 1)) return false;
      }
      return true;
    default: return a.dict == b.dict && a.macro == b.macro && a.s == b.s;
  }
}

namespace {

std::string FloatText(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == std::floor(f) && std::fabs(f) < 1e16) {
    char b[64];
    std::snprintf(b, sizeof b, "%.1f", f);
    return b;
  }
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", f);
  // The shortest text that reads back the same, as Python's repr.
  for (int p = 1; p <= 17; ++p) {
    char t[64];
    std::snprintf(t, sizeof t, "%.*g", p, f);
    if (std::strtod(t, nullptr) == f) return t;
  }
  return b;
}

}  // namespace

std::string Str(const Value& v, int depth) {
  if (depth > kMaxNesting) return "[...]";
  switch (v.kind) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return v.b ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(v.i);
    case Value::Kind::kFloat: return FloatText(v.f);
    case Value::Kind::kString: return v.s;
    case Value::Kind::kList: {
      std::string out = "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        const Value& x = (*v.list)[k];
        out += (k ? ", " : "") + (x.is_string() ? "'" + x.s + "'" : Str(x, depth + 1));
        if (out.size() > kMaxText) return out + "...";
      }
      return out + "]";
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      std::string out = "{";
      size_t k = 0;
      for (const auto& [key, x] : v.dict->items) {
        out += (k++ ? ", '" : "'") + key + "': " + (x.is_string() ? "'" + x.s + "'" : Str(x, depth + 1));
        if (out.size() > kMaxText) return out + "...";
      }
      return out + "}";
    }
    case Value::Kind::kMacro: return "<macro>";
    case Value::Kind::kFunction: return "<function " + v.s + ">";
  }
  return "";
}

const char* KindName(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return "undefined";
    case Value::Kind::kNone: return "none";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "string";
    case Value::Kind::kList: return "list";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kNamespace: return "namespace";
    case Value::Kind::kMacro: return "macro";
    case Value::Kind::kFunction: return "function";
  }
  return "?";
}

Value Concat(const Value& a, const Value& b) {
  Value out = Value::Str(a.s + b.s);
  out.untrusted = a.untrusted;
  for (const auto& [x, y] : b.untrusted) {
    if (!out.untrusted.empty() && out.untrusted.back().second == x + a.s.size()) {
      out.untrusted.back().second = y + a.s.size();  // adjacent: one range
    } else {
      out.untrusted.emplace_back(x + a.s.size(), y + a.s.size());
    }
  }
  return out;
}

Value Derived(std::string s, const Value& from) { return Value::Str(std::move(s), from.tainted()); }

Value FromJson(const nlohmann::json& j, bool untrusted) {
  if (j.is_null()) return Value::None();
  if (j.is_boolean()) return Value::Bool(j.get<bool>());
  if (j.is_number_integer()) return Value::Int(j.get<int64_t>());
  if (j.is_number()) return Value::Float(j.get<double>());
  if (j.is_string()) return Value::Str(j.get<std::string>(), untrusted);
  if (j.is_array()) {
    Value l = Value::NewList();
    for (const auto& x : j) l.list->push_back(FromJson(x, untrusted));
    return l;
  }
  Value d = Value::NewDict();
  for (const auto& [k, x] : j.items()) d.dict->Set(k, FromJson(x, untrusted));
  return d;
}

std::string ToJson(const Value& v, int indent, int depth) {
  if (depth > kMaxNesting) return "null";
  const std::string pad = indent > 0 ? "\n" + std::string(static_cast<size_t>(indent * (depth + 1)), ' ') : "";
  const std::string close = indent > 0 ? "\n" + std::string(static_cast<size_t>(indent * depth), ' ') : "";
  const std::string sep = indent > 0 ? "," : ", ";
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return "null";
    case Value::Kind::kBool: return v.b ? "true" : "false";
    case Value::Kind::kInt: return std::to_string(v.i);
    case Value::Kind::kFloat: return nlohmann::json(v.f).dump();
    case Value::Kind::kString: return nlohmann::json(v.s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    case Value::Kind::kList: {
      if (v.list->empty()) return "[]";
      std::string out = "[";
      for (size_t k = 0; k < v.list->size() && out.size() <= kMaxText; ++k) {
        out += (k ? sep : "") + pad + ToJson((*v.list)[k], indent, depth + 1);
      }
      return out + close + "]";
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      if (v.dict->items.empty()) return "{}";
      std::string out = "{";
      size_t k = 0;
      for (const auto& [key, x] : v.dict->items) {
        if (out.size() > kMaxText) break;
        out += (k++ ? sep : "") + pad + nlohmann::json(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
               ": " + ToJson(x, indent, depth + 1);
      }
      return out + close + "}";
    }
    default: return "null";
  }
}

}  // namespace strata::text::jinja
