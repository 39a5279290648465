#pragma once
// MemoryAccountant: the one owner of a node's memory accounting. Every byte
// the node holds for a purpose — a shard's weights, a session's KV cache —
// is charged to a tier (device, RAM, NVMe) against that tier's hard budget
// before it is allocated. Nothing else computes "free memory".
//
// Thread-safe: mu_ guards used_. The compute thread charges and releases;
// the event loop reads for `info`.
#include <cstdint>
#include <string>

#include "base/mutex.h"
#include "base/status.h"

namespace strata {

enum class MemoryTier : uint8_t { kDevice = 0, kRam = 1, kNvme = 2 };
inline constexpr int kMemoryTiers = 3;
const char* MemoryTierName(MemoryTier tier);  // "device" | "ram" | "nvme"
// Sizes in the unit that keeps them readable: "512 KiB", "31 MiB", "12.5 GiB".
std::string FormatBytes(uint64_t bytes);

struct TierBudgets {
  uint64_t bytes[kMemoryTiers] = {0, 0, 0};
};

class MemoryCharge;

class MemoryAccountant {
 public:
  explicit MemoryAccountant(TierBudgets budgets) : budgets_(budgets) {}

  // Charges `bytes` for `what` to `tier`, or refuses with one line naming
  // what was asked, the tier, its budget and what is in use.
  Result<MemoryCharge> Charge(MemoryTier tier, uint64_t bytes, const std::string& what);

  uint64_t budget(MemoryTier tier) const { return budgets_.bytes[static_cast<int>(tier)]; }
  uint64_t used(MemoryTier tier) const;
  uint64_t free(MemoryTier tier) const;

 private:
  friend class MemoryCharge;
  void Release(MemoryTier tier, uint64_t bytes);

  const TierBudgets budgets_;
  mutable Mutex mu_;
  uint64_t used_[kMemoryTiers] GUARDED_BY(mu_) = {0, 0, 0};
};

// Bytes charged to a tier; released when the charge is destroyed. Movable,
// not copyable. Must not outlive its accountant.
class MemoryCharge {
 public:
  MemoryCharge() = default;
  MemoryCharge(MemoryCharge&& other) noexcept { *this = std::move(other); }
  MemoryCharge& operator=(MemoryCharge&& other) noexcept;
  MemoryCharge(const MemoryCharge&) = delete;
  MemoryCharge& operator=(const MemoryCharge&) = delete;
  ~MemoryCharge() { Reset(); }

  void Reset();  // releases now
  uint64_t bytes() const { return bytes_; }

 private:
  friend class MemoryAccountant;
  MemoryCharge(MemoryAccountant* owner, MemoryTier tier, uint64_t bytes) : owner_(owner), tier_(tier), bytes_(bytes) {}
  MemoryAccountant* owner_ = nullptr;  // borrowed
  MemoryTier tier_ = MemoryTier::kRam;
  uint64_t bytes_ = 0;
};

}  // namespace strata
