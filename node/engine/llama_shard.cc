// A shard of a Llama model in LibTorch: weights, KV caches, and the forward
// over its layers (the layer math is node/llama_layers). The residual stream
// stays in the compute dtype, so a stage boundary (which carries that stream)
// changes nothing: splitting the model is bit-identical to running it whole.
#include "node/engine/llama_shard.h"

#include <torch/torch.h>

#include "node/engine/llama_shard_impl.h"

#include <sys/mman.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>

namespace strata {
namespace {

torch::ScalarType ToTorch(TensorDType dtype) {
  switch (dtype) {
    case TensorDType::kF32: return torch::kFloat32;
    case TensorDType::kBF16: return torch::kBFloat16;
    case TensorDType::kF16: return torch::kFloat16;
  }
  return torch::kFloat32;
}

Result<torch::ScalarType> FileDType(const TensorView& view) {
  switch (view.dtype) {
    case DType::kF32: return torch::kFloat32;
    case DType::kBF16: return torch::kBFloat16;
    case DType::kF16: return torch::kFloat16;
    default: return Status::Error("tensor '" + view.name + "' has dtype " + DTypeString(view.dtype) +
                                  "; weights must be F32, F16 or BF16");
  }
}


// GGUF's llama q_proj/k_proj rows in Hugging Face's rotate-half order:
// within each of `heads` heads, row 2i + p goes to p * head_dim / 2 + i.
// Whole rows move, so a block-format row ([rows, row bytes] uint8) moves
// the same way. heads == 0: as they are.
torch::Tensor RotateHalfRows(const torch::Tensor& t, int64_t heads) {
  if (heads <= 0) return t;
  const int64_t rows = t.size(0), half = rows / heads / 2;
  return t.reshape({heads, half, 2, t.size(1)}).transpose(1, 2).reshape({rows, t.size(1)});
}

// Large tensors get transparent huge pages (THP is often "madvise" only).
void AdviseHugePages(void* data, size_t nbytes) {
  constexpr uintptr_t kHuge = 2u << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + nbytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// Every tensor of a layer, in one order, so that a streamed layer's layout
// can be recorded once and laid over any slot.
std::vector<torch::Tensor*> Fields(LayerWeights& w) {
  return {&w.attn_norm, &w.ffn_norm, &w.wqkv.t, &w.bqkv, &w.wo.t, &w.bo, &w.w_gate_up.t, &w.b_gate_up, &w.w_down.t, &w.b_down,
          &w.q_norm, &w.k_norm};
}
constexpr uint64_t kFieldAlign = 4096;  // each tensor of a streamed layer starts on a block

}  // namespace


Status LlamaShard::Impl::CopyInto(const std::string& name, const std::vector<int64_t>& expect, torch::Tensor dst) {
  auto found = checkpoint->Find(name);
  if (!found.ok()) return found.status();
  const TensorView& view = *found.value();
  if (view.shape != expect) {
    std::string got, want;
    for (int64_t d : view.shape) got += (got.empty() ? "" : "x") + std::to_string(d);
    for (int64_t d : expect) want += (want.empty() ? "" : "x") + std::to_string(d);
    return Status::Error("tensor '" + name + "' in " + checkpoint->dir() + " has shape [" + got +
                         "], config.json implies [" + want + "]");
  }
  auto file_dtype = FileDType(view);
  if (!file_dtype.ok()) return file_dtype.status();
  Status populated = checkpoint->Populate(view);
  if (!populated.ok()) return populated;
  auto src = torch::from_blob(const_cast<uint8_t*>(view.data), view.shape,
                              torch::TensorOptions().dtype(file_dtype.value()));
  dst.copy_(RotateHalfRows(src, view.interleaved_rope_heads));
  checkpoint->Release(view);
  weight_bytes += static_cast<uint64_t>(view.numel()) * torch::elementSize(dtype);
  return Status::Ok();
}

// Weights are copied into memory the shard owns rather than used in place
// from the mapping: page-cache pages are 4 KiB, and streaming gigabytes
// through them per token is TLB-bound (measured: ~2x slower decode than
// huge-page-backed anonymous memory). The mapping's pages are dropped after
// the copy, so resident memory stays at the shard's bytes.
torch::Tensor LlamaShard::Impl::Allocate(const std::vector<int64_t>& shape) const {
  if (place_base != nullptr) {  // a streamed layer, laid out in its slot
    auto* self = const_cast<Impl*>(this);
    auto view = torch::from_blob(place_base + place_cursor, shape, torch::TensorOptions().dtype(dtype));
    self->place_cursor += (view.nbytes() + kFieldAlign - 1) / kFieldAlign * kFieldAlign;
    return view;
  }
  auto owned = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  AdviseHugePages(owned.data_ptr(), owned.nbytes());
  return owned;
}

torch::Tensor LlamaShard::Impl::Place(torch::Tensor owned) const {
  return device.is_cpu() ? owned : owned.to(device);
}

Result<torch::Tensor> LlamaShard::Impl::LoadTensor(const std::string& name, const std::vector<int64_t>& expect) {
  auto owned = Allocate(expect);
  Status st = CopyInto(name, expect, owned);
  if (!st.ok()) return st;
  return Place(owned);
}

// Several [rows_i, cols] tensors (or [rows_i] when cols == 0) stacked along
// the first dimension into one; an empty result when `present` is false.
Result<torch::Tensor> LlamaShard::Impl::LoadStacked(const std::vector<std::pair<std::string, int64_t>>& parts,
                                                    int64_t cols, bool present) {
  if (!present) return torch::Tensor();
  int64_t rows = 0;
  for (const auto& p : parts) rows += p.second;
  auto owned = Allocate(cols > 0 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows});
  int64_t at = 0;
  for (const auto& [name, n] : parts) {
    Status st = CopyInto(name, cols > 0 ? std::vector<int64_t>{n, cols} : std::vector<int64_t>{n}, owned.narrow(0, at, n));
    if (!st.ok()) return st;
    at += n;
  }
  return Place(owned);
}

Result<WeightRows> LlamaShard::Impl::LoadRows(const TensorView& view, int64_t row0, int64_t rows, int64_t cols) {
  if (view.shape != std::vector<int64_t>{rows, cols}) {
    return Status::Error("tensor '" + view.name + "' in " + checkpoint->dir() + " has the wrong shape for the config (want [" +
                         std::to_string(rows) + ", " + std::to_string(cols) + "])");
  }
  if (place_base != nullptr) {
    return Status::Error("tensor '" + view.name + "' is " + DTypeString(view.dtype) +
                         ": layers streamed from NVMe must be F32 or BF16 (give the node more memory for this model)");
  }
  WeightRows out;
  out.row0 = row0;
  out.rows = rows;
  if (!WeightTypeOf(view.dtype, &out.type) || !IsQuantized(out.type)) {
    // A plain tensor beside block-format ones in one matrix: its rows in f32.
    out.type = WeightType::kF32;
    auto f32 = torch::empty({rows, cols}, torch::kFloat32);
    Status st = CopyInto(view.name, {rows, cols}, f32);
    if (!st.ok()) return st;
    out.bytes = f32.view(torch::kUInt8).view({rows, cols * 4});
    return out;
  }
  Status populated = checkpoint->Populate(view);
  if (!populated.ok()) return populated;
  const int64_t row_bytes = static_cast<int64_t>(RowBytes(out.type, cols));
  auto src = torch::from_blob(const_cast<uint8_t*>(view.data), {rows, row_bytes}, torch::kUInt8);
  out.bytes = torch::empty({rows, row_bytes}, torch::kUInt8);
  AdviseHugePages(out.bytes.data_ptr(), out.bytes.nbytes());
  out.bytes.copy_(RotateHalfRows(src, view.interleaved_rope_heads));
  checkpoint->Release(view);
  weight_bytes += view.nbytes;
  return out;
}

Result<Weight> LlamaShard::Impl::LoadMatrix(const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols) {
  std::vector<const TensorView*> views;
  bool blocks = false;
  for (const auto& [name, n] : parts) {
    auto found = checkpoint->Find(name);
    if (!found.ok()) return found.status();
    views.push_back(found.value());
    blocks = blocks || IsBlockDType(found.value()->dtype);
  }
  if (!blocks) {
    if (parts.size() == 1) {
      auto t = LoadTensor(parts[0].first, {parts[0].second, cols});
      if (!t.ok()) return t.status();
      return Weight(t.value());
    }
    auto stacked = LoadStacked(parts, cols, true);
    if (!stacked.ok()) return stacked.status();
    return Weight(stacked.value());
  }
  if (!device.is_cpu()) return Status::Error("quantized weights (" + parts[0].first + ") run on CPU only");
  Weight w;
  w.cols = cols;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto rows = LoadRows(*views[i], w.rows, parts[i].second, cols);
    if (!rows.ok()) return rows.status();
    w.rows += parts[i].second;
    w.parts.push_back(std::move(rows.value()));
  }
  return w;
}

Result<torch::Tensor> LlamaShard::Impl::LoadOptional(const std::string& name, bool present,
                                                     const std::vector<int64_t>& expect) {
  if (!present) return torch::Tensor();
  return LoadTensor(name, expect);
}

#define STRATA_ASSIGN(lhs, expr)          \
  do {                                    \
    auto _r = (expr);                     \
    if (!_r.ok()) return _r.status();     \
    lhs = std::move(_r.value());          \
  } while (0)

Status LlamaShard::Impl::LoadWeights() {
  const ModelConfig& c = config;
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  if (options.first_layer == 0) STRATA_ASSIGN(embed, LoadMatrix({{kEmbedName, c.vocab_size}}, H));
  for (int64_t i = options.first_layer; i < options.end_layer; ++i) {
    const int64_t j = i - options.first_layer - resident;  // >= 0: streamed layer j
    if (j >= 0) {
      place_base = stream->slot(0);
      place_cursor = 0;
    }
    LayerWeights w;
    auto name = [i](const char* suffix) { return LayerTensorName(i, suffix); };
    STRATA_ASSIGN(w.attn_norm, LoadTensor(name("input_layernorm.weight"), {H}));
    STRATA_ASSIGN(w.ffn_norm, LoadTensor(name("post_attention_layernorm.weight"), {H}));
    STRATA_ASSIGN(w.wqkv, LoadMatrix({{name("self_attn.q_proj.weight"), q_dim},
                                      {name("self_attn.k_proj.weight"), kv_dim},
                                      {name("self_attn.v_proj.weight"), kv_dim}}, H));
    STRATA_ASSIGN(w.wo, LoadMatrix({{name("self_attn.o_proj.weight"), H}}, q_dim));
    STRATA_ASSIGN(w.bqkv, LoadStacked({{name("self_attn.q_proj.bias"), q_dim},
                                       {name("self_attn.k_proj.bias"), kv_dim},
                                       {name("self_attn.v_proj.bias"), kv_dim}}, 0, c.qkv_bias));
    STRATA_ASSIGN(w.bo, LoadOptional(name("self_attn.o_proj.bias"), c.o_bias, {H}));
    STRATA_ASSIGN(w.q_norm, LoadOptional(name("self_attn.q_norm.weight"), c.qk_norm, {c.head_dim}));
    STRATA_ASSIGN(w.k_norm, LoadOptional(name("self_attn.k_norm.weight"), c.qk_norm, {c.head_dim}));
    STRATA_ASSIGN(w.w_gate_up, LoadMatrix({{name("mlp.gate_proj.weight"), I}, {name("mlp.up_proj.weight"), I}}, H));
    STRATA_ASSIGN(w.w_down, LoadMatrix({{name("mlp.down_proj.weight"), H}}, I));
    STRATA_ASSIGN(w.b_gate_up, LoadStacked({{name("mlp.gate_proj.bias"), I}, {name("mlp.up_proj.bias"), I}}, 0, c.mlp_bias));
    STRATA_ASSIGN(w.b_down, LoadOptional(name("mlp.down_proj.bias"), c.mlp_bias, {H}));
    if (j < 0) {
      layers.push_back(std::move(w));
      continue;
    }
    place_base = nullptr;
    if (layout.empty()) {
      for (torch::Tensor* t : Fields(w)) {
        Field f;
        f.defined = t->defined();
        if (f.defined) {
          f.offset = static_cast<uint64_t>(static_cast<uint8_t*>(t->data_ptr()) - stream->slot(0));
          f.shape = t->sizes().vec();
        }
        layout.push_back(f);
      }
    }
    Status stored = stream->Store(j, 0);
    if (!stored.ok()) return stored;
  }
  if (options.end_layer == c.num_layers) {
    STRATA_ASSIGN(final_norm, LoadTensor(kFinalNormName, {H}));
    if (c.tie_word_embeddings && embed.defined()) {
      lm_head = embed;  // one copy serves both ends of a single-stage model
    } else {
      STRATA_ASSIGN(lm_head, LoadMatrix({{c.tie_word_embeddings ? kEmbedName : kLmHeadName, c.vocab_size}}, H));
    }
  }
  return Status::Ok();
}

Status LlamaShard::Impl::OpenStream(uint64_t layer_bytes) {
  LayerStreamOptions o;
  o.dir = options.swap_dir;
  o.layer_bytes = layer_bytes;
  o.layers = options.end_layer - options.first_layer - resident;
  o.thread_pool_io = options.swap_thread_pool_io;
  std::string note;
  auto opened = LayerStream::Open(*options.env, *options.memory, options.memory_tier, o, &note);
  if (!opened.ok()) return opened.status();
  if (!note.empty()) spdlog::warn("layer stream: {}", note);
  stream = std::move(opened.value());
  return Status::Ok();
}

void LlamaShard::Impl::PrefetchNextForward() {
  const int64_t n = options.end_layer - options.first_layer - resident;
  for (int64_t j = 0; j < std::min<int64_t>(n, stream->slots()); ++j) {
    const int s = static_cast<int>(j % stream->slots());
    if (stream->layer_in(s) != j) stream->Fetch(j, s);
  }
}

Result<const LayerWeights*> LlamaShard::Impl::StreamIn(int64_t j) {
  const int64_t n = options.end_layer - options.first_layer - resident;
  const int s = static_cast<int>(j % stream->slots());
  if (stream->layer_in(s) != j) stream->Fetch(j, s);
  Status st = stream->Wait(s);
  if (!st.ok()) {
    // The read may have been issued long before (a prefetch at the end of
    // the last forward, perhaps while the disk was failing): read once more
    // now, and report only a failure of this fresh read.
    stream->Fetch(j, s);
    st = stream->Wait(s);
  }
  if (!st.ok()) return st;
  // Layer j+1 streams in while j computes (its slot's layer, j-1, is done).
  if (j + 1 < n) {
    const int next = static_cast<int>((j + 1) % stream->slots());
    if (stream->layer_in(next) != j + 1) stream->Fetch(j + 1, next);
  }
  return &slot_weights[static_cast<size_t>(s)];
}

void LlamaShard::Impl::BuildRope() {
  RopeTables(config.head_dim, config.rope_theta, config.max_position, &rope_cos, &rope_sin, config.rope_freq_factors);
  rope_cos = rope_cos.to(device);
  rope_sin = rope_sin.to(device);
}

// Each slot of the layer stream seen as a layer's weights (views into the
// slot's bytes), and the first streamed layers' read started.
void LlamaShard::Impl::MapStreamSlots() {
  for (int s = 0; s < stream->slots(); ++s) {
    LayerWeights views;
    auto fields = Fields(views);
    for (size_t k = 0; k < fields.size(); ++k) {
      const Field& f = layout[k];
      if (f.defined) *fields[k] = torch::from_blob(stream->slot(s) + f.offset, f.shape, torch::TensorOptions().dtype(dtype));
    }
    slot_weights.push_back(std::move(views));
  }
  PrefetchNextForward();
  spdlog::info("layers [{}, {}) in RAM, [{}, {}) streamed from NVMe through {} ({} MiB a layer, {} slots)",
               options.first_layer, options.first_layer + resident, options.first_layer + resident, options.end_layer,
               stream->io_kind(), stream->slot_bytes() >> 20, stream->slots());
}

// The KV pages of the shard's layers, charged to its memory tier.
Status LlamaShard::Impl::MakeKvStore() {
  KvStoreOptions kv;
  kv.memory = options.memory;
  kv.tier = options.memory_tier;
  kv.layers = options.end_layer - options.first_layer;
  kv.kv_heads = config.num_kv_heads;
  kv.head_dim = config.head_dim;
  kv.options = torch::TensorOptions().dtype(dtype).device(device);
  kv.page_tokens = options.kv_page_tokens;
  kv.int8 = options.kv_int8;
  kv.swap_dir = options.swap_dir;
  kv.env = options.env;
  kv.thread_pool_io = options.swap_thread_pool_io;
  kv.policy = options.kv_policy;
  auto store = KvStore::Create(kv);
  if (!store.ok()) return store.status();
  this->kv = std::move(store.value());
  return Status::Ok();
}

LlamaShard::LlamaShard(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaShard::~LlamaShard() = default;

Result<std::unique_ptr<LlamaShard>> LlamaShard::Load(std::unique_ptr<Checkpoint> checkpoint,
                                                     const ShardOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->config = checkpoint->config();
  impl->options = options;
  const ModelConfig& c = impl->config;
  if (options.first_layer < 0 || options.first_layer >= options.end_layer || options.end_layer > c.num_layers) {
    return Status::Error("bad layer range [" + std::to_string(options.first_layer) + ", " +
                         std::to_string(options.end_layer) + ") for a model of " + std::to_string(c.num_layers) +
                         " layers");
  }
  try {
    impl->device = torch::Device(options.device);
  } catch (const std::exception&) {
    return Status::Error("unknown device '" + options.device + "'");
  }
  if (impl->device.is_cuda() && !torch::cuda::is_available()) {
    return Status::Error("device " + options.device + " requested but this LibTorch build sees no CUDA device");
  }
  if (options.dtype == TensorDType::kF16 && impl->device.is_cpu()) {
    return Status::Error("f16 compute is for CUDA; use f32 or bf16 on CPU");
  }
  impl->dtype = ToTorch(options.dtype);
  impl->dims = LlamaDims{c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size, c.rms_norm_eps};
  MemoryAccountant* memory = options.memory;
  if (memory == nullptr) {
    TierBudgets unlimited;
    for (uint64_t& b : unlimited.bytes) b = ~0ull >> 1;
    impl->own_memory = std::make_unique<MemoryAccountant>(unlimited);
    memory = impl->own_memory.get();
    impl->options.memory = memory;
  }
  const int64_t count = options.end_layer - options.first_layer;
  impl->resident = options.resident_layers < 0 ? count : std::min(options.resident_layers, count);
  if (impl->resident < count) {
    if (!impl->device.is_cpu() || options.swap_dir.empty() || options.env == nullptr) {
      return Status::Error("streaming layers needs a CPU node with a swap directory (--swap-dir)");
    }
    uint64_t layer_bytes = 0;  // the largest streamed layer, each tensor on its own block
    for (int64_t i = options.first_layer + impl->resident; i < options.end_layer; ++i) {
      layer_bytes = std::max<uint64_t>(layer_bytes, checkpoint->LayerBytes(i, torch::elementSize(impl->dtype)) +
                                                        10 * kFieldAlign);
    }
    Status opened = impl->OpenStream(layer_bytes);
    if (!opened.ok()) return opened;
  }
  impl->checkpoint = std::move(checkpoint);
  torch::NoGradGuard no_grad;
  Status st = impl->LoadWeights();
  if (!st.ok()) return st;
  impl->BuildRope();
  if (impl->stream) impl->MapStreamSlots();
  st = impl->MakeKvStore();
  if (!st.ok()) return st;
  return std::unique_ptr<LlamaShard>(new LlamaShard(std::move(impl)));
}

const ModelConfig& LlamaShard::config() const { return impl_->config; }
const ShardOptions& LlamaShard::options() const { return impl_->options; }
bool LlamaShard::is_first() const { return impl_->options.first_layer == 0; }
bool LlamaShard::is_last() const { return impl_->options.end_layer == impl_->config.num_layers; }
uint64_t LlamaShard::weight_bytes() const { return impl_->weight_bytes; }

uint64_t LlamaShard::kv_bytes_per_token() const { return impl_->kv->bytes_per_token(); }

Status LlamaShard::OpenSession(uint64_t id, int64_t capacity) {
  const ModelConfig& c = impl_->config;
  if (capacity <= 0 || capacity > c.max_position) {
    return Status::Error("session capacity " + std::to_string(capacity) + " is outside 1.." +
                         std::to_string(c.max_position) + " (the model's context)");
  }
  return impl_->kv->Open(id, capacity);
}

void LlamaShard::CloseSession(uint64_t id) { impl_->kv->Close(id); }
size_t LlamaShard::session_count() const { return impl_->kv->count(); }
Status LlamaShard::ParkSession(uint64_t id) { return impl_->kv->Park(id); }
bool LlamaShard::SessionOnDisk(uint64_t id) const { return impl_->kv->OnDisk(id); }
Result<int64_t> LlamaShard::SessionLength(uint64_t id) const { return impl_->kv->Length(id); }
std::shared_ptr<KvSwapSpace> LlamaShard::swap() const { return impl_->kv->swap(); }

Result<torch::Tensor> LlamaShard::Impl::Embed(const StageInput& input) const {
  const ModelConfig& c = config;
  if (options.first_layer == 0) {
    if (!input.is_tokens()) return Status::Error("the first stage takes token ids, got hidden states");
    for (int32_t t : input.tokens) {
      if (t < 0 || t >= c.vocab_size) {
        return Status::Error("token id " + std::to_string(t) + " is outside the vocabulary of " +
                             std::to_string(c.vocab_size));
      }
    }
    return EmbeddingRows(embed, input.tokens).to(dtype);  // [T, hidden]
  }
  const HostTensor& h = input.hidden;
  if (input.is_tokens()) return Status::Error("stage of layers from " + std::to_string(options.first_layer) +
                                              " takes hidden states, got token ids");
  if (h.dtype != options.dtype || h.shape.size() != 2 || h.shape[1] != c.hidden_size || h.shape[0] <= 0) {
    return Status::Error(std::string("hidden states must be [tokens, ") + std::to_string(c.hidden_size) + "] " +
                         DTypeName(options.dtype));
  }
  return torch::from_blob(const_cast<uint8_t*>(h.data.data()), h.shape, torch::TensorOptions().dtype(dtype))
      .to(device, dtype, false, /*copy=*/true);  // [T, hidden]
}

Result<const LayerWeights*> LlamaShard::Impl::LayerAt(int64_t l) {
  if (l < resident) return &layers[static_cast<size_t>(l)];
  return StreamIn(l - resident);
}

StageOutput LlamaShard::Impl::Output(const torch::Tensor& x) const {
  const int64_t T = x.size(0);
  StageOutput out;
  if (options.end_layer == config.num_layers) {
    auto h = RmsNorm(x.narrow(0, T - 1, 1), final_norm, config.rms_norm_eps);
    auto logits = Linear(h, lm_head, torch::Tensor()).to(torch::kCPU, torch::kFloat32).contiguous();  // [1, vocab]
    out.logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
    return out;
  }
  auto host = x.to(torch::kCPU).contiguous();
  out.hidden.dtype = options.dtype;
  out.hidden.shape = {T, config.hidden_size};
  const auto* bytes = static_cast<const uint8_t*>(host.data_ptr());
  out.hidden.data.assign(bytes, bytes + host.nbytes());
  return out;
}

Result<StageOutput> LlamaShard::Forward(const StageStep& step) {
  Impl& m = *impl_;
  const StageInput& input = step.input;
  const int64_t start_pos = step.start;
  // Positions are checked before any work: a hostile token count must not
  // be embedded first. Acquire also brings the session's pages back from
  // NVMe if they were swapped out.
  auto acquired = m.kv->Acquire(step.session, start_pos, input.positions());
  if (!acquired.ok()) return acquired.status();
  KvCache& kv = *acquired.value();
  c10::InferenceMode inference;  // no autograd bookkeeping on views and new tensors
  auto embedded = m.Embed(input);
  if (!embedded.ok()) return embedded.status();
  const int64_t T = embedded->size(0);
  torch::Tensor x = embedded->contiguous();  // [T, hidden], fresh: layers on raw rows update it in place
  const int64_t count = m.options.end_layer - m.options.first_layer;
  for (int64_t l = 0; l < count; ++l) {
    auto w = m.LayerAt(l);
    if (!w.ok()) return w.status();
    auto cache = kv.Gather(l, start_pos);
    if (!cache.ok()) return cache.status();
    if (LayerRunsOnCpu(*w.value(), x)) {
      LayerForwardCpu(m.dims, *w.value(), x, {0, T}, [&](int64_t, const void* qkv, int64_t rows, void* out) {
        AttendRows(m.dims, qkv, rows, start_pos, m.rope_cos, m.rope_sin, &cache.value(), out, x.scalar_type());
      });
    } else {
      auto cos = m.rope_cos.narrow(0, start_pos, T);  // [T, hd]
      auto sin = m.rope_sin.narrow(0, start_pos, T);
      x = LayerForward(m.dims, *w.value(), x.unsqueeze(0), start_pos, cos, sin, &cache.value()).squeeze(0);
    }
    kv.Scatter(l, cache.value(), start_pos, start_pos + T);
  }
  if (m.stream) m.PrefetchNextForward();  // the next forward's first streamed layers, while this one finishes
  kv.Commit(start_pos + T);
  return m.Output(x);
}

}  // namespace strata
