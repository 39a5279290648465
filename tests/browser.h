#pragma once
// Headless Chromium driven through chromedriver's WebDriver HTTP API, so a
// test can wait for a streamed answer, click and read a page as a user's
// browser would. Starts chromedriver on a free loopback port and stops it
// (and the browser) on destruction. Not thread-safe.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace strata::testing {

class Browser {
 public:
  Browser();
  ~Browser();
  bool ok() const { return !session_.empty(); }
  void Open(const std::string& url);
  // A script's result ("return ..."), as JSON (null on failure).
  nlohmann::json Run(const std::string& script);
  // Runs `script` until it returns true, for at most `seconds`.
  bool WaitFor(const std::string& script, double seconds);
  void Screenshot(const std::string& path);  // PNG

 private:
  nlohmann::json Call(const std::string& path, const nlohmann::json& body, const char* method = "POST");
  std::string base_, session_, profile_;
  std::unique_ptr<Child> driver_;
};

}  // namespace strata::testing
