#include "node/kv_cache.h"

#include <string>

namespace strata {

KvCache::~KvCache() {
  pool_.Forget(this);
  for (auto& page : pages_) pool_.Give(std::move(page));
}

Status KvCache::CheckStep(int64_t start, int64_t n) const {
  if (!lost_.empty()) return Status::Error(lost_);
  if (n <= 0 || start < 0 || start > length_ || start + n > capacity_) {
    return Status::Error("positions [" + std::to_string(start) + ", " + std::to_string(start + n) +
                         ") do not follow the session's " + std::to_string(length_) +
                         " cached tokens within its capacity " + std::to_string(capacity_));
  }
  return Status::Ok();
}

std::vector<const uint8_t*> KvCache::PageBytes() const {
  std::vector<const uint8_t*> bytes;
  for (const auto& page : pages_) bytes.push_back(page.memory.get());
  return bytes;
}

void KvCache::DropPages() {
  pool_.Forget(this);  // the next Gather reads the pages that come back, not a stale scratch
  for (auto& page : pages_) pool_.Give(std::move(page));
  pages_.clear();
  on_disk_ = true;
}

void KvCache::AdoptPages(std::vector<KvPagePool::Page> pages) {
  pages_ = std::move(pages);
  on_disk_ = false;
}

void KvCache::Lose(const std::string& why) {
  pool_.Forget(this);
  for (auto& page : pages_) pool_.Give(std::move(page));
  pages_.clear();
  on_disk_ = false;
  lost_ = why;
}

Status KvCache::Reserve(int64_t end) {
  const int64_t P = pool_.page_tokens();
  const size_t need = static_cast<size_t>((end + P - 1) / P);
  while (pages_.size() < need) {
    auto page = pool_.Take();
    if (!page.ok()) return page.status();
    pages_.push_back(std::move(page.value()));
  }
  return Status::Ok();
}

Result<LayerCache> KvCache::Gather(int64_t layer, int64_t start) {
  auto scratch = pool_.ScratchFor(capacity_);
  if (!scratch.ok()) return scratch.status();
  KvPagePool::Scratch& s = *scratch.value();
  LayerCache cache{s.k[layer], s.v[layer]};  // [kv_heads, capacity, head_dim]
  KvPagePool::Holder& held = s.valid[static_cast<size_t>(layer)];
  const int64_t P = pool_.page_tokens();
  // Copy only what the scratch does not already hold of this session.
  const int64_t from = held.owner == this ? std::min(held.positions, start) : 0;
  for (int64_t i = from / P; i * P < start; ++i) {
    const int64_t lo = std::max(from, i * P), hi = std::min(start, (i + 1) * P);
    auto page = pages_[static_cast<size_t>(i)].data[layer];  // [2, kv_heads, P, head_dim]
    cache.k.narrow(1, lo, hi - lo).copy_(page[0].narrow(1, lo - i * P, hi - lo));
    cache.v.narrow(1, lo, hi - lo).copy_(page[1].narrow(1, lo - i * P, hi - lo));
  }
  held = KvPagePool::Holder{this, start};
  return cache;
}

void KvCache::Scatter(int64_t layer, const LayerCache& scratch, int64_t start, int64_t end) {
  auto held = pool_.ScratchFor(capacity_);  // exists: Gather made it
  if (held.ok()) held.value()->valid[static_cast<size_t>(layer)] = KvPagePool::Holder{this, end};
  const int64_t P = pool_.page_tokens();
  for (int64_t i = start / P; i * P < end; ++i) {
    const int64_t lo = std::max(start, i * P), hi = std::min(end, (i + 1) * P);
    auto page = pages_[static_cast<size_t>(i)].data[layer];
    page[0].narrow(1, lo - i * P, hi - lo).copy_(scratch.k.narrow(1, lo, hi - lo));
    page[1].narrow(1, lo - i * P, hi - lo).copy_(scratch.v.narrow(1, lo, hi - lo));
  }
}

void KvCache::Commit(int64_t end) {
  length_ = end;
  pool_.Forget(this, end);
  const int64_t P = pool_.page_tokens();
  const size_t keep = static_cast<size_t>((end + P - 1) / P);
  while (pages_.size() > keep) {
    pool_.Give(std::move(pages_.back()));
    pages_.pop_back();
  }
}

}  // namespace strata
