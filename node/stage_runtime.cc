#include "node/stage_runtime.h"

#include <chrono>

namespace strata {

Result<LoadedShard> StageRuntime::Load(const std::string& model_dir, const ShardOptions& options) {
  sessions_.clear();  // the old shard's sessions and their KV go first
  {
    std::lock_guard<std::mutex> lock(swap_mu_);
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
  int64_t params = 0;
  for (int64_t l = options.first_layer; l < options.end_layer; ++l) params += checkpoint.value()->LayerParams(l);
  if (options.first_layer == 0) params += checkpoint.value()->EmbedParams();
  if (options.end_layer == c.num_layers) params += checkpoint.value()->HeadParams();
  // RoPE tables: cos and sin, [max_position, head_dim] f32 each.
  const uint64_t rope = 2ull * static_cast<uint64_t>(c.max_position) * static_cast<uint64_t>(c.head_dim) * 4;
  const uint64_t need = static_cast<uint64_t>(params) * ElementSize(options.dtype) + rope;
  auto charge = memory_.Charge(tier_, need, "shard [" + std::to_string(options.first_layer) + ", " +
                                                std::to_string(options.end_layer) + "): weights and RoPE tables");
  if (!charge.ok()) return charge.status();
  Result<std::unique_ptr<LlamaShard>> shard = Status::Error("load did not run");
  ShardOptions charged = options;  // its KV pages go to this node's accountant
  charged.memory = &memory_;
  charged.memory_tier = tier_;
  charged.swap_dir = kv_tiers_.swap_dir;
  charged.env = kv_tiers_.env;
  charged.kv_policy = kv_tiers_.policy;
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
    std::lock_guard<std::mutex> lock(swap_mu_);
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

Result<StepOutcome> StageRuntime::Step(uint64_t session, int64_t start_pos, const StageInput& input, bool sample) {
  if (!shard_) return Status::Error("no shard is loaded on this node");
  auto open = sessions_.find(session);
  if (open == sessions_.end()) return Status::Error("unknown session " + std::to_string(session));
  const auto t0 = std::chrono::steady_clock::now();
  steps_computed_.fetch_add(1, std::memory_order_relaxed);
  Result<StageOutput> output = Status::Error("forward did not run");
  try {
    output = shard_->Forward(session, start_pos, input);
  } catch (const std::exception& e) {  // LibTorch reports with exceptions; keep their first line
    std::string what = e.what();
    return Status::Error("forward failed: " + what.substr(0, what.find('\n')));
  }
  if (!output.ok()) return output.status();
  StepOutcome outcome;
  outcome.output = std::move(output.value());
  if (shard_->is_last() && sample) {
    outcome.token = open->second.sampler.Sample(outcome.output.logits);
  }
  outcome.micros = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
  return outcome;
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
    std::lock_guard<std::mutex> lock(swap_mu_);
    swap = swap_;
  }
  if (swap) swap->Prefetch(session);
}

SwapStats StageRuntime::swap_stats() const {
  std::lock_guard<std::mutex> lock(swap_mu_);
  return swap_ ? swap_->stats() : SwapStats{};
}

}  // namespace strata
