#pragma once
// Reading tokenizer.json's step objects: typed fields with defaults, and one
// error form naming the step. A field of the wrong type is an error, never
// a silent default. Header-only; stateless.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/escape.h"
#include "base/status.h"

namespace strata::text {

using nlohmann::json;

inline std::string StepType(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

inline Status BadStep(const char* kind, const json& j, const std::string& why) {
  return Status::Error(std::string(kind) + " '" + EscapeText(StepType(j), 64) + "': " + why);
}

// Field `key` of `j` as T, or `fallback` when absent or null; false when present with another type.
template <typename T>
bool Field(const json& j, const char* key, T fallback, T* out) {
  *out = fallback;
  if (!j.contains(key) || j[key].is_null()) return true;
  const json& v = j[key];
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return false;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return false;
  } else {
    if (!v.is_number_integer()) return false;
  }
  *out = v.get<T>();
  return true;
}

// A {"String": s} or {"Regex": r} pattern: the regex text (literal strings escaped by the caller).
struct PatternField {
  std::string text;
  bool regex = false;
};
inline bool Pattern(const json& j, PatternField* out) {
  if (!j.contains("pattern") || !j["pattern"].is_object()) return false;
  const json& p = j["pattern"];
  if (p.contains("Regex") && p["Regex"].is_string()) {
    *out = {p["Regex"].get<std::string>(), true};
    return true;
  }
  if (p.contains("String") && p["String"].is_string()) {
    *out = {p["String"].get<std::string>(), false};
    return true;
  }
  return false;
}

constexpr int kMaxStepDepth = 8;  // Sequence inside Sequence: bounded

// A Sequence step's list (j[list_key]), each built by build(step, depth + 1);
// null steps are dropped.
template <typename Step, typename BuildFn>
Result<std::vector<std::unique_ptr<Step>>> SequenceSteps(const json& j, const char* kind, const char* list_key, int depth,
                                                          BuildFn build) {
  if (depth >= kMaxStepDepth) return BadStep(kind, j, "nested too deep");
  if (!j.contains(list_key) || !j[list_key].is_array()) return BadStep(kind, j, std::string("needs a ") + list_key + " list");
  std::vector<std::unique_ptr<Step>> steps;
  for (const json& s : j[list_key]) {
    auto step = build(s, depth + 1);
    if (!step.ok()) return step.status();
    if (step.value()) steps.push_back(std::move(step.value()));
  }
  return steps;
}

}  // namespace strata::text
