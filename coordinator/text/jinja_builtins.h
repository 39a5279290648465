#pragma once
// The renderer's built-in filters, tests, methods (of strings, dicts and
// lists) and global functions, as Jinja2 and transformers' chat template
// environment define them. Internal to the renderer: errors are thrown as
// RenderError and turned into a Status by Template::Render.
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/text/jinja_value.h"

namespace strata::text::jinja {

class RenderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  const Value* Kw(const char* name) const {
    for (const auto& [k, v] : kwargs) if (k == name) return &v;
    return nullptr;
  }
  // Positional `i`, else keyword `name`, else null.
  const Value* Arg(size_t i, const char* name) const { return i < args.size() ? &args[i] : Kw(name); }
};

Value ApplyFilter(const std::string& name, const Value& v, const CallArgs& a, size_t max_output);
bool ApplyTest(const std::string& name, const Value& v, const CallArgs& a);
Value CallMethod(const Value& obj, const std::string& name, const CallArgs& a, size_t max_output);
// namespace(), range(), raise_exception(), strftime_now(), dict(); null name: not a global.
bool IsGlobalFunction(const std::string& name);
Value CallFunction(const std::string& name, const CallArgs& a);
// obj[key] as Jinja reads it (negative list indices count from the end); undefined when absent.
Value Subscript(const Value& obj, const Value& key);

}  // namespace strata::text::jinja
