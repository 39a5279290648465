// The renderer: runs a parsed template over its variables, with Jinja2's
// scoping (a loop's body has its own; `if` has none; namespaces cross
// them), loop variables, macros, and the untrusted ranges of every string
// carried into the output.
#include "coordinator/text/jinja.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "coordinator/text/jinja_builtins.h"

namespace strata::text::jinja {
namespace {

class Run {
 public:
  Run(const Value& context, const Limits& limits) : limits_(limits) {
    scopes_.emplace_back();
    if (context.is_mapping()) {
      for (const auto& [k, v] : context.dict->items) scopes_.back()[k] = DeepCopy(v);  // the template may change its copy
    }
    out_.push_back(Value::Str(""));
  }

  Rendered Render(const Body& body) {
    Exec(body);
    Rendered r;
    r.text = std::move(out_.back().s);
    r.untrusted = std::move(out_.back().untrusted);
    return r;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  [[noreturn]] void TooLong() const {
    throw RenderError("the template's output would pass " + std::to_string(limits_.max_output) + " bytes");
  }
  void Step() {
    if (++steps_ > limits_.max_steps) {
      throw RenderError("the template was stopped after " + std::to_string(limits_.max_steps) + " steps");
    }
  }
  void Emit(const Value& v) {
    Value& o = out_.back();
    o = Concat(o, v.is_string() ? v : Derived(Str(v), v));
    if (o.s.size() > limits_.max_output) TooLong();
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return IsGlobalFunction(name) ? Value::Function(name) : Value();
  }

  Flow Exec(const Body& body) {
    for (const auto& n : body) {
      Flow f = Exec(*n);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow Exec(const Node& n) {
    Step();
    switch (n.kind) {
      case Node::Kind::kText: Emit(Value::Str(n.text)); return Flow::kNormal;
      case Node::Kind::kOutput: Emit(Eval(*n.expr)); return Flow::kNormal;
      case Node::Kind::kIf:
        for (size_t k = 0; k < n.conds.size(); ++k) {
          if (!n.conds[k] || Truthy(Eval(*n.conds[k]))) return Exec(n.bodies[k]);
        }
        return Flow::kNormal;
      case Node::Kind::kFor: return For(n);
      case Node::Kind::kSet: Set(n, Eval(*n.expr)); return Flow::kNormal;
      case Node::Kind::kSetBlock: Set(n, Capture(n.bodies[0])); return Flow::kNormal;
      case Node::Kind::kMacro: {
        Value m;
        m.kind = Value::Kind::kMacro;
        m.macro = std::make_shared<Macro>(Macro{n.targets[0], &n});
        scopes_.back()[n.targets[0]] = m;
        return Flow::kNormal;
      }
      case Node::Kind::kBreak: return Flow::kBreak;
      case Node::Kind::kContinue: return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  Value Capture(const Body& body) {
    out_.push_back(Value::Str(""));
    Exec(body);
    Value v = std::move(out_.back());
    out_.pop_back();
    return v;
  }

  void Set(const Node& n, Value v) {
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = std::move(v);
      return;
    }
    Value ns = Lookup(n.targets[0]);
    if (ns.kind != Value::Kind::kNamespace) throw RenderError("set " + n.targets[0] + "." + n.targets[1] + ": not a namespace");
    ns.dict->Set(n.targets[1], std::move(v));
  }

  Flow For(const Node& n) {
    const Value seq = Eval(*n.expr);
    List items;
    if (seq.kind == Value::Kind::kList) items = *seq.list;
    else if (seq.is_mapping()) for (const auto& [k, v] : seq.dict->items) items.push_back(Value::Str(k));
    else if (seq.is_string()) items = *ApplyFilter("list", seq, CallArgs(), limits_.max_output).list;
    else if (seq.kind != Value::Kind::kUndefined && seq.kind != Value::Kind::kNone) {
      throw RenderError(std::string("line ") + std::to_string(n.line) + ": cannot loop over a " + KindName(seq));
    }
    scopes_.emplace_back();
    if (n.filter) {  // `for x in xs if cond`: the loop sees only what passes
      List kept;
      for (const Value& x : items) {
        Bind(n, x);
        if (Truthy(Eval(*n.filter))) kept.push_back(x);
      }
      items = std::move(kept);
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < len; ++k) {
      Step();
      Value loop = Value::NewDict();
      loop.dict->Set("index", Value::Int(k + 1));
      loop.dict->Set("index0", Value::Int(k));
      loop.dict->Set("revindex", Value::Int(len - k));
      loop.dict->Set("revindex0", Value::Int(len - k - 1));
      loop.dict->Set("first", Value::Bool(k == 0));
      loop.dict->Set("last", Value::Bool(k == len - 1));
      loop.dict->Set("length", Value::Int(len));
      loop.dict->Set("previtem", k > 0 ? items[k - 1] : Value());
      loop.dict->Set("nextitem", k + 1 < len ? items[k + 1] : Value());
      scopes_.back().clear();
      scopes_.back()["loop"] = loop;
      Bind(n, items[k]);
      if (Exec(n.bodies[0]) == Flow::kBreak) break;
    }
    scopes_.pop_back();
    if (len == 0) return Exec(n.bodies[1]);
    return Flow::kNormal;
  }

  void Bind(const Node& n, const Value& x) {
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = x;
      return;
    }
    if (x.kind != Value::Kind::kList || x.list->size() != n.targets.size()) {
      throw RenderError("line " + std::to_string(n.line) + ": cannot unpack into " + std::to_string(n.targets.size()) + " names");
    }
    for (size_t k = 0; k < n.targets.size(); ++k) scopes_.back()[n.targets[k]] = (*x.list)[k];
  }

  CallArgs Arguments(const Expr& e, size_t first) {
    CallArgs a;
    for (size_t k = first; k < e.args.size(); ++k) a.args.push_back(Eval(*e.args[k]));
    for (const auto& [name, x] : e.kwargs) a.kwargs.emplace_back(name, Eval(*x));
    return a;
  }

  Value CallMacro(const Macro& m, const CallArgs& a) {
    if (++depth_ > limits_.max_call_depth) throw RenderError("macros call each other more than " + std::to_string(limits_.max_call_depth) + " deep");
    const Node& n = *m.node;
    std::unordered_map<std::string, Value> scope;
    for (size_t k = 0; k < n.params.size(); ++k) {
      const auto& [pname, def] = n.params[k];
      const Value* given = a.Arg(k, pname.c_str());
      scope[pname] = given != nullptr ? *given : def ? Eval(*def) : Value();
    }
    scopes_.push_back(std::move(scope));
    Value v = Capture(n.bodies[0]);
    scopes_.pop_back();
    --depth_;
    return v;
  }

  Value Eval(const Expr& e) {
    Step();
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: return Lookup(e.name);
      case Expr::Kind::kAttr: {
        const Value obj = Eval(*e.args[0]);
        return obj.is_mapping() ? Subscript(obj, Value::Str(e.name)) : Value();
      }
      case Expr::Kind::kIndex: return Subscript(Eval(*e.args[0]), Eval(*e.args[1]));
      case Expr::Kind::kSlice: return Slice(e);
      case Expr::Kind::kCall: {
        const Expr& callee = *e.args[0];
        if (callee.kind == Expr::Kind::kAttr) {
          const Value obj = Eval(*callee.args[0]);
          if (!obj.is_mapping() || obj.dict->Find(callee.name) == nullptr) {
            return CallMethod(obj, callee.name, Arguments(e, 1), limits_.max_output);
          }
        }
        const Value f = Eval(callee);
        const CallArgs a = Arguments(e, 1);
        if (f.kind == Value::Kind::kMacro) return CallMacro(*f.macro, a);
        if (f.kind == Value::Kind::kFunction) return CallFunction(f.s, a);
        throw RenderError("line " + std::to_string(e.line) + ": a " + KindName(f) + " is not callable");
      }
      case Expr::Kind::kFilter: return ApplyFilter(e.name, Eval(*e.args[0]), Arguments(e, 1), limits_.max_output);
      case Expr::Kind::kTest: return Value::Bool(ApplyTest(e.name, Eval(*e.args[0]), Arguments(e, 1)) != e.negated);
      case Expr::Kind::kUnary: {
        const Value v = Eval(*e.args[0]);
        if (e.name == "not") return Value::Bool(!Truthy(v));
        if (v.kind == Value::Kind::kInt) return Value::Int(e.name == "-" ? -v.i : v.i);
        if (v.is_number()) return Value::Float(e.name == "-" ? -v.number() : v.number());
        throw RenderError("line " + std::to_string(e.line) + ": unary " + e.name + " of a " + KindName(v));
      }
      case Expr::Kind::kBinary: return Binary(e);
      case Expr::Kind::kCond:
        if (Truthy(Eval(*e.args[1]))) return Eval(*e.args[0]);
        return e.args[2] ? Eval(*e.args[2]) : Value();
      case Expr::Kind::kList: {
        Value l = Value::NewList();
        for (const auto& x : e.args) l.list->push_back(Eval(*x));
        return l;
      }
      case Expr::Kind::kDict: {
        Value d = Value::NewDict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          const Value key = Eval(*e.args[k]);
          d.dict->Set(Str(key), Eval(*e.args[k + 1]));
        }
        return d;
      }
    }
    return Value();
  }

  Value Slice(const Expr& e) {
    const Value obj = Eval(*e.args[0]);
    auto part = [&](int k, int64_t fallback) {
      if (!e.args[k]) return fallback;
      const Value v = Eval(*e.args[k]);
      if (v.kind == Value::Kind::kNone) return fallback;
      if (v.kind != Value::Kind::kInt) throw RenderError("a slice's bounds must be integers");
      return v.i;
    };
    const int64_t step = part(3, 1);
    if (step == 0) throw RenderError("a slice step of 0");
    const int64_t n = obj.is_string() ? static_cast<int64_t>(obj.s.size()) : obj.kind == Value::Kind::kList ? static_cast<int64_t>(obj.list->size()) : -1;
    if (n < 0) throw RenderError(std::string("cannot slice a ") + KindName(obj));
    auto clamp = [&](int64_t i) {
      if (i < 0) i += n;
      if (step > 0) return std::clamp<int64_t>(i, 0, n);
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    int64_t start = e.args[1] ? clamp(part(1, 0)) : (step > 0 ? 0 : n - 1);
    int64_t stop = e.args[2] ? clamp(part(2, 0)) : (step > 0 ? n : -1);
    Value out = obj.is_string() ? Value::Str("") : Value::NewList();
    std::string s;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (obj.is_string()) s.push_back(obj.s[static_cast<size_t>(i)]);
      else out.list->push_back((*obj.list)[static_cast<size_t>(i)]);
    }
    return obj.is_string() ? Derived(s, obj) : out;
  }

  Value Binary(const Expr& e) {
    const std::string& op = e.name;
    const Value a = Eval(*e.args[0]);
    if (op == "and") return Truthy(a) ? Eval(*e.args[1]) : a;
    if (op == "or") return Truthy(a) ? a : Eval(*e.args[1]);
    const Value b = Eval(*e.args[1]);
    if (op == "==") return Value::Bool(Equal(a, b));
    if (op == "!=") return Value::Bool(!Equal(a, b));
    if (op == "in" || op == "notin") {
      CallArgs args;
      args.args.push_back(b);
      if (!b.is_string() && b.kind != Value::Kind::kList && !b.is_mapping() && b.kind != Value::Kind::kUndefined) {
        throw RenderError(std::string("'in' a ") + KindName(b));
      }
      return Value::Bool(ApplyTest("in", a, args) == (op == "in"));
    }
    if (op == "~") {
      const Value r = Concat(a.is_string() ? a : Derived(Str(a), a), b.is_string() ? b : Derived(Str(b), b));
      if (r.s.size() > limits_.max_output) TooLong();
      return r;
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (a.is_number() && b.is_number()) c = a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
      else if (a.is_string() && b.is_string()) c = a.s.compare(b.s);
      else throw RenderError(std::string("cannot compare a ") + KindName(a) + " and a " + KindName(b));
      return Value::Bool(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (op == "+" && a.is_string() && b.is_string()) {
      if (a.s.size() + b.s.size() > limits_.max_output) TooLong();
      return Concat(a, b);
    }
    if (op == "+" && a.kind == Value::Kind::kList && b.kind == Value::Kind::kList) {
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::NewList(std::move(l));
    }
    if (op == "*" && a.is_string() && b.kind == Value::Kind::kInt) {
      if (b.i > 0 && a.s.size() * static_cast<size_t>(b.i) > limits_.max_output) TooLong();
      std::string r;
      for (int64_t k = 0; k < b.i; ++k) r += a.s;
      return Derived(r, a);
    }
    const bool nums = (a.is_number() || a.kind == Value::Kind::kBool) && (b.is_number() || b.kind == Value::Kind::kBool);
    if (!nums) throw RenderError("line " + std::to_string(e.line) + ": cannot " + op + " a " + KindName(a) + " and a " + KindName(b));
    const bool ints = a.kind != Value::Kind::kFloat && b.kind != Value::Kind::kFloat;
    const int64_t x = a.kind == Value::Kind::kBool ? a.b : a.i, y = b.kind == Value::Kind::kBool ? b.b : b.i;
    const double fx = a.number(), fy = b.number();
    if (op == "+") return ints ? Value::Int(x + y) : Value::Float(fx + fy);
    if (op == "-") return ints ? Value::Int(x - y) : Value::Float(fx - fy);
    if (op == "*") return ints ? Value::Int(x * y) : Value::Float(fx * fy);
    if (op == "**") return ints && y >= 0 && y < 64 ? Value::Int(static_cast<int64_t>(std::pow(fx, fy))) : Value::Float(std::pow(fx, fy));
    if (fy == 0) throw RenderError("line " + std::to_string(e.line) + ": division by zero");
    if (op == "/") return Value::Float(fx / fy);
    if (op == "//") return ints ? Value::Int(static_cast<int64_t>(std::floor(fx / fy))) : Value::Float(std::floor(fx / fy));
    if (op == "%") {
      if (ints) return Value::Int(((x % y) + y) % y);
      return Value::Float(fx - fy * std::floor(fx / fy));
    }
    throw RenderError("unknown operator " + op);
  }

  Limits limits_;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  std::vector<Value> out_;  // the output, and captures (set blocks, macro calls) above it
  int64_t steps_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<std::unique_ptr<Template>> Template::Parse(const std::string& source) {
  auto body = ParseTemplate(source);
  if (!body.ok()) return body.status();
  std::unique_ptr<Template> t(new Template());
  t->body_ = std::move(body.value());
  return t;
}

Result<Rendered> Template::Render(const Value& context, const Limits& limits) const {
  Arena arena;  // declared first: it empties what the run made after the run is gone
  try {
    Run run(context, limits);
    return run.Render(*body_);
  } catch (const RenderError& e) {
    return Status::Error(std::string("the chat template failed: ") + e.what());
  }
}

}  // namespace strata::text::jinja
