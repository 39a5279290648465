#pragma once
// RateLimitedLog: at most one log line per key (a peer address) per
// interval, so a peer that hammers a node cannot flood its log. Remembers at
// most kMaxKeys keys; past that it forgets them all and starts again.
// Not thread-safe: the event-loop thread owns it.
#include <chrono>
#include <map>
#include <string>

namespace strata {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::seconds interval = std::chrono::seconds(60)) : interval_(interval) {}

  // True when a line about `key` should be written now.
  bool ShouldLog(const std::string& key) {
    const auto now = std::chrono::steady_clock::now();
    if (last_.size() >= kMaxKeys && !last_.count(key)) last_.clear();
    auto it = last_.find(key);
    if (it != last_.end() && now - it->second < interval_) return false;
    last_[key] = now;
    return true;
  }

 private:
  static constexpr size_t kMaxKeys = 1024;
  std::chrono::seconds interval_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_;
};

}  // namespace strata
