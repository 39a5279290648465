#pragma once
// FlagSet: a command's flags, parsed by CLI11 (as strata-node's and
// strata-train's are): each flag bound to a variable, ranges and sizes
// checked by CLI11's validators, defaults and exclusive groups shown in
// --help by CLI11 itself, and one line naming the bad flag on an error.
// Not thread-safe.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace strata {

class FlagSet {
 public:
  FlagSet(const std::string& usage, const std::string& description);

  void String(const std::string& name, std::string* target, const std::string& help);
  void Int(const std::string& name, int64_t* target, int64_t lo, int64_t hi, const std::string& help);
  void UInt64(const std::string& name, uint64_t* target, const std::string& help);
  void Float(const std::string& name, double* target, double lo, double hi, const std::string& help);
  void Bool(const std::string& name, bool* target, const std::string& help);
  // A byte count: 512MiB, 8GiB, 100kb (every unit a power of 1024), or bytes.
  void Size(const std::string& name, uint64_t* target, const std::string& help);
  // At most one of these flags (already added) may be given.
  void Exclusive(const std::vector<std::string>& names);

  // Parses argv[first..argc). Returns false and sets *error on a bad flag;
  // sets *help when --help was given.
  bool Parse(int argc, char** argv, int first, std::string* error, bool* help);
  bool WasSet(const std::string& name) const;
  std::string Help() const;

 private:
  CLI::Option* Find(const std::string& name);
  CLI::App app_;
};

}  // namespace strata
