#include "coordinator/cli/flags.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace strata {

void FlagSet::String(const std::string& name, std::string* target, const std::string& help) {
  flags_.push_back({name, help, *target, true, [target](const std::string& v, std::string*) {
                      *target = v;
                      return true;
                    }});
}

void FlagSet::Int(const std::string& name, int64_t* target, int64_t lo, int64_t hi, const std::string& help) {
  flags_.push_back({name, help, std::to_string(*target), true, [=](const std::string& v, std::string* error) {
                      char* end = nullptr;
                      errno = 0;
                      const long long x = std::strtoll(v.c_str(), &end, 10);
                      if (v.empty() || *end != '\0' || errno != 0 || x < lo || x > hi) {
                        *error = "--" + name + " wants an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                                 ", got '" + v + "'";
                        return false;
                      }
                      *target = x;
                      return true;
                    }});
}

void FlagSet::UInt64(const std::string& name, uint64_t* target, const std::string& help) {
  flags_.push_back({name, help, std::to_string(*target), true, [=](const std::string& v, std::string* error) {
                      char* end = nullptr;
                      errno = 0;
                      const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
                      if (v.empty() || v[0] == '-' || *end != '\0' || errno != 0) {
                        *error = "--" + name + " wants a non-negative integer, got '" + v + "'";
                        return false;
                      }
                      *target = x;
                      return true;
                    }});
}

void FlagSet::Float(const std::string& name, double* target, double lo, double hi, const std::string& help) {
  std::ostringstream def;
  def << *target;
  flags_.push_back({name, help, def.str(), true, [=](const std::string& v, std::string* error) {
                      char* end = nullptr;
                      const double x = std::strtod(v.c_str(), &end);
                      if (v.empty() || *end != '\0' || !(x >= lo && x <= hi)) {
                        std::ostringstream os;
                        os << "--" << name << " wants a number in " << lo << ".." << hi << ", got '" << v << "'";
                        *error = os.str();
                        return false;
                      }
                      *target = x;
                      return true;
                    }});
}

void FlagSet::Bool(const std::string& name, bool* target, const std::string& help) {
  flags_.push_back({name, help, "", false, [target](const std::string&, std::string*) {
                      *target = true;
                      return true;
                    }});
}

bool FlagSet::Parse(int argc, char** argv, int first, std::string* error, bool* help) {
  *help = false;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") { *help = true; return true; }
    if (arg.rfind("--", 0) != 0) { *error = "unexpected argument '" + arg + "' (see --help)"; return false; }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) { value = name.substr(eq + 1); name = name.substr(0, eq); }
    Flag* flag = nullptr;
    for (auto& f : flags_) if (f.name == name) flag = &f;
    if (flag == nullptr) { *error = "unknown option '--" + name + "' (see --help)"; return false; }
    if (flag->takes_value && !inline_value) {
      if (i + 1 >= argc) { *error = "--" + name + " needs a value"; return false; }
      value = argv[++i];
    }
    if (!flag->set(value, error)) return false;
    flag->seen = true;
  }
  return true;
}

bool FlagSet::WasSet(const std::string& name) const {
  for (const auto& f : flags_) if (f.name == name) return f.seen;
  return false;
}

std::string FlagSet::Help() const {
  std::ostringstream os;
  os << "usage: " << usage_ << "\n\n" << description_ << "\n\noptions:\n";
  for (const auto& f : flags_) {
    std::string left = "  --" + f.name + (f.takes_value ? " VALUE" : "");
    os << left << std::string(left.size() < 26 ? 26 - left.size() : 1, ' ') << f.help;
    if (f.takes_value && !f.default_text.empty() && f.default_text != "0") os << " (default " << f.default_text << ")";
    os << "\n";
  }
  os << "  --help                  this text\n";
  return os.str();
}

}  // namespace strata
