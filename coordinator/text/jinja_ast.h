#pragma once
// The parsed form of a Jinja template: expressions and statements, as
// Strata's renderer runs them. Built once by ParseTemplate; immutable.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "coordinator/text/jinja_value.h"

namespace strata::text::jinja {

struct Expr {
  enum class Kind {
    kLiteral,  // value
    kName,     // name
    kAttr,     // args[0].name
    kIndex,    // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]] (null parts absent)
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs)
    kTest,     // args[0] is [not] name(args[1..])
    kUnary,    // op args[0]: "not", "-", "+"
    kBinary,   // args[0] op args[1]: or and == != < > <= >= in notin + - ~ * / // % **
    kCond,     // args[0] if args[1] else args[2]
    kList,     // [args...]
    kDict,     // {args[0]: args[1], ...}
  };
  Kind kind = Kind::kLiteral;
  Value value;
  std::string name;  // names, attributes, filters, tests, operators
  bool negated = false;
  int line = 0;
  std::vector<std::unique_ptr<Expr>> args;  // null entries: absent slice parts
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
};

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;                             // kText
  std::unique_ptr<Expr> expr;                   // kOutput, kFor's iterable, kSet's value
  std::vector<std::unique_ptr<Expr>> conds;     // kIf: one per branch (null: else)
  std::vector<std::vector<std::unique_ptr<Node>>> bodies;  // kIf: per branch; kFor: {body, else}; kMacro/kSetBlock: {body}
  std::vector<std::string> targets;             // kFor: loop variables; kSet: name or {namespace, attr}; kMacro: name
  std::unique_ptr<Expr> filter;                 // kFor: `if` condition
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> params;  // kMacro: parameters and defaults (null: none)
};

using Body = std::vector<std::unique_ptr<Node>>;

struct Macro {
  std::string name;
  const Node* node = nullptr;  // owned by the template
};

// Parses a template, with the whitespace rules apply_chat_template uses
// (trim_blocks, lstrip_blocks, one trailing newline dropped). Errors name the line.
Result<std::shared_ptr<const Body>> ParseTemplate(const std::string& source);

}  // namespace strata::text::jinja
