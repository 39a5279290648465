#include "node/server/node_state.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>

#include "base/escape.h"
#include "base/system_memory.h"
#include "node/engine/compute_device.h"
#include "node/engine/cpu_features.h"
#include "node/engine/llama_shard.h"
#include "node/engine/matmul.h"
#include "node/server/calibration.h"
#include "protocol/cluster_tls.h"
#include "protocol/version.h"

namespace strata {

std::string HexId(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

namespace {

MemoryTier ComputeTier(const std::string& device) {
  return device.rfind("cuda", 0) == 0 ? MemoryTier::kDevice : MemoryTier::kRam;
}

TierBudgets Budgets(const NodeOptions& options) {
  TierBudgets budgets;
  budgets.bytes[static_cast<int>(MemoryTier::kRam)] = options.memory_budget;
  if (ComputeTier(options.device) == MemoryTier::kDevice) {
    budgets.bytes[static_cast<int>(MemoryTier::kDevice)] =
        options.gpu_memory_budget > 0 ? options.gpu_memory_budget : options.memory_budget;
  }
  if (!options.swap_dir.empty()) budgets.bytes[static_cast<int>(MemoryTier::kNvme)] = options.swap_budget;
  return budgets;
}

}  // namespace

NodeState::NodeState(const NodeOptions& options, kj::Timer& timer, kj::Network& network)
    : options_(options), timer_(timer), network_(network), node_id_(RandomBytes(16)),
      compute_tier_(ComputeTier(options.device)), memory_(Budgets(options)),
      compute_([threads = options.threads]() { SetComputeThreads(threads); }), runtime_(memory_, compute_tier_, KvTiers{options.swap_dir, options.env, options.kv_policy, options.kv_int8}),
      fetcher_([]() {}),
      batcher_(compute_, runtime_, timer_, error_handler_, options.max_batch),
      hand_on_(timer_, error_handler_, options.rpc_timeout_ms), quota_(options.queue), tasks_(error_handler_) {}

void NodeState::ErrorHandler::taskFailed(kj::Exception&& e) {
  spdlog::warn("background task failed: {}", EscapeText(e.getDescription().cStr()));
}

void NodeState::FillInfo(wire::NodeInfo::Builder info) const {
  info.setName(options_.name);
  info.setCpuFeatures(CpuFeatures::Probe().ToString());
  info.setKernels(ActiveKernels().Describe());
  info.setProtocolVersion(kProtocolVersion);
  info.setThreads(static_cast<uint32_t>(options_.threads));
  info.setDevice(options_.device);
  info.setSecured(!options_.secret.empty());
  info.setTls(options_.tls != nullptr);
  KJ_IF_MAYBE(s, shard) {
    info.setShardLoaded(true);
    info.setFirstLayer(static_cast<uint32_t>(s->first_layer));
    info.setEndLayer(static_cast<uint32_t>(s->end_layer));
    info.setShardBytes(s->weight_bytes);
  }
  info.setFreeMemoryBytes(memory_.free(compute_tier_));
  int tiers = 0;
  for (int t = 0; t < kMemoryTiers; ++t) tiers += memory_.budget(static_cast<MemoryTier>(t)) > 0;
  auto list = info.initTiers(static_cast<unsigned>(tiers));
  unsigned i = 0;
  for (int t = 0; t < kMemoryTiers; ++t) {
    const auto tier = static_cast<MemoryTier>(t);
    if (memory_.budget(tier) == 0) continue;
    list[i].setTier(MemoryTierName(tier));
    list[i].setUsedBytes(memory_.used(tier));
    list[i].setBudgetBytes(memory_.budget(tier));
    ++i;
  }
  info.setActiveSessions(static_cast<uint32_t>(sessions.size()));
  info.setResidentBytes(ResidentBytesOf());
  info.setStepsComputed(runtime_.steps_computed());
  info.setBatches(runtime_.batches());
  info.setBatchRows(runtime_.batch_rows());
  info.setComputeMicros(runtime_.compute_micros());
  info.setUptimeMicros(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_).count()));
  const SwapStats swap = runtime_.swap_stats();
  auto w = info.initSwap();
  w.setPagesOut(swap.pages_out);
  w.setPagesIn(swap.pages_in);
  w.setBytesOut(swap.bytes_out);
  w.setBytesIn(swap.bytes_in);
  w.setWriteMicros(swap.write_micros);
  w.setReadMicros(swap.read_micros);
  w.setPrefetchHits(swap.prefetch_hits);
  w.setPrefetchMisses(swap.prefetch_misses);
  w.setFailures(swap.failures);
  w.setSessionsOnDisk(swap.sessions_on_disk);
  w.setRamHits(swap.ram_hits);
  w.setRamMisses(swap.ram_misses);
  info.setKeptSessions(static_cast<uint32_t>(kept.size()));
  info.setFetchDoneBytes(fetch_progress.done.load());
  info.setFetchTotalBytes(fetch_progress.total.load());
  if (options_.calibration != nullptr) {
    info.setComputeGflops(static_cast<float>(options_.calibration->compute_gflops.load()));
    info.setMemBandwidthGbps(static_cast<float>(options_.calibration->bandwidth_gbps.load()));
  }
}

void NodeState::ForgetSessions() {
  for (auto& [ticket, entry] : sessions) entry.halts->fetch_add(1);
  sessions.clear();
  kept.clear();
}

void NodeState::ReleaseSession(const Bytes& ticket) {
  auto it = sessions.find(ticket);
  if (it == sessions.end()) return;
  SessionEntry& entry = it->second;
  entry.halts->fetch_add(1);  // its generation has nobody to go to
  if (entry.keep_key.empty()) {
    CloseSession(ticket, "its client let it go");
    return;
  }
  entry.attached = false;
  const uint64_t generation = ++entry.detachments;
  const uint64_t id = entry.id;
  spdlog::info("session={} kept for {} s: its client let it go", HexId(id), options_.session_ttl_s);
  tasks_.add(compute().Run([this, id]() { return runtime_.Park(id); }).then([id](Status&& st) {
    if (!st.ok()) spdlog::warn("session={} stays in RAM: {}", HexId(id), st.message());
  }));
  tasks_.add(timer_.afterDelay(options_.session_ttl_s * kj::SECONDS).then([this, ticket, generation]() {
    auto found = sessions.find(ticket);
    if (found == sessions.end() || found->second.attached || found->second.detachments != generation) return;
    CloseSession(ticket, "a kept session unused for its TTL");
  }));
}

void NodeState::CloseSession(const Bytes& ticket, const char* why) {
  auto it = sessions.find(ticket);
  if (it == sessions.end()) return;
  const uint64_t id = it->second.id;
  if (!it->second.keep_key.empty()) kept.erase(it->second.keep_key);
  it->second.halts->fetch_add(1);
  it->second.closed->store(true);
  sessions.erase(it);
  spdlog::info("session={} closed: {}", HexId(id), why);
  tasks_.add(compute().Run([this, id]() { runtime_.Close(id); }));
}

}  // namespace strata
