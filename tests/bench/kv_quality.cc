// strata-kvquality: what INT8 KV costs in accuracy and saves in memory, on
// one model, in one process. Runs the model whole with full-precision KV and
// greedy decoding for --tokens tokens, then with INT8 KV fed the same tokens
// (teacher forcing, so every position compares like with like), and then
// free-running with INT8 KV. Prints one JSON object:
//   bytes_per_token {f32, bf16, int8}  KV bytes per token of context
//   agreement        fraction of positions where INT8's greedy token equals full precision's (teacher-forced)
//   identical_prefix tokens the free-running INT8 generation matches before it first differs
//   max_abs_logit_dev / mean_abs_logit_dev  over every position and vocabulary entry
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include <sstream>

#include "node/engine/compute_device.h"
#include "node/engine/llama_shard.h"

namespace {

using strata::LlamaShard;

std::unique_ptr<LlamaShard> Load(const std::string& dir, strata::TensorDType dtype, bool int8) {
  auto ckpt = strata::Checkpoint::Open(dir);
  if (!ckpt.ok()) throw std::runtime_error(ckpt.status().message());
  strata::ShardOptions o;
  o.end_layer = ckpt.value()->config().num_layers;
  o.dtype = dtype;
  o.kv_int8 = int8;
  auto shard = LlamaShard::Load(std::move(ckpt.value()), o);
  if (!shard.ok()) throw std::runtime_error(shard.status().message());
  return std::move(shard.value());
}

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Runs the prompt, then `tokens` steps; with `forced`, feeds those tokens
// instead of its own. Returns the logits of every step and the tokens fed.
std::vector<std::vector<float>> Run(LlamaShard& shard, const std::vector<int32_t>& prompt, int tokens,
                                    const std::vector<int32_t>* forced, std::vector<int32_t>* fed) {
  if (!shard.OpenSession(1, static_cast<int64_t>(prompt.size()) + tokens + 1).ok()) throw std::runtime_error("open");
  std::vector<std::vector<float>> all;
  strata::StageInput in;
  in.tokens = prompt;
  int64_t pos = 0;
  for (int i = 0; i <= tokens; ++i) {
    auto out = shard.Forward(StepAt(1, pos, in));
    if (!out.ok()) throw std::runtime_error(out.status().message());
    pos += static_cast<int64_t>(in.tokens.size());
    all.push_back(out->logits);
    const int32_t next = forced != nullptr ? (*forced)[static_cast<size_t>(i)] : Argmax(out->logits);
    fed->push_back(next);
    in.tokens = {next};
  }
  shard.CloseSession(1);
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, prompt = "1", dtype_name = "f32";
  int tokens = 256;
  CLI::App app("INT8 KV against full-precision KV: memory per token, greedy agreement, logit deviation.",
               "strata-kvquality");
  app.add_option("--model", model, "checkpoint directory")->required();
  // Token ids, not text: SentencePiece's protobuf and LibTorch's cannot share
  // a process (scripts/bench/kv_int8_bench.sh tokenizes with `strata`).
  app.add_option("--prompt-tokens", prompt, "prompt token ids, \"1,2,3\"");
  app.add_option("--tokens", tokens, "tokens to generate")->check(CLI::Range(1, 100000));
  app.add_option("--dtype", dtype_name, "compute dtype: f32 | bf16")->check(CLI::IsMember({"f32", "bf16"}));
  CLI11_PARSE(app, argc, argv);
  try {
    strata::TensorDType dtype = dtype_name == "bf16" ? strata::TensorDType::kBF16 : strata::TensorDType::kF32;
    strata::SetComputeThreads(2);
    auto full = Load(model, dtype, false);
    std::vector<int32_t> ids;
    std::stringstream ss(prompt);
    for (std::string item; std::getline(ss, item, ',');) ids.push_back(std::stoi(item));
    // Within the model's context: the prompt, the tokens, one spare position.
    tokens = static_cast<int>(std::min<int64_t>(tokens, full->config().max_position - static_cast<int64_t>(ids.size()) - 1));
    std::vector<int32_t> greedy, forced_fed, free_fed;
    auto reference = Run(*full, ids, tokens, nullptr, &greedy);
    const auto& c = full->config();
    const uint64_t values = 2ull * c.num_layers * c.num_kv_heads * c.head_dim;  // K and V of every layer
    const uint64_t f32_bpt = values * 4, bf16_bpt = values * 2;
    full.reset();
    auto int8 = Load(model, dtype, true);
    auto forced = Run(*int8, ids, tokens, &greedy, &forced_fed);
    Run(*int8, ids, tokens, nullptr, &free_fed);
    double max_dev = 0, sum_dev = 0;
    uint64_t count = 0, agree = 0;
    for (size_t i = 0; i < reference.size(); ++i) {
      for (size_t v = 0; v < reference[i].size(); ++v) {
        const double d = std::fabs(static_cast<double>(reference[i][v]) - forced[i][v]);
        max_dev = std::max(max_dev, d);
        sum_dev += d;
        ++count;
      }
      agree += Argmax(reference[i]) == Argmax(forced[i]);
    }
    size_t prefix = 0;
    while (prefix < greedy.size() && greedy[prefix] == free_fed[prefix]) ++prefix;
    std::printf("{\"model\": \"%s\", \"dtype\": \"%s\", \"tokens\": %d, \"bytes_per_token\": {\"f32\": %llu, \"bf16\": %llu, "
                "\"int8\": %llu}, \"agreement\": %.4f, \"identical_prefix\": %zu, \"max_abs_logit_dev\": %.6g, "
                "\"mean_abs_logit_dev\": %.6g}\n",
                model.c_str(), dtype_name.c_str(), tokens, static_cast<unsigned long long>(f32_bpt),
                static_cast<unsigned long long>(bf16_bpt), static_cast<unsigned long long>(int8->kv_bytes_per_token()),
                static_cast<double>(agree) / reference.size(), prefix, max_dev, sum_dev / count);
  } catch (const std::exception& e) {
    std::cerr << "strata-kvquality: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
