#pragma once
// EvictionPolicy: which session's KV pages sink to NVMe first when RAM is
// short. Every step of a session is an access; the policy names the least
// valuable session (never one the caller excludes: the one that needs the
// room). The three rules, by the flag names they will have:
//
//   lru       the session accessed longest ago.
//   lfu       the session accessed fewest times; ties go to the longest ago.
//   adaptive  LRFU (Lee et al., 2001): each session carries a combined
//             recency-frequency value, CRF = sum over its accesses at times
//             t_i of 2^(-lambda * (now - t_i)), kept incrementally as
//             CRF <- 1 + CRF * 2^(-lambda * (now - last)). The victim has the
//             smallest CRF decayed to now. Time is the policy's own access
//             counter. lambda = 1 behaves as LRU (one recent access outweighs
//             any history), lambda -> 0 as LFU; the default 0.1 lets a
//             session's value halve over ten accesses of others.
//
// Not thread-safe: the compute thread owns it.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/status.h"

namespace strata {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual void Touch(uint64_t session) = 0;   // an access (adds the session if new)
  virtual void Remove(uint64_t session) = 0;  // it closed
  // The session to evict from, not `exclude`; false when there is none.
  virtual bool Victim(uint64_t exclude, uint64_t* session) const = 0;
  virtual const char* name() const = 0;
};

// "lru" | "lfu" | "adaptive"; anything else is refused by name.
Result<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(const std::string& name, double lambda = 0.1);

}  // namespace strata
