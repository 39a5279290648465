#include "coordinator/cli/test_model.h"

#include <dirent.h>
#include <sentencepiece_trainer.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/splitmix.h"
#include "storage/safetensors.h"

namespace strata {
namespace {

using json = nlohmann::json;

using Rng = SplitMix64;

uint64_t HashName(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

void WriteValue(uint8_t* dst, int64_t i, double v, DType dtype) {
  const float f = static_cast<float>(v);
  if (dtype == DType::kF32) {
    std::memcpy(dst + 4 * i, &f, 4);
  } else {
    const uint16_t h = dtype == DType::kBF16 ? FloatToBf16(f) : FloatToF16(f);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

TensorToWrite Gaussian(const std::string& name, std::vector<int64_t> shape, double std, const TestModelSpec& spec) {
  TensorToWrite t{name, spec.dtype, shape, nullptr};
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const uint64_t seed = HashName(name, spec.seed);
  const DType dtype = spec.dtype;
  t.fill = [n, seed, std, dtype](uint8_t* dst) {
    Rng rng{seed};
    for (int64_t i = 0; i < n; i += 2) {  // Box-Muller: two normals per pair of uniforms
      const double r = std::sqrt(-2.0 * std::log(rng.Uniform())), a = 2.0 * M_PI * rng.Uniform();
      WriteValue(dst, i, std * r * std::cos(a), dtype);
      if (i + 1 < n) WriteValue(dst, i + 1, std * r * std::sin(a), dtype);
    }
  };
  return t;
}

TensorToWrite Ones(const std::string& name, int64_t n, const TestModelSpec& spec) {
  TensorToWrite t{name, spec.dtype, {n}, nullptr};
  const DType dtype = spec.dtype;
  t.fill = [n, dtype](uint8_t* dst) {
    for (int64_t i = 0; i < n; ++i) WriteValue(dst, i, 1.0, dtype);
  };
  return t;
}

// The licence texts every Debian system carries: real English prose.
Status DefaultCorpus(const std::string& out_path) {
  std::ofstream out(out_path, std::ios::binary);
  const char* kDir = "/usr/share/common-licenses";
  DIR* dir = ::opendir(kDir);
  if (dir == nullptr) return Status::Error(std::string("no tokenizer corpus: cannot read ") + kDir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());  // deterministic order
  for (const auto& n : names) {
    std::ifstream in(std::string(kDir) + "/" + n, std::ios::binary);
    out << in.rdbuf() << "\n";
  }
  return out ? Status::Ok() : Status::Error("cannot write " + out_path);
}

Status TrainTokenizer(const std::string& dir, const TestModelSpec& spec) {
  std::string corpus = spec.corpus;
  if (corpus.empty()) {
    corpus = dir + "/.tokenizer-corpus.txt";
    Status st = DefaultCorpus(corpus);
    if (!st.ok()) return st;
  }
  const int64_t vocab = spec.tokenizer_vocab > 0 ? spec.tokenizer_vocab : std::min<int64_t>(spec.vocab, 1000);
  std::ostringstream args;
  args << "--input=" << corpus << " --model_prefix=" << dir << "/tokenizer --model_type=bpe"
       << " --vocab_size=" << vocab << " --character_coverage=1.0 --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1"
       << " --num_threads=1 --minloglevel=2 --hard_vocab_limit=false --byte_fallback=false";
  auto status = sentencepiece::SentencePieceTrainer::Train(args.str());
  if (spec.corpus.empty()) std::remove(corpus.c_str());
  std::remove((dir + "/tokenizer.vocab").c_str());
  if (!status.ok()) return Status::Error("tokenizer training failed: " + status.ToString());
  return Status::Ok();
}

// The architecture the spec asks for, once it is checked.
Result<std::string> CheckSpec(const TestModelSpec& spec) {
  if (spec.dtype != DType::kF32 && spec.dtype != DType::kF16 && spec.dtype != DType::kBF16) {
    return Status::Error("test models are F32, F16 or BF16");
  }
  if (spec.hidden % spec.heads != 0 || spec.heads % spec.kv_heads != 0 || (spec.hidden / spec.heads) % 2 != 0) {
    return Status::Error("hidden must split into an even head_dim, and heads must be a multiple of kv_heads");
  }
  const std::string arch = spec.qkv_bias && spec.arch == "llama" ? "qwen2" : spec.arch;
  if (arch != "llama" && arch != "llama3" && arch != "qwen2" && arch != "qwen3" && arch != "mistral") {
    return Status::Error("--arch must be llama, llama3, qwen2, qwen3 or mistral, got '" + spec.arch + "'");
  }
  return arch;
}

// Qwen3's heads are wider than hidden / heads: q and o are not square.
int64_t HeadDim(const TestModelSpec& spec, const std::string& arch) {
  return spec.hidden / spec.heads * (arch == "qwen3" ? 2 : 1);
}

// One layer's tensors, as Hugging Face names them.
void AddLayer(const TestModelSpec& spec, const std::string& arch, int64_t l, std::vector<TensorToWrite>* g) {
  const int64_t H = spec.hidden, hd = HeadDim(spec, arch), kv = spec.kv_heads * hd, q = spec.heads * hd;
  auto name = [l](const char* s) { return "model.layers." + std::to_string(l) + "." + s; };
  g->push_back(Ones(name("input_layernorm.weight"), H, spec));
  g->push_back(Ones(name("post_attention_layernorm.weight"), H, spec));
  g->push_back(Gaussian(name("self_attn.q_proj.weight"), {q, H}, spec.std, spec));
  g->push_back(Gaussian(name("self_attn.k_proj.weight"), {kv, H}, spec.std, spec));
  g->push_back(Gaussian(name("self_attn.v_proj.weight"), {kv, H}, spec.std, spec));
  g->push_back(Gaussian(name("self_attn.o_proj.weight"), {H, q}, spec.std, spec));
  if (arch == "qwen3") {  // per-head norms far from 1, so a missed one shows
    g->push_back(Gaussian(name("self_attn.q_norm.weight"), {hd}, 1.0, spec));
    g->push_back(Gaussian(name("self_attn.k_norm.weight"), {hd}, 1.0, spec));
  }
  if (arch == "qwen2") {
    g->push_back(Gaussian(name("self_attn.q_proj.bias"), {q}, spec.std, spec));
    g->push_back(Gaussian(name("self_attn.k_proj.bias"), {kv}, spec.std, spec));
    g->push_back(Gaussian(name("self_attn.v_proj.bias"), {kv}, spec.std, spec));
  }
  g->push_back(Gaussian(name("mlp.gate_proj.weight"), {spec.intermediate, H}, spec.std, spec));
  g->push_back(Gaussian(name("mlp.up_proj.weight"), {spec.intermediate, H}, spec.std, spec));
  g->push_back(Gaussian(name("mlp.down_proj.weight"), {H, spec.intermediate}, spec.std, spec));
}

// The weights as safetensors files (spec.files of them, with an index).
Status WriteWeights(Env& env, const std::string& dir, const TestModelSpec& spec, const std::string& arch) {
  const int64_t H = spec.hidden;
  std::vector<std::vector<TensorToWrite>> groups(1);
  groups[0].push_back(Gaussian("model.embed_tokens.weight", {spec.vocab, H}, spec.std, spec));
  for (int64_t l = 0; l < spec.layers; ++l) {
    const int files = std::max(1, spec.files);
    const size_t file = static_cast<size_t>(l * files / spec.layers);
    if (groups.size() <= file) groups.resize(file + 1);
    AddLayer(spec, arch, l, &groups[file]);
  }
  groups.back().push_back(Ones("model.norm.weight", H, spec));
  if (!spec.tie_embeddings) groups.back().push_back(Gaussian("lm_head.weight", {spec.vocab, H}, spec.std, spec));
  json weight_map = json::object();
  for (size_t f = 0; f < groups.size(); ++f) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", f + 1, groups.size());
    const std::string file = groups.size() == 1 ? "model.safetensors" : name;
    Status st = WriteSafetensors(env, dir + "/" + file, groups[f]);
    if (!st.ok()) return st;
    for (const auto& t : groups[f]) weight_map[t.name] = file;
  }
  if (groups.size() == 1) return Status::Ok();
  const json index = {{"metadata", json::object()}, {"weight_map", weight_map}};
  return WriteFileWhole(env, dir + "/model.safetensors.index.json", index.dump(2));
}

json ConfigJson(const TestModelSpec& spec, const std::string& arch) {
  const char* hf_arch = arch == "qwen2" ? "Qwen2ForCausalLM" : arch == "qwen3" ? "Qwen3ForCausalLM"
                        : arch == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM";
  json config = {{"architectures", {hf_arch}},
                 {"model_type", arch == "llama3" ? "llama" : arch},
                 {"vocab_size", spec.vocab},
                 {"hidden_size", spec.hidden},
                 {"intermediate_size", spec.intermediate},
                 {"num_hidden_layers", spec.layers},
                 {"num_attention_heads", spec.heads},
                 {"num_key_value_heads", spec.kv_heads},
                 {"max_position_embeddings", spec.context},
                 {"hidden_act", "silu"},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0},
                 {"tie_word_embeddings", spec.tie_embeddings},
                 {"bos_token_id", 1},
                 {"eos_token_id", 2},
                 {"torch_dtype", spec.dtype == DType::kF32 ? "float32" : spec.dtype == DType::kBF16 ? "bfloat16" : "float16"}};
  if (arch == "llama3") {
    config["rope_theta"] = 500000.0;
    config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 8192}};
  }
  if (arch == "qwen3") config["head_dim"] = HeadDim(spec, arch);
  if (arch == "mistral") config["sliding_window"] = spec.context * 2;
  return config;
}

}  // namespace

Status WriteTestModel(Env& env, const std::string& dir, const TestModelSpec& spec) {
  auto arch = CheckSpec(spec);
  if (!arch.ok()) return arch.status();
  ::mkdir(dir.c_str(), 0755);
  Status st = WriteWeights(env, dir, spec, arch.value());
  if (!st.ok()) return st;
  const bool qwen = arch.value() == "qwen2" || arch.value() == "qwen3";
  const json tokenizer_config = {{"add_bos_token", !qwen}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
  // The tokenizer files first and config.json last: a directory without it
  // is not taken for a model, so a write that fails leaves none behind.
  st = WriteFileWhole(env, dir + "/tokenizer_config.json", tokenizer_config.dump(2) + "\n");
  if (st.ok()) st = TrainTokenizer(dir, spec);
  if (st.ok()) st = WriteFileWhole(env, dir + "/config.json", ConfigJson(spec, arch.value()).dump(2) + "\n");
  return st;
}

}  // namespace strata
