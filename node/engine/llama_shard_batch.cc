// LlamaShard::ForwardBatch: decode steps and short prompt chunks of several
// sessions in one pass over the weights (continuous batching). Every piece
// is the single forward's own (Embed, LayerAt, Attend, Output), and the
// projections go through LinearRows, whose rows equal Linear's: a session's
// logits are the same bit for bit whether it runs alone or in any batch.
#include <torch/torch.h>

#include <set>
#include <stdexcept>

#include "node/engine/llama_shard_impl.h"

namespace strata {
namespace {

// A Gather that fails mid-layer fails the whole batch: thrown out of the
// attention callback, caught by ForwardBatch.
struct GatherFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

std::vector<Result<StageOutput>> LlamaShard::ForwardBatch(const std::vector<const StageStep*>& steps) {
  Impl& m = *impl_;
  std::vector<Result<StageOutput>> results(steps.size(), Result<StageOutput>(Status::Error("not run")));
  c10::InferenceMode inference;  // no autograd bookkeeping on views and new tensors
  // Every check and every KV page first, per step: a step that fails them
  // fails alone. live[k] is the step whose row k is.
  std::vector<size_t> live;
  std::vector<KvCache*> caches;     // [live]
  std::vector<torch::Tensor> rows;  // [live] x [T, hidden]
  std::vector<size_t> alone;        // run by Forward afterwards
  std::set<uint64_t> seen;
  // A chunk of several positions may join only where every row's result is
  // its own (the BF16 kernels); elsewhere it runs alone, exactly as ever.
  const int64_t most = m.layers.empty() || !KernelRowsExact(m.layers[0].wqkv) ? 1 : kMaxKernelRows;
  for (size_t i = 0; i < steps.size(); ++i) {
    const StageStep& s = *steps[i];
    const int64_t n = s.input.positions();
    if (n < 1 || n > kMaxKernelRows) {
      results[i] = Status::Error("a batched step carries 1 to " + std::to_string(kMaxKernelRows) + " positions");
      continue;
    }
    if (n > most) {
      if (seen.insert(s.session).second) alone.push_back(i);
      else results[i] = Status::Error("session " + std::to_string(s.session) + " appears twice in one batch");
      continue;
    }
    if (!seen.insert(s.session).second) {
      results[i] = Status::Error("session " + std::to_string(s.session) + " appears twice in one batch");
      continue;
    }
    auto acquired = m.kv->Acquire(s.session, s.start, n);
    if (!acquired.ok()) {
      results[i] = acquired.status();
      continue;
    }
    auto embedded = m.Embed(s.input);
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
    Status st = m.RunRows(steps, live, caches, torch::cat(rows, 0).unsqueeze(1), &results);  // [R, 1, hidden]
    if (!st.ok()) {
      for (size_t i : live) results[i] = st;
    }
  }
  for (size_t i : alone) results[i] = Forward(*steps[i]);
  return results;
}

Status LlamaShard::Impl::RunRows(const std::vector<const StageStep*>& steps, const std::vector<size_t>& live,
                                 const std::vector<KvCache*>& caches, torch::Tensor x,
                                 std::vector<Result<StageOutput>>* results) {
  Impl& m = *this;
  const size_t K = live.size();
  std::vector<int64_t> offsets(K + 1, 0);                   // session k's rows: [offsets[k], offsets[k+1])
  for (size_t k = 0; k < K; ++k) offsets[k + 1] = offsets[k] + steps[live[k]]->input.positions();
  const int64_t count = m.options.end_layer - m.options.first_layer;
  try {
    for (int64_t l = 0; l < count; ++l) {
      auto w = m.LayerAt(l);
      if (!w.ok()) return w.status();
      // Each session attends over its own cache, gathered into the pool's
      // scratch and written back, one after another.
      const auto with_cache = [&](int64_t k, int64_t T, const auto& attend) {
        const int64_t start = steps[live[static_cast<size_t>(k)]]->start;
        KvCache& kv = *caches[static_cast<size_t>(k)];
        auto cache = kv.Gather(l, start);
        if (!cache.ok()) throw GatherFailed(cache.status().message());
        attend(start, &cache.value());
        kv.Scatter(l, cache.value(), start, start + T);
      };
      auto rows = x.view({x.size(0), x.size(2)});  // [R, hidden]
      if (LayerRunsOnCpu(*w.value(), rows)) {
        LayerForwardCpu(m.dims, *w.value(), rows, offsets, [&](int64_t k, const void* qkv, int64_t T, void* out) {
          with_cache(k, T, [&](int64_t start, LayerCache* cache) {
            AttendRows(m.dims, qkv, T, start, m.rope_cos, m.rope_sin, cache, out, x.scalar_type());
          });
        });
        continue;
      }
      // x: [R, 1, hidden].
      x = LayerForwardRows(m.dims, *w.value(), x, offsets, [&](int64_t k, const torch::Tensor& qkv) {
        const int64_t T = qkv.size(1);
        torch::Tensor out;  // [1, T, nh*hd]
        with_cache(k, T, [&](int64_t start, LayerCache* cache) {
          out = Attend(m.dims, qkv, start, m.rope_cos.narrow(0, start, T), m.rope_sin.narrow(0, start, T), cache);
        });
        return out;
      });
    }
  } catch (const GatherFailed& e) {
    return Status::Error(e.what());
  }
  if (m.stream) m.PrefetchNextForward();
  for (size_t k = 0; k < K; ++k) caches[k]->Commit(steps[live[k]]->start + (offsets[k + 1] - offsets[k]));
  x = x.squeeze(1);  // [R, hidden]
  if (options.end_layer != config.num_layers) {
    for (size_t k = 0; k < K; ++k) (*results)[live[k]] = m.Output(x.narrow(0, offsets[k], offsets[k + 1] - offsets[k]));
    return Status::Ok();
  }
  // The last stage: the final norm and the LM head at each session's last
  // position, for the batch at once.
  std::vector<torch::Tensor> last;  // [K] x [1, hidden]
  for (size_t k = 0; k < K; ++k) last.push_back(x.narrow(0, offsets[k + 1] - 1, 1));
  auto h = RmsNorm(torch::cat(last, 0), m.final_norm, m.config.rms_norm_eps);                        // [K, hidden]
  auto logits = LinearRows(h, m.lm_head, torch::Tensor()).to(torch::kCPU, torch::kFloat32).contiguous();  // [K, vocab]
  const int64_t vocab = logits.size(1);
  for (size_t k = 0; k < K; ++k) {
    StageOutput out;
    const float* row = logits.data_ptr<float>() + static_cast<int64_t>(k) * vocab;
    out.logits.assign(row, row + vocab);
    (*results)[live[k]] = std::move(out);
  }
  return Status::Ok();
}

}  // namespace strata
