// LlamaShard::ForwardBatch: one decode position of several sessions in one
// pass over the weights (continuous batching). Every piece is the single
// forward's own (Embed, LayerAt, Attend, Output), and the projections go
// through LinearRows, whose rows equal Linear's: a session's logits are the
// same bit for bit whether it runs alone or in any batch.
#include <torch/torch.h>

#include <set>
#include <stdexcept>

#include "node/llama_shard_impl.h"

namespace strata {
namespace {

// A Gather that fails mid-layer fails the whole batch: thrown out of the
// attention callback, caught by ForwardBatch.
struct GatherFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

std::vector<Result<StageOutput>> LlamaShard::ForwardBatch(const std::vector<BatchStep>& steps) {
  Impl& m = *impl_;
  std::vector<Result<StageOutput>> results(steps.size(), Result<StageOutput>(Status::Error("not run")));
  torch::NoGradGuard no_grad;
  // Every check and every KV page first, per step: a step that fails them
  // fails alone. live[k] is the step whose row k is.
  std::vector<size_t> live;
  std::vector<KvCache*> caches;     // [live]
  std::vector<torch::Tensor> rows;  // [live] x [1, hidden]
  std::set<uint64_t> seen;
  for (size_t i = 0; i < steps.size(); ++i) {
    const BatchStep& s = steps[i];
    if (s.input == nullptr || InputRows(*s.input) != 1) {
      results[i] = Status::Error("a batched step carries exactly one position");
      continue;
    }
    if (!seen.insert(s.session).second) {
      results[i] = Status::Error("session " + std::to_string(s.session) + " appears twice in one batch");
      continue;
    }
    auto acquired = m.kv->Acquire(s.session, s.start_pos, 1);
    if (!acquired.ok()) {
      results[i] = acquired.status();
      continue;
    }
    auto embedded = m.Embed(*s.input);
    if (!embedded.ok()) {
      results[i] = embedded.status();
      continue;
    }
    live.push_back(i);
    caches.push_back(acquired.value());
    rows.push_back(embedded.value());
  }
  // Making room for a later row may have swapped an earlier one out to NVMe:
  // those run alone afterwards (correct, only slower; it needs RAM pressure).
  std::vector<size_t> alone;
  for (size_t k = 0; k < live.size();) {
    if (!caches[k]->on_disk()) {
      ++k;
      continue;
    }
    alone.push_back(live[k]);
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    caches.erase(caches.begin() + static_cast<std::ptrdiff_t>(k));
    rows.erase(rows.begin() + static_cast<std::ptrdiff_t>(k));
  }
  if (!live.empty()) {
    Status st = m.RunRows(steps, live, caches, torch::cat(rows, 0).unsqueeze(1), &results);
    if (!st.ok()) {
      for (size_t i : live) results[i] = st;
    }
  }
  for (size_t i : alone) results[i] = Forward(steps[i].session, steps[i].start_pos, *steps[i].input);
  return results;
}

Status LlamaShard::Impl::RunRows(const std::vector<BatchStep>& steps, const std::vector<size_t>& live,
                           const std::vector<KvCache*>& caches, torch::Tensor x,
                                 std::vector<Result<StageOutput>>* results) {
  Impl& m = *this;
  const int64_t B = static_cast<int64_t>(live.size());
  std::vector<torch::Tensor> cos(live.size()), sin(live.size());  // [live] x [1, hd]
  for (size_t k = 0; k < live.size(); ++k) {
    cos[k] = m.rope_cos.narrow(0, steps[live[k]].start_pos, 1);
    sin[k] = m.rope_sin.narrow(0, steps[live[k]].start_pos, 1);
  }
  const int64_t count = m.options.end_layer - m.options.first_layer;
  try {
    for (int64_t l = 0; l < count; ++l) {
      auto w = m.LayerAt(l);
      if (!w.ok()) return w.status();
      // x: [B, 1, hidden]. Each session attends over its own cache, gathered
      // into the pool's scratch and written back, one after another.
      x = LayerForwardRows(m.dims, *w.value(), x, [&](int64_t k, const torch::Tensor& qkv) {
        const int64_t start = steps[live[static_cast<size_t>(k)]].start_pos;
        KvCache& kv = *caches[static_cast<size_t>(k)];
        auto cache = kv.Gather(l, start);
        if (!cache.ok()) throw GatherFailed(cache.status().message());
        auto out = Attend(m.dims, qkv, start, cos[static_cast<size_t>(k)], sin[static_cast<size_t>(k)],
                          &cache.value());
        kv.Scatter(l, cache.value(), start, start + 1);
        return out;
      });
    }
  } catch (const GatherFailed& e) {
    return Status::Error(e.what());
  }
  if (m.stream) m.PrefetchNextForward();
  for (size_t k = 0; k < live.size(); ++k) caches[k]->Commit(steps[live[k]].start_pos + 1);
  x = x.squeeze(1);  // [B, hidden]
  if (options.end_layer != config.num_layers) {
    for (int64_t k = 0; k < B; ++k) (*results)[live[static_cast<size_t>(k)]] = m.Output(x.narrow(0, k, 1));
    return Status::Ok();
  }
  // The last stage: the final norm and the LM head for the batch at once.
  auto h = RmsNorm(x, m.final_norm, m.config.rms_norm_eps);                                         // [B, hidden]
  auto logits = LinearRows(h, m.lm_head, torch::Tensor()).to(torch::kCPU, torch::kFloat32).contiguous();  // [B, vocab]
  const int64_t vocab = logits.size(1);
  for (int64_t k = 0; k < B; ++k) {
    StageOutput out;
    const float* row = logits.data_ptr<float>() + k * vocab;
    out.logits.assign(row, row + vocab);
    (*results)[live[static_cast<size_t>(k)]] = std::move(out);
  }
  return Status::Ok();
}

}  // namespace strata
