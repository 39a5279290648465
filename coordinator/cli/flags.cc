#include "coordinator/cli/flags.h"

#include <algorithm>

namespace strata {
namespace {

// The usage line goes first, with the description (CLI11 would print its
// own "Usage: [OPTIONS]" after it).
class UsageFirst final : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override { return "\n"; }
};

}  // namespace

FlagSet::FlagSet(const std::string& usage, const std::string& description)
    : app_("usage: " + usage + "\n\n" + description, "") {
  app_.formatter(std::make_shared<UsageFirst>());
  app_.get_formatter()->column_width(30);
  app_.option_defaults()->always_capture_default();
}

void FlagSet::String(const std::string& name, std::string* target, const std::string& help) {
  app_.add_option("--" + name, *target, help);
}

void FlagSet::Int(const std::string& name, int64_t* target, int64_t lo, int64_t hi, const std::string& help) {
  app_.add_option("--" + name, *target, help)->check(CLI::Range(lo, hi));
}

void FlagSet::UInt64(const std::string& name, uint64_t* target, const std::string& help) {
  app_.add_option("--" + name, *target, help)->check(CLI::NonNegativeNumber);
}

void FlagSet::Float(const std::string& name, double* target, double lo, double hi, const std::string& help) {
  app_.add_option("--" + name, *target, help)->check(CLI::Range(lo, hi));
}

void FlagSet::Bool(const std::string& name, bool* target, const std::string& help) {
  app_.add_flag("--" + name, *target, help);
}

void FlagSet::Size(const std::string& name, uint64_t* target, const std::string& help) {
  app_.add_option("--" + name, *target, help)->transform(CLI::AsSizeValue(false));
}

void FlagSet::Exclusive(const std::vector<std::string>& names) {
  for (const auto& a : names) {
    for (const auto& b : names) {
      if (a != b) Find(a)->excludes(Find(b));
    }
  }
}

CLI::Option* FlagSet::Find(const std::string& name) { return app_.get_option("--" + name); }

bool FlagSet::Parse(int argc, char** argv, int first, std::string* error, bool* help) {
  *help = false;
  std::vector<std::string> args(argv + first, argv + argc);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app_.parse(args);
  } catch (const CLI::CallForHelp&) {
    *help = true;
  } catch (const CLI::ParseError& e) {
    *error = std::string(e.what()) + " (see --help)";
    return false;
  }
  return true;
}

bool FlagSet::WasSet(const std::string& name) const {
  const CLI::Option* option = app_.get_option_no_throw("--" + name);
  return option != nullptr && option->count() > 0;
}

std::string FlagSet::Help() const { return app_.help(); }

}  // namespace strata
