#include "node/server/stage_runtime.h"

#include <chrono>

namespace strata {

// How many of a shard's layers stay in RAM when not all fit: what is left of
// the budget after the embeddings, head and RoPE tables, a ring of two
// layer slots for the streamed ones, and a tenth of the budget kept for KV
// pages. The rest stream from NVMe at every forward.
Result<int64_t> StageRuntime::PlanStreaming(uint64_t fixed, const std::vector<uint64_t>& layer_bytes, uint64_t free,
                                            uint64_t budget) {
  uint64_t largest = 0;
  for (uint64_t b : layer_bytes) largest = std::max(largest, b);
  const uint64_t ring = 2 * ((largest + 10 * 4096 + (1u << 20) - 1) >> 20 << 20);
  const uint64_t kv_reserve = budget / 10;
  if (fixed + ring + kv_reserve > free) {
    return Status::Error("the shard does not fit the node's ram budget even streaming its layers: embeddings, head "
                         "and RoPE tables take " + FormatBytes(fixed) + ", two layer slots " + FormatBytes(ring) +
                         " and KV room " + FormatBytes(kv_reserve) + ", and " + FormatBytes(free) + " is free");
  }
  uint64_t left = free - fixed - ring - kv_reserve;
  int64_t resident = 0;
  while (resident < static_cast<int64_t>(layer_bytes.size()) && layer_bytes[static_cast<size_t>(resident)] <= left) {
    left -= layer_bytes[static_cast<size_t>(resident)];
    ++resident;
  }
  return resident;
}

Result<LoadedShard> StageRuntime::Load(const std::string& model_dir, const ShardOptions& options) {
  sessions_.clear();  // the old shard's sessions and their KV go first
  {
    MutexLock lock(&swap_mu_);
    swap_.reset();
  }
  shard_.reset();
  weights_.Reset();
  auto checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  const ModelConfig& c = checkpoint.value()->config();
  if (options.first_layer < 0 || options.first_layer >= options.end_layer || options.end_layer > c.num_layers) {
    return Status::Error("bad layer range [" + std::to_string(options.first_layer) + ", " +
                         std::to_string(options.end_layer) + ") for a model of " + std::to_string(c.num_layers) + " layers");
  }
  // Check the budget before touching a weight (invariant 4: never over-commit).
  const Checkpoint& ckpt = *checkpoint.value();
  const uint64_t size = ElementSize(options.dtype);
  // RoPE tables: cos and sin, [max_position, head_dim] f32 each.
  const uint64_t rope = 2ull * static_cast<uint64_t>(c.max_position) * static_cast<uint64_t>(c.head_dim) * 4;
  uint64_t fixed = rope;  // what stays in RAM whatever is streamed
  if (options.first_layer == 0) fixed += ckpt.EmbedBytes(size);
  if (options.end_layer == c.num_layers) fixed += ckpt.HeadBytes(size);
  std::vector<uint64_t> layer_bytes;
  uint64_t need = fixed;
  for (int64_t l = options.first_layer; l < options.end_layer; ++l) {
    layer_bytes.push_back(ckpt.LayerBytes(l, size));
    need += layer_bytes.back();
  }
  ShardOptions charged = options;  // its KV pages go to this node's accountant
  const uint64_t free = memory_.free(tier_);
  if (need > free && !kv_tiers_.swap_dir.empty() && tier_ == MemoryTier::kRam) {
    auto plan = PlanStreaming(fixed, layer_bytes, free, memory_.budget(tier_));
    if (!plan.ok()) return plan.status();
    charged.resident_layers = plan.value();
    need = fixed;
    for (int64_t l = 0; l < plan.value(); ++l) need += layer_bytes[static_cast<size_t>(l)];
  }
  auto charge = memory_.Charge(tier_, need, "shard [" + std::to_string(options.first_layer) + ", " +
                                                std::to_string(options.end_layer) + "): weights and RoPE tables");
  if (!charge.ok()) {
    if (kv_tiers_.swap_dir.empty()) {
      return Status::Error(charge.status().message() + " (with --swap-dir, the layers that do not fit would stream from NVMe)");
    }
    return charge.status();
  }
  Result<std::unique_ptr<LlamaShard>> shard = Status::Error("load did not run");
  charged.memory = &memory_;
  charged.memory_tier = tier_;
  charged.swap_dir = kv_tiers_.swap_dir;
  charged.env = kv_tiers_.env;
  charged.kv_policy = kv_tiers_.policy;
  charged.kv_int8 = kv_tiers_.int8;
  try {
    shard = LlamaShard::Load(std::move(checkpoint.value()), charged);
  } catch (const std::exception& e) {
    std::string what = e.what();
    return Status::Error("loading the shard failed: " + what.substr(0, what.find('\n')));
  }
  if (!shard.ok()) return shard.status();
  shard_ = std::move(shard.value());
  weights_ = std::move(charge.value());
  {
    MutexLock lock(&swap_mu_);
    swap_ = shard_->swap();
  }
  LoadedShard info;
  info.model_dir = model_dir;
  info.first_layer = options.first_layer;
  info.end_layer = options.end_layer;
  info.num_layers = shard_->config().num_layers;
  info.weight_bytes = shard_->weight_bytes();
  info.context = shard_->config().max_position;
  info.vocab_size = shard_->config().vocab_size;
  info.hidden_size = shard_->config().hidden_size;
  info.dtype = options.dtype;
  return info;
}

Status StageRuntime::Open(uint64_t session, int64_t capacity, const SamplingOptions& sampling) {
  if (!shard_) return Status::Error("no shard is loaded on this node");
  Status st = Status::Ok();
  try {
    st = shard_->OpenSession(session, capacity);
  } catch (const std::exception& e) {
    return Status::Error(std::string("cannot allocate the KV cache: ") + e.what());
  }
  if (!st.ok()) return st;
  sessions_.emplace(session, OpenSession{Sampler(sampling)});
  return Status::Ok();
}

void StageRuntime::Close(uint64_t session) {
  if (shard_) shard_->CloseSession(session);
  sessions_.erase(session);
}

std::vector<Result<StepOutcome>> StageRuntime::StepBatch(const std::vector<const StageStep*>& steps) {
  std::vector<Result<StepOutcome>> outcomes(steps.size(), Result<StepOutcome>(Status::Error("not run")));
  if (!shard_) {
    for (auto& o : outcomes) o = Status::Error("no shard is loaded on this node");
    return outcomes;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<const StageStep*> forward;
  std::vector<size_t> index;  // forward[k] is steps[index[k]]
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!sessions_.count(steps[i]->session)) {
      outcomes[i] = Status::Error("unknown session " + std::to_string(steps[i]->session));
      continue;
    }
    forward.push_back(steps[i]);
    index.push_back(i);
  }
  if (forward.empty()) return outcomes;
  std::vector<Result<StageOutput>> outputs;
  try {
    // A lone step runs by itself: a prompt chunk of any length (a batch
    // member carries at most a few positions), the same bits either way.
    if (forward.size() == 1) outputs.push_back(shard_->Forward(*forward[0]));
    else outputs = shard_->ForwardBatch(forward);
  } catch (const std::exception& e) {  // LibTorch reports with exceptions; keep their first line
    std::string what = e.what();
    for (size_t i : index) outcomes[i] = Status::Error("forward failed: " + what.substr(0, what.find('\n')));
    return outcomes;
  }
  const uint64_t micros = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
  steps_computed_.fetch_add(forward.size(), std::memory_order_relaxed);
  compute_micros_.fetch_add(micros, std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  batch_rows_.fetch_add(forward.size(), std::memory_order_relaxed);
  for (size_t k = 0; k < outputs.size(); ++k) {
    const StageStep& step = *steps[index[k]];
    if (!outputs[k].ok()) {
      outcomes[index[k]] = outputs[k].status();
      continue;
    }
    StepOutcome outcome;
    outcome.output = std::move(outputs[k].value());
    if (shard_->is_last() && step.sample) {
      // The sampled token's position: right after the step's last one.
      const int64_t rows = step.input.positions();
      outcome.token = sessions_.at(step.session).sampler.Sample(outcome.output.logits,
                                                                 static_cast<uint64_t>(step.start + rows));
    }
    outcome.micros = micros;
    outcomes[index[k]] = std::move(outcome);
  }
  return outcomes;
}

}  // namespace strata

namespace strata {

Status StageRuntime::Park(uint64_t session) {
  if (!shard_ || !sessions_.count(session)) return Status::Ok();
  return shard_->ParkSession(session);
}

bool StageRuntime::OnDisk(uint64_t session) const { return shard_ && shard_->SessionOnDisk(session); }

Result<int64_t> StageRuntime::Length(uint64_t session) const {
  if (!shard_) return Status::Error("no shard is loaded on this node");
  return shard_->SessionLength(session);
}

void StageRuntime::Prefetch(uint64_t session) {
  std::shared_ptr<KvSwapSpace> swap;
  {
    MutexLock lock(&swap_mu_);
    swap = swap_;
  }
  if (swap) swap->Prefetch(session);
}

SwapStats StageRuntime::swap_stats() const {
  MutexLock lock(&swap_mu_);
  return swap_ ? swap_->stats() : SwapStats{};
}

}  // namespace strata
