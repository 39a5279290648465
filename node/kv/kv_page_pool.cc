#include "node/kv/kv_page_pool.h"

#include <algorithm>
#include <string>

namespace strata {

KvPagePool::KvPagePool(MemoryAccountant& memory, MemoryTier tier, int64_t layers, int64_t kv_heads, int64_t head_dim,
                       const torch::TensorOptions& options, int64_t page_tokens, bool int8)
    : memory_(memory), tier_(tier), layers_(layers), kv_heads_(kv_heads), head_dim_(head_dim), options_(options),
      int8_(int8) {
  // Per token, per layer, K and V: head_dim values of each kv head, and for
  // int8 an f32 scale per group of channels.
  group_ = std::min<int64_t>(kInt8Group, head_dim);
  while (head_dim % group_ != 0) --group_;
  groups_ = head_dim / group_;
  const uint64_t per_head = int8 ? static_cast<uint64_t>(head_dim) + 4 * static_cast<uint64_t>(groups_)
                                 : static_cast<uint64_t>(head_dim) *
                                       torch::elementSize(torch::typeMetaToScalarType(options.dtype()));
  bytes_per_token_ = 2 * static_cast<uint64_t>(layers) * static_cast<uint64_t>(kv_heads) * per_head;
  page_tokens_ = page_tokens > 0 ? page_tokens
                                 : static_cast<int64_t>((kMinPageBytes + bytes_per_token_ - 1) / bytes_per_token_);
  page_bytes_ = static_cast<uint64_t>(page_tokens_) * bytes_per_token_;
  page_alloc_bytes_ = on_cpu() ? RoundUpToBlock(page_bytes_ + (int8_ ? 4 : 0)) : page_bytes_;  // int8: scales start 4-aligned
}

KvPagePool::Page KvPagePool::Adopt(PageMemory memory) const {
  Page page;
  page.memory = std::move(memory.bytes);
  page.charge = std::move(memory.charge);
  if (!int8_) {
    page.data = torch::from_blob(page.memory.get(), {layers_, 2, kv_heads_, page_tokens_, head_dim_}, options_);
    return page;
  }
  const int64_t values = layers_ * 2 * kv_heads_ * page_tokens_ * head_dim_;
  page.data = torch::from_blob(page.memory.get(), {layers_, 2, kv_heads_, page_tokens_, head_dim_},
                               options_.dtype(torch::kInt8));
  page.scales = torch::from_blob(page.memory.get() + (values + 3) / 4 * 4, {layers_, 2, kv_heads_, page_tokens_, groups_},
                                 options_.dtype(torch::kFloat32));
  return page;
}

Result<KvPagePool::Page> KvPagePool::Take() {
  if (!free_.empty()) {
    Page page = std::move(free_.back());
    free_.pop_back();
    return page;
  }
  auto charge = memory_.Charge(tier_, page_alloc_bytes_, "a KV page of " + std::to_string(page_tokens_) + " tokens");
  if (!charge.ok()) return charge.status();
  if (!on_cpu()) {
    Page page;
    page.data = torch::empty({layers_, 2, kv_heads_, page_tokens_, head_dim_},
                             int8_ ? options_.dtype(torch::kInt8) : options_);
    if (int8_) page.scales = torch::empty({layers_, 2, kv_heads_, page_tokens_, groups_}, options_.dtype(torch::kFloat32));
    page.charge = std::move(charge.value());
    return page;
  }
  AlignedBytes memory = AllocateAligned(page_alloc_bytes_);
  if (!memory) return Status::Error("out of host memory for a KV page");
  return Adopt(PageMemory{std::move(memory), std::move(charge.value())});
}

void KvPagePool::Give(Page page) {
  if (free_.size() < kMaxFreePages) free_.push_back(std::move(page));
  // Otherwise the page and its charge are released here.
}

int64_t KvPagePool::ScratchLength(int64_t session_capacity) {
  int64_t length = 64;
  while (length < session_capacity) length *= 2;
  return length;
}

Result<KvPagePool::Scratch*> KvPagePool::ScratchFor(int64_t session_capacity) {
  // Sessions share a scratch by their capacity rounded up to a power of two
  // (at least 64): a server's sessions each have their own capacity (prompt
  // plus max_tokens), and one scratch per capacity would be rebuilt at every
  // step of interleaved sessions. Attention reads the first S positions of
  // the scratch, so its length changes no bit of the result; a session's
  // length is the same on every node, so splits stay identical too.
  const int64_t capacity = ScratchLength(session_capacity);
  auto it = scratch_.find(capacity);
  if (it == scratch_.end()) {
    if (scratch_.size() >= kMaxScratches) scratch_.erase(scratch_.begin());
    const uint64_t scratch_bytes = 2 * static_cast<uint64_t>(layers_ * kv_heads_ * capacity * head_dim_) *
                                   torch::elementSize(torch::typeMetaToScalarType(options_.dtype()));
    auto charge = memory_.Charge(tier_, scratch_bytes,
                                 "attention scratch for " + std::to_string(capacity) + " positions");
    if (!charge.ok()) return charge.status();
    Scratch scratch;
    scratch.k = torch::zeros({layers_, kv_heads_, capacity, head_dim_}, options_);
    scratch.v = torch::zeros({layers_, kv_heads_, capacity, head_dim_}, options_);
    scratch.valid.resize(static_cast<size_t>(layers_));
    scratch.charge = std::move(charge.value());
    it = scratch_.emplace(capacity, std::move(scratch)).first;
  }
  return &it->second;
}

void KvPagePool::Forget(const void* owner, int64_t keep) {
  for (auto& [capacity, scratch] : scratch_) {
    for (Holder& h : scratch.valid) {
      if (h.owner == owner) h.positions = std::min(h.positions, keep);
      if (h.owner == owner && keep == 0) h.owner = nullptr;
    }
  }
}

}  // namespace strata
