// strata-kvscaling: benchmark (d) of tiered memory. How many of 64 sessions
// of mixed lengths one node holds in a fixed RAM budget for KV: with paged KV
// (pages taken as tokens arrive), against the scheme it replaced, where
// opening a session reserved KV for its whole capacity
// ([layers, kv_heads, capacity, head_dim] for K and for V). The paged count
// is measured — real sessions, real forwards, until the accountant refuses
// one; the reserve count is what that reservation allows in the same budget.
// With --swap-dir, the paged run also has an NVMe tier, and reports how many
// sessions it serves with pages swapped out. Prints one JSON object.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <random>

#include "node/engine/compute_device.h"
#include "node/engine/llama_shard.h"
#include "storage/env.h"

int main(int argc, char** argv) {
  std::string model, swap_dir;
  int sessions = 64;
  int64_t capacity = 2048, min_len = 16, max_len = 1024;
  double budget_mib = 64;
  CLI::App app("Sessions that fit a KV budget: paged KV vs reserving each session's capacity.", "strata-kvscaling");
  app.add_option("--model", model, "checkpoint directory")->required();
  app.add_option("--sessions", sessions, "sessions to open")->check(CLI::Range(1, 100000));
  app.add_option("--capacity", capacity, "context each session may grow to");
  app.add_option("--min-len", min_len, "shortest session (tokens)");
  app.add_option("--max-len", max_len, "longest session (tokens)");
  app.add_option("--budget-mib", budget_mib, "RAM budget for KV pages and scratch");
  app.add_option("--swap-dir", swap_dir, "also give the node an NVMe tier here");
  CLI11_PARSE(app, argc, argv);
  try {
    strata::SetComputeThreads(2);
    strata::TierBudgets budgets;
    budgets.bytes[static_cast<int>(strata::MemoryTier::kRam)] = static_cast<uint64_t>(budget_mib * 1048576);
    budgets.bytes[static_cast<int>(strata::MemoryTier::kNvme)] = 64ull << 30;
    strata::MemoryAccountant memory(budgets);
    strata::PosixEnv env;
    auto ckpt = strata::Checkpoint::Open(model);
    if (!ckpt.ok()) throw std::runtime_error(ckpt.status().message());
    const auto config = ckpt.value()->config();
    capacity = std::min<int64_t>(capacity, config.max_position);
    max_len = std::min<int64_t>(max_len, capacity);
    strata::ShardOptions o;
    o.end_layer = config.num_layers;
    o.memory = &memory;
    o.swap_dir = swap_dir;
    o.env = &env;
    auto shard = strata::LlamaShard::Load(std::move(ckpt.value()), o);
    if (!shard.ok()) throw std::runtime_error(shard.status().message());
    const uint64_t per_token = shard.value()->kv_bytes_per_token();
    std::mt19937 rng(11);
    int served = 0;
    uint64_t tokens = 0;
    std::string refusal;
    for (int s = 1; s <= sessions; ++s) {
      const int64_t len = min_len + static_cast<int64_t>(rng() % static_cast<uint32_t>(max_len - min_len + 1));
      if (!shard.value()->OpenSession(s, capacity).ok()) break;
      strata::StageInput in;
      for (int64_t i = 0; i < len; ++i) in.tokens.push_back(static_cast<int32_t>(1 + (i * 7 + s) % 500));
      auto out = shard.value()->Forward(StepAt(s, 0, in));
      if (!out.ok()) {
        refusal = out.status().message();
        break;
      }
      ++served;
      tokens += static_cast<uint64_t>(len);
    }
    // The old scheme: each session reserved K and V for its whole capacity.
    const uint64_t reserve = per_token * static_cast<uint64_t>(capacity);
    const uint64_t reserve_fit = budgets.bytes[static_cast<int>(strata::MemoryTier::kRam)] / reserve;
    std::printf("{\"sessions\": %d, \"capacity\": %lld, \"lengths\": [%lld, %lld], \"budget_mib\": %.0f, "
                "\"kv_bytes_per_token\": %llu, \"paged_fit\": %d, \"paged_tokens\": %llu, \"reserve_fit\": %llu, "
                "\"swap\": %s, \"ratio\": %.2f}\n",
                sessions, static_cast<long long>(capacity), static_cast<long long>(min_len),
                static_cast<long long>(max_len), budget_mib, static_cast<unsigned long long>(per_token), served,
                static_cast<unsigned long long>(tokens), static_cast<unsigned long long>(reserve_fit),
                swap_dir.empty() ? "false" : "true", reserve_fit ? static_cast<double>(served) / reserve_fit : 0.0);
    if (!refusal.empty()) std::cerr << "first refusal: " << refusal << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "strata-kvscaling: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
