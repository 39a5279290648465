#include "storage/gguf_quantize.h"

#include <cstring>

#include <cstdlib>
#include <vector>

#include "storage/checkpoint.h"
#include "storage/gguf.h"
#include "storage/gguf_model.h"
#include "storage/quants.h"

namespace strata {
namespace {

// llama.cpp's llama_ftype codes, written as general.file_type.
struct FileType {
  const char* name;
  uint32_t ftype;
  DType base;  // the type of most matrices
};
constexpr FileType kTypes[] = {{"f32", 0, DType::kF32},    {"f16", 1, DType::kF16},    {"bf16", 32, DType::kBF16},
                               {"q4_0", 2, DType::kQ4_0},
                               {"q8_0", 7, DType::kQ8_0},  {"q4_k_m", 15, DType::kQ4_K}, {"q5_k_m", 17, DType::kQ5_K},
                               {"q6_k", 18, DType::kQ6_K}};

// llama.cpp's use_more_bits: the first and last eighth of the layers, and
// every third between, get more bits in the _M mixes.
bool MoreBits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

// A K format's fallback where rows are not whole super-blocks (llama.cpp's
// choices), and F16 where they are not whole 32-element blocks either.
DType FitRows(DType t, int64_t cols) {
  if (cols % DTypeBlockElements(t) == 0) return t;
  if (cols % 32 != 0) return DType::kF16;
  if (t == DType::kQ4_K) return DType::kQ5_0;
  if (t == DType::kQ5_K) return DType::kQ5_1;
  if (t == DType::kQ6_K) return DType::kQ8_0;
  return DType::kF16;
}

// The type of one tensor of `gguf_name` in a file of `ft`.
DType TensorType(const FileType& ft, const std::string& gguf_name, const std::vector<int64_t>& shape, bool tied,
                 int64_t layers) {
  if (shape.size() != 2 || ft.base == DType::kF32) return DType::kF32;  // norms and biases stay f32
  DType t = ft.base;
  const bool mix = ft.ftype == 15 || ft.ftype == 17;
  const bool output = gguf_name == "output.weight" || (tied && gguf_name == "token_embd.weight");
  if (mix && output) t = DType::kQ6_K;
  int64_t layer = -1;
  if (gguf_name.compare(0, 4, "blk.") == 0) layer = std::atoll(gguf_name.c_str() + 4);
  const bool v_or_down = gguf_name.find("attn_v.weight") != std::string::npos || gguf_name.find("ffn_down.weight") != std::string::npos;
  if (mix && layer >= 0 && v_or_down && MoreBits(layer, layers)) t = DType::kQ6_K;
  return FitRows(t, shape[1]);
}

// One source tensor as f32 rows [rows, cols], in GGUF's row order.
std::vector<float> SourceRows(const Checkpoint& ckpt, const TensorView& view, bool interleave, int64_t heads) {
  const int64_t cols = view.shape.size() == 2 ? view.shape[1] : view.shape[0];
  const int64_t rows = view.numel() / cols;
  std::vector<float> src(static_cast<size_t>(view.numel()));
  DequantizeRow(view.dtype, view.data, view.numel(), src.data());
  ckpt.Release(view);
  if (!interleave || heads <= 0) return src;
  // Hugging Face's rotate-half rows p * half + i to GGUF's 2i + p, per head.
  std::vector<float> out(src.size());
  const int64_t hd = rows / heads, half = hd / 2;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t p = 0; p < 2; ++p) {
        std::copy_n(src.data() + (h * hd + p * half + i) * cols, cols, out.data() + (h * hd + 2 * i + p) * cols);
      }
    }
  }
  return out;
}

}  // namespace

const char* QuantizeTypes() { return "f32 | f16 | bf16 | q4_0 | q8_0 | q4_k_m | q5_k_m | q6_k"; }

bool KnownQuantizeType(const std::string& type) {
  for (const FileType& t : kTypes) {
    if (type == t.name) return true;
  }
  return false;
}

Status WriteQuantizedGguf(Env& env, const Checkpoint& ckpt, const GgufQuantizeOptions& o) {
  const FileType* ft = nullptr;
  for (const FileType& t : kTypes) {
    if (o.type == t.name) ft = &t;
  }
  if (ft == nullptr) return Status::Error("--type must be one of " + std::string(QuantizeTypes()) + ", got '" + o.type + "'");
  if (ckpt.gguf() != nullptr) return Status::Error(ckpt.dir() + " is a GGUF file already; quantize reads a checkpoint directory");
  const ModelConfig& c = ckpt.config();
  // Mistral is llama's layout in GGUF.
  const std::string arch = c.model_type == "qwen2" || c.model_type == "qwen3" ? c.model_type : "llama";
  std::vector<std::pair<std::string, GgufValue>> meta = {
      {"general.architecture", GgufStr(arch)},
      {"general.name", GgufStr(ckpt.dir().substr(ckpt.dir().find_last_of('/') + 1))},
      {"general.file_type", GgufU32(ft->ftype)},
      {"general.quantization_version", GgufU32(2)},
      {arch + ".context_length", GgufU32(static_cast<uint32_t>(c.max_position))},
      {arch + ".embedding_length", GgufU32(static_cast<uint32_t>(c.hidden_size))},
      {arch + ".block_count", GgufU32(static_cast<uint32_t>(c.num_layers))},
      {arch + ".feed_forward_length", GgufU32(static_cast<uint32_t>(c.intermediate_size))},
      {arch + ".rope.dimension_count", GgufU32(static_cast<uint32_t>(c.head_dim))},
      {arch + ".attention.head_count", GgufU32(static_cast<uint32_t>(c.num_heads))},
      {arch + ".attention.head_count_kv", GgufU32(static_cast<uint32_t>(c.num_kv_heads))},
      {arch + ".attention.key_length", GgufU32(static_cast<uint32_t>(c.head_dim))},
      {arch + ".attention.value_length", GgufU32(static_cast<uint32_t>(c.head_dim))},
      {arch + ".attention.layer_norm_rms_epsilon", GgufF32(static_cast<float>(c.rms_norm_eps))},
      {arch + ".rope.freq_base", GgufF32(static_cast<float>(c.rope_theta))},
      {arch + ".vocab_size", GgufU32(static_cast<uint32_t>(c.vocab_size))},
  };
  meta.insert(meta.end(), o.metadata.begin(), o.metadata.end());

  // Tensors in llama.cpp's order: the embedding, each layer, the output.
  std::vector<std::string> names = {kEmbedName};
  for (int64_t l = 0; l < c.num_layers; ++l) {
    for (const char* s : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
                          "self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight",
                          "self_attn.v_proj.bias", "self_attn.o_proj.weight", "self_attn.o_proj.bias",
                          "self_attn.q_norm.weight", "self_attn.k_norm.weight",
                          "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.gate_proj.bias",
                          "mlp.up_proj.weight", "mlp.up_proj.bias", "mlp.down_proj.weight", "mlp.down_proj.bias"}) {
      names.push_back(LayerTensorName(l, s));
    }
  }
  names.push_back(kFinalNormName);
  if (!c.tie_word_embeddings) names.push_back(kLmHeadName);
  uint64_t total = 0, done = 0;
  std::vector<GgufTensorToWrite> tensors;
  for (const std::string& name : names) {
    auto view = ckpt.Find(name);
    if (!view.ok()) {
      const bool qk_norm = name.find("self_attn.q_norm") != std::string::npos || name.find("self_attn.k_norm") != std::string::npos;
      if (name.find("bias") != std::string::npos || qk_norm) {
        continue;  // biases and q/k norms are optional
      }
      return view.status();
    }
    const TensorView* v = view.value();
    if (v->shape.empty() || v->shape.size() > 2) return Status::Error("tensor '" + name + "' is not a vector or a matrix");
    const std::string gguf_name = GgufTensorName(name);
    const DType type = TensorType(*ft, gguf_name, v->shape, c.tie_word_embeddings, c.num_layers);
    const bool interleave = arch == "llama" && (name.find("q_proj.weight") != std::string::npos || name.find("k_proj.weight") != std::string::npos);
    const int64_t heads = name.find("q_proj") != std::string::npos ? c.num_heads : c.num_kv_heads;
    total += v->nbytes;
    tensors.push_back({gguf_name, type, v->shape, [&ckpt, v, type, interleave, heads, &done, &total, &o](uint8_t* dst) {
                         const int64_t cols = v->shape.back(), rows = v->numel() / cols;
                         const std::vector<float> rows_f32 = SourceRows(ckpt, *v, interleave, heads);
                         uint64_t row_bytes = 0;
                         DTypeBytes(type, {cols}, &row_bytes);
                         for (int64_t r = 0; r < rows; ++r) QuantizeRow(type, rows_f32.data() + r * cols, cols, dst + r * row_bytes);
                         done += v->nbytes;
                         if (o.progress) o.progress(done, total);
                       }});
  }
  if (!c.rope_freq_factors.empty()) {  // Llama 3's rope scaling, where llama.cpp reads it
    const std::vector<float> factors = c.rope_freq_factors;
    tensors.push_back({"rope_freqs.weight", DType::kF32, {static_cast<int64_t>(factors.size())},
                       [factors](uint8_t* dst) { std::memcpy(dst, factors.data(), factors.size() * sizeof(float)); }});
  }
  return WriteGguf(env, o.out, meta, tensors);
}

}  // namespace strata
