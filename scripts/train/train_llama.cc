// strata-train: trains a small Llama-architecture model with LibTorch
// autograd, running the engine's own layer code (node/engine/llama_layers), and
// writes it in the Hugging Face layout the engine serves (BF16 safetensors).
// Deterministic for a given seed and thread count: batches come from a
// seeded splitmix64 stream and every op runs on the CPU.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/splitmix.h"
#include "node/engine/llama_layers.h"
#include "storage/dtype.h"
#include "storage/env.h"
#include "storage/safetensors.h"

namespace strata {
namespace {

using json = nlohmann::json;

struct Options {
  std::string train, heldout, out;
  int64_t vocab = 3000, hidden = 256, layers = 6, heads = 8, kv_heads = 2, intermediate = 704, context = 256;
  int64_t seq = 128, batch = 16, steps = 1500, warmup = 100, eval_every = 250, threads = 2;
  double lr = 3e-3, min_lr_ratio = 0.1, weight_decay = 0.01;
  uint64_t seed = 1;
};

constexpr const char* kDescription =
    "Trains a Llama-architecture model (tied embeddings, grouped-query attention) on token ids (one\n"
    "document per line, as spm_encode --output_format=id writes them; BOS is prepended to each) and\n"
    "writes DIR/model.safetensors (BF16) and DIR/config.json. Prints one JSON line per evaluation to stdout.";

using Rng = strata::SplitMix64;

// Reads one document of ids per line into one stream, BOS (1) first in each.
std::vector<int64_t> ReadIds(const std::string& path, int64_t vocab) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<int64_t> ids;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    ids.push_back(1);
    int64_t id;
    while (ss >> id) {
      if (id < 0 || id >= vocab) throw std::runtime_error(path + ": id " + std::to_string(id) + " outside the vocabulary");
      ids.push_back(id);
    }
  }
  return ids;
}

struct Model {
  LlamaDims dims;
  torch::Tensor embed;        // [vocab, hidden], also the LM head (tied)
  std::vector<LayerWeights> layers;
  torch::Tensor final_norm;   // [hidden]
  torch::Tensor cos, sin;     // [context, head_dim]

  std::vector<torch::Tensor> Parameters() const {
    std::vector<torch::Tensor> p = {embed, final_norm};
    for (const auto& l : layers) {
      for (const auto& t : {l.attn_norm, l.ffn_norm, l.wqkv.t, l.wo.t, l.w_gate_up.t, l.w_down.t}) p.push_back(t);
    }
    return p;
  }

  // tokens: [B, T] -> logits [B, T, vocab]
  torch::Tensor Forward(const torch::Tensor& tokens) const {
    const int64_t T = tokens.size(1);
    auto x = torch::embedding(embed, tokens);  // [B, T, hidden]
    auto c = cos.narrow(0, 0, T), s = sin.narrow(0, 0, T);
    for (const auto& l : layers) x = LayerForward(dims, l, x, 0, c, s, nullptr);
    return Linear(RmsNorm(x, final_norm, dims.rms_norm_eps), embed, torch::Tensor());
  }
};

Model Init(const Options& o) {
  Model m;
  m.dims = LlamaDims{o.hidden, o.heads, o.kv_heads, o.hidden / o.heads, o.intermediate, 1e-5};
  const int64_t hd = o.hidden / o.heads, qkv = (o.heads + 2 * o.kv_heads) * hd;
  const double std = 0.02, out_std = 0.02 / std::sqrt(2.0 * o.layers);  // residual branches scaled down
  auto normal = [](std::vector<int64_t> shape, double s) { return (torch::randn(shape) * s).requires_grad_(); };
  auto ones = [](int64_t n) { return torch::ones({n}).requires_grad_(); };
  m.embed = normal({o.vocab, o.hidden}, std);
  for (int64_t l = 0; l < o.layers; ++l) {
    LayerWeights w;
    w.attn_norm = ones(o.hidden);
    w.ffn_norm = ones(o.hidden);
    w.wqkv = normal({qkv, o.hidden}, std);
    w.wo = normal({o.hidden, o.heads * hd}, out_std);
    w.w_gate_up = normal({2 * o.intermediate, o.hidden}, std);
    w.w_down = normal({o.hidden, o.intermediate}, out_std);
    m.layers.push_back(w);
  }
  m.final_norm = ones(o.hidden);
  RopeTables(hd, 10000.0, o.context, &m.cos, &m.sin);
  return m;
}

// Random windows of seq+1 tokens: inputs are the first seq, targets the last seq.
torch::Tensor Batch(const std::vector<int64_t>& ids, int64_t batch, int64_t seq, Rng& rng) {
  auto out = torch::empty({batch, seq + 1}, torch::kInt64);
  auto* p = out.data_ptr<int64_t>();
  const uint64_t span = ids.size() - static_cast<uint64_t>(seq) - 1;
  for (int64_t b = 0; b < batch; ++b) {
    const uint64_t at = rng.Next() % span;
    std::copy(ids.begin() + at, ids.begin() + at + seq + 1, p + b * (seq + 1));
  }
  return out;
}

torch::Tensor Loss(const Model& m, const torch::Tensor& windows) {
  const int64_t T = windows.size(1) - 1;
  auto logits = m.Forward(windows.narrow(1, 0, T));
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), windows.narrow(1, 1, T).reshape({-1}));
}

// Mean loss over fixed, evenly spaced held-out windows.
double Evaluate(const Model& m, const std::vector<int64_t>& ids, int64_t seq) {
  torch::NoGradGuard no_grad;
  const int64_t windows = 64, stride = (static_cast<int64_t>(ids.size()) - seq - 1) / windows;
  double total = 0;
  for (int64_t start = 0; start < windows; start += 16) {
    auto batch = torch::empty({16, seq + 1}, torch::kInt64);
    for (int64_t b = 0; b < 16; ++b) {
      std::copy(ids.begin() + (start + b) * stride, ids.begin() + (start + b) * stride + seq + 1,
                batch.data_ptr<int64_t>() + b * (seq + 1));
    }
    total += Loss(m, batch).item<double>() * 16;
  }
  return total / windows;
}

TensorToWrite Bf16(const std::string& name, const torch::Tensor& t) {
  auto f = t.detach().contiguous().to(torch::kFloat32);
  auto shape = f.sizes().vec();
  return {name, DType::kBF16, shape, [f](uint8_t* dst) {
            const float* src = f.data_ptr<float>();
            for (int64_t i = 0; i < f.numel(); ++i) {
              const uint16_t b = FloatToBf16(src[i]);
              std::memcpy(dst + 2 * i, &b, 2);
            }
          }};
}

void Save(const Model& m, const Options& o) {
  const int64_t hd = o.hidden / o.heads, q = o.heads * hd, kv = o.kv_heads * hd, I = o.intermediate;
  std::vector<TensorToWrite> tensors = {Bf16("model.embed_tokens.weight", m.embed)};
  for (int64_t l = 0; l < o.layers; ++l) {
    const auto& w = m.layers[l];
    auto name = [l](const char* s) { return "model.layers." + std::to_string(l) + "." + s; };
    tensors.push_back(Bf16(name("input_layernorm.weight"), w.attn_norm));
    tensors.push_back(Bf16(name("post_attention_layernorm.weight"), w.ffn_norm));
    tensors.push_back(Bf16(name("self_attn.q_proj.weight"), w.wqkv.t.narrow(0, 0, q)));
    tensors.push_back(Bf16(name("self_attn.k_proj.weight"), w.wqkv.t.narrow(0, q, kv)));
    tensors.push_back(Bf16(name("self_attn.v_proj.weight"), w.wqkv.t.narrow(0, q + kv, kv)));
    tensors.push_back(Bf16(name("self_attn.o_proj.weight"), w.wo.t));
    tensors.push_back(Bf16(name("mlp.gate_proj.weight"), w.w_gate_up.t.narrow(0, 0, I)));
    tensors.push_back(Bf16(name("mlp.up_proj.weight"), w.w_gate_up.t.narrow(0, I, I)));
    tensors.push_back(Bf16(name("mlp.down_proj.weight"), w.w_down.t));
  }
  tensors.push_back(Bf16("model.norm.weight", m.final_norm));
  PosixEnv env;
  Status st = WriteSafetensors(env, o.out + "/model.safetensors", tensors);
  if (!st.ok()) throw std::runtime_error(st.message());
  json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", o.vocab},
                 {"hidden_size", o.hidden}, {"intermediate_size", o.intermediate}, {"num_hidden_layers", o.layers},
                 {"num_attention_heads", o.heads}, {"num_key_value_heads", o.kv_heads},
                 {"max_position_embeddings", o.context}, {"hidden_act", "silu"}, {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0}, {"tie_word_embeddings", true}, {"bos_token_id", 1}, {"eos_token_id", 2},
                 {"torch_dtype", "bfloat16"}};
  st = WriteFileWhole(env, o.out + "/config.json", config.dump(2) + "\n");
  if (!st.ok()) throw std::runtime_error(st.message());
}

void AddFlags(CLI::App& app, Options* o) {
  app.option_defaults()->always_capture_default();
  app.add_option("--train", o->train, "training token ids (one document per line)")->required();
  app.add_option("--heldout", o->heldout, "held-out token ids, for the evaluations")->required();
  app.add_option("--out", o->out, "the model directory to write")->required();
  struct Int {
    const char* name;
    int64_t* target;
    int64_t lo, hi;
    const char* help;
  };
  for (const Int& f : {Int{"--vocab", &o->vocab, 8, 1 << 22, "vocabulary size"},
                       Int{"--hidden", &o->hidden, 8, 1 << 16, "hidden size"},
                       Int{"--layers", &o->layers, 1, 1024, "transformer layers"},
                       Int{"--heads", &o->heads, 1, 1024, "attention heads"},
                       Int{"--kv-heads", &o->kv_heads, 1, 1024, "key/value heads"},
                       Int{"--intermediate", &o->intermediate, 1, 1 << 20, "MLP intermediate size"},
                       Int{"--context", &o->context, 2, 1 << 20, "context length"},
                       Int{"--seq", &o->seq, 2, 1 << 20, "tokens per training sequence"},
                       Int{"--batch", &o->batch, 1, 1 << 16, "sequences per step"},
                       Int{"--steps", &o->steps, 1, 1 << 30, "optimizer steps"},
                       Int{"--warmup", &o->warmup, 0, 1 << 30, "linear warm-up steps"},
                       Int{"--eval-every", &o->eval_every, 1, 1 << 30, "steps between evaluations"},
                       Int{"--threads", &o->threads, 1, 1024, "compute threads"}}) {
    app.add_option(f.name, *f.target, f.help)->check(CLI::Range(f.lo, f.hi));
  }
  app.add_option("--lr", o->lr, "peak learning rate")->check(CLI::PositiveNumber);
  app.add_option("--seed", o->seed, "initialisation and batch seed");
}

int Train(const Options& o) {
  at::set_num_threads(static_cast<int>(o.threads));
  torch::manual_seed(o.seed);
  const auto train_ids = ReadIds(o.train, o.vocab), heldout_ids = ReadIds(o.heldout, o.vocab);
  Model m = Init(o);
  int64_t params = 0;
  for (const auto& p : m.Parameters()) params += p.numel();
  std::cerr << "strata-train: " << params << " parameters, " << train_ids.size() << " train tokens, "
            << heldout_ids.size() << " held-out tokens\n";
  torch::optim::AdamW optimizer(m.Parameters(),
                                torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay));
  Rng rng{o.seed};
  const auto t0 = std::chrono::steady_clock::now();
  double running = 0;
  json last;
  for (int64_t step = 1; step <= o.steps; ++step) {
    // Linear warm-up, then cosine decay to min_lr_ratio * lr.
    const double progress = static_cast<double>(step - o.warmup) / std::max<int64_t>(1, o.steps - o.warmup);
    const double lr = step <= o.warmup ? o.lr * step / o.warmup
                                       : o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    auto loss = Loss(m, Batch(train_ids, o.batch, o.seq, rng));
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(m.Parameters(), 1.0);
    optimizer.step();
    const double l = loss.item<double>();
    running = step == 1 ? l : 0.98 * running + 0.02 * l;
    if (step % o.eval_every == 0 || step == o.steps) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      last = {{"step", step}, {"train_loss", running}, {"heldout_loss", Evaluate(m, heldout_ids, o.seq)},
              {"lr", lr}, {"elapsed_s", elapsed}, {"tokens_seen", step * o.batch * o.seq}, {"parameters", params}};
      std::cout << last.dump() << std::endl;
    } else if (step % 10 == 0) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\rstep %lld/%lld  loss %.3f  %.1f s/step  eta %.0f s   ", static_cast<long long>(step),
                   static_cast<long long>(o.steps), running, elapsed / step, elapsed / step * (o.steps - step));
    }
  }
  std::cerr << "\n";
  Save(m, o);
  PosixEnv env;
  Status st = WriteFileWhole(env, o.out + "/training.json", last.dump(2) + "\n");
  if (!st.ok()) throw std::runtime_error(st.message());
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::Options options;
  CLI::App app(strata::kDescription, "strata-train");
  strata::AddFlags(app, &options);
  CLI11_PARSE(app, argc, argv);
  try {
    return strata::Train(options);
  } catch (const std::exception& e) {
    std::cerr << "strata-train: " << e.what() << "\n";
    return 1;
  }
}
