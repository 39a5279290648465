#include "node/kv/kv_cache.h"

#include <cstring>
#include <string>

namespace strata {
namespace {

// INT8 pages. Each value of K and V is stored as int8 with an f32 scale per
// token, head and group of channels: scale = max|x| / 127 over the group.
// Per token rather than one scale for a page's whole run of tokens, so a
// page never needs requantising as it fills: what a position's keys become
// depends on that position alone — not on how the prompt was chunked, which
// other tokens share its page, or how the model is split across nodes.
//
// src: [kv_heads, n, head_dim] compute dtype; q: [kv_heads, n, head_dim]
// int8 and scales: [kv_heads, n, groups] f32 (page views). Returns the
// dequantised values, which replace src in the scratch: attention always
// sees exactly what the page holds.
torch::Tensor Quantize(const torch::Tensor& src, torch::Tensor q, torch::Tensor scales, int64_t group) {
  const int64_t kvh = src.size(0), n = src.size(1), hd = src.size(2);
  auto x = src.to(torch::kFloat32).reshape({kvh, n, hd / group, group});        // [kvh, n, groups, group]
  auto scale = x.abs().amax(-1, /*keepdim=*/true).div(127.0f);                   // [kvh, n, groups, 1]
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  auto qi = x.div(scale).round().clamp(-127, 127);                               // [kvh, n, groups, group]
  q.copy_(qi.reshape({kvh, n, hd}));
  scales.copy_(scale.squeeze(-1));
  return qi.mul(scale).reshape({kvh, n, hd}).to(src.scalar_type());
}

torch::Tensor Dequantize(const torch::Tensor& q, const torch::Tensor& scales, int64_t group, torch::ScalarType dtype) {
  const int64_t kvh = q.size(0), n = q.size(1), hd = q.size(2);
  auto x = q.to(torch::kFloat32).reshape({kvh, n, hd / group, group});
  return x.mul(scales.unsqueeze(-1)).reshape({kvh, n, hd}).to(dtype);
}

// Positions [at, at + n) of one layer's keys and values, between the page
// (from page_at) and the scratch, as plain copies: on the CPU, a LibTorch
// op per copy cost more than the bytes. False where either side is not
// plain CPU memory in the compute dtype (CUDA, INT8 pages).
bool CopyOnCpu(const KvPagePool::Page& p, int64_t layer, int64_t page_at, const LayerCache& scratch, int64_t at,
               int64_t n, bool to_page) {
  const torch::Tensor& d = p.data;  // [layers, 2, kv_heads, P, head_dim]
  const torch::Tensor& k = scratch.k;  // [kv_heads, capacity, head_dim]
  if (!d.is_cpu() || !k.is_cpu() || d.scalar_type() != k.scalar_type() || !d.is_contiguous() || d.dim() != 5 ||
      k.dim() != 3 || k.stride(2) != 1 || k.stride(1) != k.size(2) || scratch.v.strides() != k.strides() ||
      d.size(2) != k.size(0) || d.size(4) != k.size(2)) {
    return false;
  }
  const int64_t kvh = d.size(2), P = d.size(3), hd = d.size(4), elem = static_cast<int64_t>(d.element_size());
  auto* page = static_cast<uint8_t*>(d.data_ptr());
  for (int kv = 0; kv < 2; ++kv) {
    auto* base = static_cast<uint8_t*>((kv == 0 ? k : scratch.v).data_ptr());
    for (int64_t h = 0; h < kvh; ++h) {
      uint8_t* in_page = page + (((layer * 2 + kv) * kvh + h) * P + page_at) * hd * elem;
      uint8_t* in_scratch = base + (h * k.stride(0) + at * hd) * elem;
      if (to_page) {
        std::memcpy(in_page, in_scratch, static_cast<size_t>(n * hd * elem));
      } else {
        std::memcpy(in_scratch, in_page, static_cast<size_t>(n * hd * elem));
      }
    }
  }
  return true;
}

}  // namespace

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
    const KvPagePool::Page& p = pages_[static_cast<size_t>(i)];
    if (!pool_.int8() && CopyOnCpu(p, layer, lo - i * P, cache, lo, hi - lo, false)) continue;
    auto page = p.data[layer];  // [2, kv_heads, P, head_dim]
    if (pool_.int8()) {
      const auto dtype = cache.k.scalar_type();
      auto scales = p.scales[layer];  // [2, kv_heads, P, groups]
      cache.k.narrow(1, lo, hi - lo).copy_(Dequantize(page[0].narrow(1, lo - i * P, hi - lo),
                                                      scales[0].narrow(1, lo - i * P, hi - lo), pool_.group(), dtype));
      cache.v.narrow(1, lo, hi - lo).copy_(Dequantize(page[1].narrow(1, lo - i * P, hi - lo),
                                                      scales[1].narrow(1, lo - i * P, hi - lo), pool_.group(), dtype));
      continue;
    }
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
    const KvPagePool::Page& p = pages_[static_cast<size_t>(i)];
    if (!pool_.int8() && CopyOnCpu(p, layer, lo - i * P, scratch, lo, hi - lo, true)) continue;
    auto page = p.data[layer];
    if (pool_.int8()) {
      auto scales = p.scales[layer];
      for (int kv = 0; kv < 2; ++kv) {
        auto fresh = (kv == 0 ? scratch.k : scratch.v).narrow(1, lo, hi - lo);
        fresh.copy_(Quantize(fresh, page[kv].narrow(1, lo - i * P, hi - lo), scales[kv].narrow(1, lo - i * P, hi - lo),
                             pool_.group()));
      }
      continue;
    }
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
