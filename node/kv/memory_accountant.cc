#include "node/kv/memory_accountant.h"

#include <cstdio>

namespace strata {
namespace {

}  // namespace

std::string FormatBytes(uint64_t bytes) {
  char buf[32];
  if (bytes >= (10ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / 1073741824.0);
  } else if (bytes >= (4ull << 20)) {
    std::snprintf(buf, sizeof buf, "%llu MiB", static_cast<unsigned long long>((bytes + (1u << 20) - 1) >> 20));
  } else {
    std::snprintf(buf, sizeof buf, "%llu KiB", static_cast<unsigned long long>((bytes + 1023) >> 10));
  }
  return buf;
}

namespace {
std::string MiB(uint64_t bytes) { return FormatBytes(bytes); }
}  // namespace

const char* MemoryTierName(MemoryTier tier) {
  switch (tier) {
    case MemoryTier::kDevice: return "device";
    case MemoryTier::kRam: return "ram";
    case MemoryTier::kNvme: return "nvme";
  }
  return "?";
}

Result<MemoryCharge> MemoryAccountant::Charge(MemoryTier tier, uint64_t bytes, const std::string& what) {
  const int t = static_cast<int>(tier);
  MutexLock lock(&mu_);
  if (bytes > budgets_.bytes[t] || used_[t] > budgets_.bytes[t] - bytes) {
    return Status::Error(what + " needs " + MiB(bytes) + " but the node's " + MemoryTierName(tier) + " budget is " +
                         MiB(budgets_.bytes[t]) + " (" + MiB(used_[t]) + " in use)");
  }
  used_[t] += bytes;
  return MemoryCharge(this, tier, bytes);
}

uint64_t MemoryAccountant::used(MemoryTier tier) const {
  MutexLock lock(&mu_);
  return used_[static_cast<int>(tier)];
}

uint64_t MemoryAccountant::free(MemoryTier tier) const {
  MutexLock lock(&mu_);
  const int t = static_cast<int>(tier);
  return budgets_.bytes[t] - used_[t];
}

void MemoryAccountant::Release(MemoryTier tier, uint64_t bytes) {
  MutexLock lock(&mu_);
  used_[static_cast<int>(tier)] -= bytes;
}

MemoryCharge& MemoryCharge::operator=(MemoryCharge&& other) noexcept {
  if (this != &other) {
    Reset();
    owner_ = other.owner_;
    tier_ = other.tier_;
    bytes_ = other.bytes_;
    other.owner_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void MemoryCharge::Reset() {
  if (owner_ != nullptr && bytes_ > 0) owner_->Release(tier_, bytes_);
  owner_ = nullptr;
  bytes_ = 0;
}

}  // namespace strata
