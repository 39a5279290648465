// Jinja's parser, for the subset real chat templates use: {% if/elif/else %},
// {% for %} with loop filters and else, set and set blocks, macros,
// break/continue, generation markers, and Jinja2's expression grammar and
// precedence.
#include <cctype>

#include "coordinator/text/jinja_ast.h"
#include "coordinator/text/jinja_lexer.h"

namespace strata::text::jinja {
namespace {

constexpr int kMaxDepth = 96;  // nesting of expressions and blocks

class Parser {
 public:
  explicit Parser(std::vector<Token> t) : t_(std::move(t)) {}

  Status Template(Body* body) {
    std::string stop;
    Status st = Block(body, {}, &stop);
    if (st.ok() && !stop.empty()) return Error("{% " + stop + " %} without its block");
    return st;
  }

 private:
  using ExprPtr = std::unique_ptr<Expr>;
  const Token& Peek(size_t k = 0) const { return t_[std::min(at_ + k, t_.size() - 1)]; }
  bool IsOp(const char* op, size_t k = 0) const { return Peek(k).kind == Token::Kind::kOp && Peek(k).text == op; }
  bool IsName(const char* n, size_t k = 0) const { return Peek(k).kind == Token::Kind::kName && Peek(k).text == n; }
  Status Error(const std::string& why) const {
    return Status::Error("line " + std::to_string(Peek().line) + ": " + why +
                         (Peek().text.empty() ? "" : " (at '" + Peek().text.substr(0, 40) + "')"));
  }
  Status Expect(const char* op) {
    if (!IsOp(op)) return Error(std::string("expected '") + op + "'");
    ++at_;
    return Status::Ok();
  }
  Status ExpectClose() {
    if (Peek().kind != Token::Kind::kStmtClose) return Error("expected %}");
    ++at_;
    return Status::Ok();
  }

  // Nodes until one of `stops` opens a tag ({% elif %}, {% endfor %} ...): its name in *stop.
  Status Block(Body* body, const std::vector<std::string>& stops, std::string* stop) {
    if (++depth_ > kMaxDepth) return Error("blocks nested too deep");
    while (true) {
      const Token& tok = Peek();
      if (tok.kind == Token::Kind::kEnd) {
        --depth_;
        return stops.empty() ? Status::Ok() : Error("the template ends inside a block (expected {% " + stops[0] + " %})");
      }
      if (tok.kind == Token::Kind::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->text = tok.text;
        body->push_back(std::move(n));
        ++at_;
        continue;
      }
      if (tok.kind == Token::Kind::kExprOpen) {
        ++at_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->line = tok.line;
        Status st = Expression(&n->expr);
        if (!st.ok()) return st;
        if (Peek().kind != Token::Kind::kExprClose) return Error("expected }}");
        ++at_;
        body->push_back(std::move(n));
        continue;
      }
      if (tok.kind != Token::Kind::kStmtOpen) return Error("unexpected token");
      const Token& name = Peek(1);
      if (name.kind != Token::Kind::kName) return Error("a statement needs a name");
      for (const auto& s : stops) {
        if (name.text == s) {
          at_ += 2;
          *stop = s;
          --depth_;
          return Status::Ok();
        }
      }
      at_ += 2;
      Status st = Statement(name.text, name.line, body);
      if (!st.ok()) return st;
    }
  }

  Status Statement(const std::string& name, int line, Body* body) {
    auto n = std::make_unique<Node>();
    n->line = line;
    Status st;
    if (name == "if") st = If(n.get());
    else if (name == "for") st = For(n.get());
    else if (name == "set") st = Set(n.get());
    else if (name == "macro") st = MacroDef(n.get());
    else if (name == "break" || name == "continue") {
      n->kind = name == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      st = ExpectClose();
    } else if (name == "generation" || name == "endgeneration") {
      return ExpectClose();  // training markers: nothing to render
    } else {
      return Error("unknown statement '" + name + "'");
    }
    if (!st.ok()) return st;
    body->push_back(std::move(n));
    return Status::Ok();
  }

  Status If(Node* n) {
    n->kind = Node::Kind::kIf;
    ExprPtr cond;
    Status st = Expression(&cond);
    if (!st.ok()) return st;
    if (!(st = ExpectClose()).ok()) return st;
    while (true) {
      n->conds.push_back(std::move(cond));
      n->bodies.emplace_back();
      std::string stop;
      st = Block(&n->bodies.back(), {"elif", "else", "endif"}, &stop);
      if (!st.ok()) return st;
      if (stop == "endif") return ExpectClose();
      if (stop == "else") {
        if (!(st = ExpectClose()).ok()) return st;
        n->conds.push_back(nullptr);
        n->bodies.emplace_back();
        st = Block(&n->bodies.back(), {"endif"}, &stop);
        if (!st.ok()) return st;
        return ExpectClose();
      }
      if (!(st = Expression(&cond)).ok()) return st;
      if (!(st = ExpectClose()).ok()) return st;
    }
  }

  Status For(Node* n) {
    n->kind = Node::Kind::kFor;
    do {
      if (Peek().kind != Token::Kind::kName) return Error("for needs loop variable names");
      n->targets.push_back(Peek().text);
      ++at_;
    } while (IsOp(",") && ++at_);
    if (!IsName("in")) return Error("expected 'in'");
    ++at_;
    Status st = Ternary(&n->expr, /*allow_if=*/false);
    if (!st.ok()) return st;
    if (IsName("if")) {
      ++at_;
      if (!(st = Or(&n->filter)).ok()) return st;
    }
    if (IsName("recursive")) return Error("recursive loops are not supported");
    if (!(st = ExpectClose()).ok()) return st;
    n->bodies.emplace_back();
    std::string stop;
    if (!(st = Block(&n->bodies.back(), {"else", "endfor"}, &stop)).ok()) return st;
    n->bodies.emplace_back();
    if (stop == "else") {
      if (!(st = ExpectClose()).ok()) return st;
      if (!(st = Block(&n->bodies.back(), {"endfor"}, &stop)).ok()) return st;
    }
    return ExpectClose();
  }

  Status Set(Node* n) {
    n->kind = Node::Kind::kSet;
    if (Peek().kind != Token::Kind::kName) return Error("set needs a name");
    n->targets.push_back(Peek().text);
    ++at_;
    if (IsOp(".")) {
      if (Peek(1).kind != Token::Kind::kName) return Error("set needs an attribute name after '.'");
      n->targets.push_back(Peek(1).text);
      at_ += 2;
    }
    if (Peek().kind == Token::Kind::kStmtClose && n->targets.size() == 1) {
      ++at_;
      n->kind = Node::Kind::kSetBlock;
      n->bodies.emplace_back();
      std::string stop;
      Status st = Block(&n->bodies.back(), {"endset"}, &stop);
      return st.ok() ? ExpectClose() : st;
    }
    Status st = Expect("=");
    if (!st.ok()) return st;
    if (!(st = Expression(&n->expr)).ok()) return st;
    return ExpectClose();
  }

  Status MacroDef(Node* n) {
    n->kind = Node::Kind::kMacro;
    if (Peek().kind != Token::Kind::kName) return Error("macro needs a name");
    n->targets.push_back(Peek().text);
    ++at_;
    Status st = Expect("(");
    if (!st.ok()) return st;
    while (!IsOp(")")) {
      if (Peek().kind != Token::Kind::kName) return Error("a macro parameter needs a name");
      std::string p = Peek().text;
      ++at_;
      ExprPtr def;
      if (IsOp("=")) {
        ++at_;
        if (!(st = Expression(&def)).ok()) return st;
      }
      n->params.emplace_back(std::move(p), std::move(def));
      if (!IsOp(",")) break;
      ++at_;
    }
    if (!(st = Expect(")")).ok()) return st;
    if (!(st = ExpectClose()).ok()) return st;
    n->bodies.emplace_back();
    std::string stop;
    if (!(st = Block(&n->bodies.back(), {"endmacro"}, &stop)).ok()) return st;
    return ExpectClose();
  }

  ExprPtr Make(Expr::Kind k, std::string name = "") {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->name = std::move(name);
    e->line = Peek().line;
    return e;
  }
  ExprPtr Binary(std::string op, ExprPtr a, ExprPtr b) {
    auto e = Make(Expr::Kind::kBinary, std::move(op));
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  Status Expression(ExprPtr* out) { return Ternary(out, true); }

  Status Ternary(ExprPtr* out, bool allow_if) {
    if (++depth_ > kMaxDepth) return Error("an expression is nested too deep");
    Status st = Or(out);
    while (st.ok() && allow_if && IsName("if")) {
      ++at_;
      auto e = Make(Expr::Kind::kCond);
      ExprPtr cond, other;
      if (!(st = Or(&cond)).ok()) break;
      if (IsName("else")) {
        ++at_;
        if (!(st = Ternary(&other, true)).ok()) break;
      }
      e->args.push_back(std::move(*out));
      e->args.push_back(std::move(cond));
      e->args.push_back(std::move(other));  // null: undefined
      *out = std::move(e);
    }
    --depth_;
    return st;
  }

  using Rule = Status (Parser::*)(ExprPtr*);
  // One precedence level: operands parsed by `next`, joined left to right by any of `ops`.
  Status LeftAssoc(ExprPtr* out, Rule next, std::initializer_list<const char*> ops) {
    Status st = (this->*next)(out);
    while (st.ok()) {
      const char* op = nullptr;
      for (const char* o : ops) {
        if (IsOp(o) || IsName(o)) op = o;
      }
      if (op == nullptr) break;
      ++at_;
      ExprPtr r;
      if (!(st = (this->*next)(&r)).ok()) break;
      *out = Binary(op, std::move(*out), std::move(r));
    }
    return st;
  }
  Status Or(ExprPtr* out) { return LeftAssoc(out, &Parser::And, {"or"}); }
  Status And(ExprPtr* out) { return LeftAssoc(out, &Parser::Not, {"and"}); }
  Status Not(ExprPtr* out) {
    if (IsName("not")) {
      ++at_;
      if (++depth_ > kMaxDepth) return Error("an expression is nested too deep");
      auto e = Make(Expr::Kind::kUnary, "not");
      e->args.emplace_back();
      Status st = Not(&e->args[0]);
      --depth_;
      *out = std::move(e);
      return st;
    }
    return Compare(out);
  }
  Status Compare(ExprPtr* out) {
    Status st = Math1(out);
    while (st.ok()) {
      std::string op;
      if (Peek().kind == Token::Kind::kOp &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
           Peek().text == "<=" || Peek().text == ">=")) {
        op = Peek().text;
        ++at_;
      } else if (IsName("in")) {
        op = "in";
        ++at_;
      } else if (IsName("not") && IsName("in", 1)) {
        op = "notin";
        at_ += 2;
      } else {
        break;
      }
      ExprPtr r;
      if (!(st = Math1(&r)).ok()) break;
      *out = Binary(op, std::move(*out), std::move(r));
    }
    return st;
  }
  Status Math1(ExprPtr* out) { return LeftAssoc(out, &Parser::Concat, {"+", "-"}); }
  Status Concat(ExprPtr* out) { return LeftAssoc(out, &Parser::Math2, {"~"}); }
  Status Math2(ExprPtr* out) { return LeftAssoc(out, &Parser::Pow, {"*", "/", "//", "%"}); }
  Status Pow(ExprPtr* out) { return LeftAssoc(out, &Parser::Unary, {"**"}); }
  Status Unary(ExprPtr* out) {
    if (IsOp("-") || IsOp("+")) {
      auto e = Make(Expr::Kind::kUnary, Peek().text);
      ++at_;
      if (++depth_ > kMaxDepth) return Error("an expression is nested too deep");
      e->args.emplace_back();
      Status st = Unary(&e->args[0]);
      --depth_;
      if (!st.ok()) return st;
      *out = std::move(e);
    } else {
      Status st = Primary(out);
      if (!st.ok()) return st;
      if (!(st = Postfix(out)).ok()) return st;
    }
    return FilterExpr(out);
  }

  Status Args(Expr* e) {
    Status st = Expect("(");
    if (!st.ok()) return st;
    while (!IsOp(")")) {
      if (Peek().kind == Token::Kind::kName && IsOp("=", 1)) {
        std::string k = Peek().text;
        at_ += 2;
        ExprPtr v;
        if (!(st = Expression(&v)).ok()) return st;
        e->kwargs.emplace_back(std::move(k), std::move(v));
      } else {
        ExprPtr v;
        if (!(st = Expression(&v)).ok()) return st;
        e->args.push_back(std::move(v));
      }
      if (!IsOp(",")) break;
      ++at_;
    }
    return Expect(")");
  }

  Status Postfix(ExprPtr* out) {
    while (true) {
      if (IsOp(".")) {
        if (Peek(1).kind != Token::Kind::kName) return Error("expected an attribute name after '.'");
        auto e = Make(Expr::Kind::kAttr, Peek(1).text);
        at_ += 2;
        e->args.push_back(std::move(*out));
        *out = std::move(e);
      } else if (IsOp("[")) {
        ++at_;
        Status st = Subscript(out);
        if (!st.ok()) return st;
      } else if (IsOp("(")) {
        auto e = Make(Expr::Kind::kCall);
        e->args.push_back(std::move(*out));
        Status st = Args(e.get());
        if (!st.ok()) return st;
        *out = std::move(e);
      } else {
        return Status::Ok();
      }
    }
  }

  Status Subscript(ExprPtr* out) {
    ExprPtr parts[3];
    int n = 0;
    bool slice = false;
    while (true) {
      if (!IsOp(":") && !IsOp("]")) {
        Status st = Expression(&parts[n]);
        if (!st.ok()) return st;
      }
      if (IsOp(":") && n < 2) {
        slice = true;
        ++n;
        ++at_;
        continue;
      }
      break;
    }
    Status st = Expect("]");
    if (!st.ok()) return st;
    auto e = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kIndex);
    if (!slice && !parts[0]) return Error("an empty subscript");
    e->args.push_back(std::move(*out));
    for (int k = 0; k < (slice ? 3 : 1); ++k) e->args.push_back(std::move(parts[k]));
    *out = std::move(e);
    return Status::Ok();
  }

  Status FilterExpr(ExprPtr* out) {
    while (true) {
      if (IsOp("|")) {
        if (Peek(1).kind != Token::Kind::kName) return Error("expected a filter name after '|'");
        auto e = Make(Expr::Kind::kFilter, Peek(1).text);
        at_ += 2;
        e->args.push_back(std::move(*out));
        if (IsOp("(")) {
          Status st = Args(e.get());
          if (!st.ok()) return st;
        }
        *out = std::move(e);
      } else if (IsName("is")) {
        ++at_;
        auto e = Make(Expr::Kind::kTest);
        if (IsName("not")) {
          e->negated = true;
          ++at_;
        }
        if (Peek().kind != Token::Kind::kName) return Error("expected a test name after 'is'");
        e->name = Peek().text;
        ++at_;
        e->args.push_back(std::move(*out));
        if (IsOp("(")) {
          Status st = Args(e.get());
          if (!st.ok()) return st;
        } else if (Peek().kind == Token::Kind::kString || Peek().kind == Token::Kind::kInt ||
                   (Peek().kind == Token::Kind::kName && !IsName("and") && !IsName("or") && !IsName("else") &&
                    !IsName("if") && !IsName("is") && !IsName("in") && !IsName("not"))) {
          ExprPtr arg;  // `is divisibleby 3`, `is equalto 'x'`
          Status st = Primary(&arg);
          if (!st.ok()) return st;
          e->args.push_back(std::move(arg));
        }
        *out = std::move(e);
      } else {
        return Status::Ok();
      }
    }
  }

  Status Primary(ExprPtr* out) {
    const Token::Kind kind = Peek().kind;
    if (kind == Token::Kind::kString || kind == Token::Kind::kInt || kind == Token::Kind::kFloat ||
        kind == Token::Kind::kName) {
      return Atom(out);
    }
    if (IsOp("(")) return Parenthesized(out);
    if (IsOp("[")) return ListDisplay(out);
    if (IsOp("{")) return DictDisplay(out);
    return Error("expected an expression");
  }

  // A string (adjacent ones joined), a number, true/false/none, or a name.
  Status Atom(ExprPtr* out) {
    const Token& t = Peek();
    if (t.kind == Token::Kind::kString) {
      std::string s;
      while (Peek().kind == Token::Kind::kString) s += Peek().text, ++at_;  // adjacent literals join
      *out = Make(Expr::Kind::kLiteral);
      (*out)->value = Value::Str(s);
      return Status::Ok();
    }
    if (t.kind == Token::Kind::kInt || t.kind == Token::Kind::kFloat) {
      *out = Make(Expr::Kind::kLiteral);
      errno = 0;
      if (t.kind == Token::Kind::kInt) {
        const long long v = std::strtoll(t.text.c_str(), nullptr, 10);
        if (errno == ERANGE) return Error("an integer literal out of range");
        (*out)->value = Value::Int(v);
      } else {
        (*out)->value = Value::Float(std::strtod(t.text.c_str(), nullptr));
      }
      ++at_;
      return Status::Ok();
    }
    if (t.kind == Token::Kind::kName) {
      ++at_;
      *out = Make(Expr::Kind::kLiteral);
      if (t.text == "true" || t.text == "True") (*out)->value = Value::Bool(true);
      else if (t.text == "false" || t.text == "False") (*out)->value = Value::Bool(false);
      else if (t.text == "none" || t.text == "None") (*out)->value = Value::None();
      else (*out)->kind = Expr::Kind::kName, (*out)->name = t.text;
      return Status::Ok();
    }
    return Error("expected an expression");
  }

  // ( x ), or a tuple ( x, y ), read as a list.
  Status Parenthesized(ExprPtr* out) {
    ++at_;
    Status st = Expression(out);
    if (!st.ok()) return st;
    if (IsOp(",")) {  // a tuple: a list here
      auto l = Make(Expr::Kind::kList);
      l->args.push_back(std::move(*out));
      while (IsOp(",")) {
        ++at_;
        if (IsOp(")")) break;
        ExprPtr x;
        if (!(st = Expression(&x)).ok()) return st;
        l->args.push_back(std::move(x));
      }
      *out = std::move(l);
    }
    return Expect(")");
  }

  Status ListDisplay(ExprPtr* out) {
    ++at_;
    auto l = Make(Expr::Kind::kList);
    while (!IsOp("]")) {
      ExprPtr x;
      Status st = Expression(&x);
      if (!st.ok()) return st;
      l->args.push_back(std::move(x));
      if (!IsOp(",")) break;
      ++at_;
    }
    *out = std::move(l);
    return Expect("]");
  }

  Status DictDisplay(ExprPtr* out) {
    ++at_;
    auto d = Make(Expr::Kind::kDict);
    while (!IsOp("}")) {
      ExprPtr k, v;
      Status st = Expression(&k);
      if (!st.ok()) return st;
      if (!(st = Expect(":")).ok()) return st;
      if (!(st = Expression(&v)).ok()) return st;
      d->args.push_back(std::move(k));
      d->args.push_back(std::move(v));
      if (!IsOp(",")) break;
      ++at_;
    }
    *out = std::move(d);
    return Expect("}");
  }

  std::vector<Token> t_;
  size_t at_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Body>> ParseTemplate(const std::string& source) {
  std::vector<Token> tokens;
  Status st = Lex(source, &tokens);
  if (!st.ok()) return Status::Error("the chat template does not parse: " + st.message());
  auto body = std::make_shared<Body>();
  Parser parser(std::move(tokens));
  st = parser.Template(body.get());
  if (!st.ok()) return Status::Error("the chat template does not parse: " + st.message());
  return std::shared_ptr<const Body>(std::move(body));
}

}  // namespace strata::text::jinja
