#include "node/kv/eviction_policy.h"

#include <cmath>

namespace strata {
namespace {

// What every rule tracks: a logical clock, and per session the time of its
// last access and how many accesses it has had.
struct Usage {
  uint64_t last = 0;
  uint64_t count = 0;
  double crf = 0;  // adaptive only
};

class PolicyBase : public EvictionPolicy {
 public:
  void Touch(uint64_t session) override {
    Usage& u = sessions_[session];
    u.last = ++now_;
    ++u.count;
  }
  void Remove(uint64_t session) override { sessions_.erase(session); }
  bool Victim(uint64_t exclude, uint64_t* session) const override {
    bool found = false;
    for (const auto& [id, usage] : sessions_) {
      if (id == exclude) continue;
      if (!found || Less(usage, sessions_.at(*session))) {
        *session = id;
        found = true;
      }
    }
    return found;
  }

 protected:
  // True when `a` is less valuable than `b`.
  virtual bool Less(const Usage& a, const Usage& b) const = 0;
  uint64_t now_ = 0;
  std::map<uint64_t, Usage> sessions_;
};

class LruPolicy final : public PolicyBase {
 public:
  const char* name() const override { return "lru"; }

 private:
  bool Less(const Usage& a, const Usage& b) const override { return a.last < b.last; }
};

class LfuPolicy final : public PolicyBase {
 public:
  const char* name() const override { return "lfu"; }

 private:
  bool Less(const Usage& a, const Usage& b) const override {
    return a.count != b.count ? a.count < b.count : a.last < b.last;
  }
};

class AdaptivePolicy final : public PolicyBase {
 public:
  explicit AdaptivePolicy(double lambda) : lambda_(lambda) {}
  void Touch(uint64_t session) override {
    ++now_;
    Usage& u = sessions_[session];
    u.crf = 1.0 + Decayed(u);
    u.last = now_;
    ++u.count;
  }
  const char* name() const override { return "adaptive"; }

 private:
  double Decayed(const Usage& u) const {
    return u.count == 0 ? 0.0 : u.crf * std::exp2(-lambda_ * static_cast<double>(now_ - u.last));
  }
  bool Less(const Usage& a, const Usage& b) const override {
    const double x = Decayed(a), y = Decayed(b);
    return x != y ? x < y : a.last < b.last;
  }
  const double lambda_;
};

}  // namespace

Result<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(const std::string& name, double lambda) {
  if (name == "lru") return std::unique_ptr<EvictionPolicy>(new LruPolicy());
  if (name == "lfu") return std::unique_ptr<EvictionPolicy>(new LfuPolicy());
  if (name == "adaptive") {
    if (!(lambda > 0 && lambda <= 1)) return Status::Error("the adaptive policy's lambda must be in (0, 1]");
    return std::unique_ptr<EvictionPolicy>(new AdaptivePolicy(lambda));
  }
  return Status::Error("unknown KV eviction policy '" + name + "' (lru, lfu or adaptive)");
}

}  // namespace strata
