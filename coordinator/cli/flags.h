#pragma once
// FlagSet: the CLI's flag parser. Each flag is bound to a variable; Parse()
// validates values and reports one line naming the bad flag.
// Not thread-safe.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace strata {

class FlagSet {
 public:
  FlagSet(std::string usage, std::string description) : usage_(std::move(usage)), description_(std::move(description)) {}

  void String(const std::string& name, std::string* target, const std::string& help);
  void Int(const std::string& name, int64_t* target, int64_t lo, int64_t hi, const std::string& help);
  void UInt64(const std::string& name, uint64_t* target, const std::string& help);
  void Float(const std::string& name, double* target, double lo, double hi, const std::string& help);
  void Bool(const std::string& name, bool* target, const std::string& help);

  // Parses argv[first..argc). Returns false and sets *error on a bad flag;
  // sets *help when --help was given.
  bool Parse(int argc, char** argv, int first, std::string* error, bool* help);
  bool WasSet(const std::string& name) const;
  std::string Help() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    bool takes_value = true;
    std::function<bool(const std::string&, std::string*)> set;
    bool seen = false;
  };
  std::string usage_, description_;
  std::vector<Flag> flags_;
};

}  // namespace strata
