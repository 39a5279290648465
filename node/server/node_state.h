#pragma once
// NodeState: what one node holds between calls, on its event-loop thread:
// the loaded shard's description, the open sessions (by ticket), the link to
// the next stage, its place in the pipeline, and the compute thread with the
// StageRuntime that holds the weights and KV caches.
//
// Not thread-safe: the event-loop thread owns it. The exceptions cross to
// the compute thread on purpose: runtime() is touched only inside
// compute().Run(...); a SessionEntry's `halts` and `closed` and
// fetch_progress are atomics the compute thread reads or writes; the
// memory accountant and the batcher's mailbox lock for themselves.
#include <capnp/capability.h>
#include <kj/async-io.h>
#include <kj/refcount.h>
#include <kj/timer.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "node/kv/memory_accountant.h"
#include "node/server/compute_thread.h"
#include "node/server/hand_on_queue.h"
#include "node/server/node_server.h"
#include "base/rate_limited_log.h"
#include "node/server/stage_runtime.h"
#include "node/server/step_batcher.h"
#include "protocol/peer_link.h"
#include "storage/shard_fetch.h"

namespace strata {

// One conversation on this node. The runtime knows it by `id`; peers know
// it only by its unguessable ticket.
struct SessionEntry {
  uint64_t id = 0;
  uint32_t capacity = 0;      // tokens of KV cache
  Bytes downstream_ticket;    // the next stage's ticket (empty on the last stage)
  Bytes keep_key;             // non-empty: a kept session, resumable by this key
  bool attached = true;       // a client holds its Session capability
  uint64_t detachments = 0;   // counts detaches, so a stale TTL timer does nothing
  // Counts Session.halt, the close and the client letting go: a run of
  // fed-back steps from before stops (read by the compute thread, shared by
  // the entry's copies).
  std::shared_ptr<std::atomic<uint64_t>> halts = std::make_shared<std::atomic<uint64_t>>(0);
  // Set when the session closes: its submitted steps that have not started
  // never start (read by the compute thread, shared by the entry's copies).
  std::shared_ptr<std::atomic<bool>> closed = std::make_shared<std::atomic<bool>>(false);
  // The coordinator's sink for submitted steps (Session.setSink), on its own
  // link to this node; null until set.
  // (Shared: an entry is copied, and a capability's copy wants a non-const source.)
  std::shared_ptr<wire::StepSink::Client> sink;
};

class NodeState final : public kj::Refcounted {
 public:
  NodeState(const NodeOptions& options, kj::Timer& timer, kj::Network& network);

  const NodeOptions& options() const { return options_; }
  kj::Timer& timer() { return timer_; }
  kj::Network& network() { return network_; }
  const ComputeThread& compute() const { return compute_; }
  // Shard fetches run here, beside the compute thread: the shard being
  // replaced keeps serving until the new one is in the cache.
  const ComputeThread& fetcher() const { return fetcher_; }
  StageRuntime& runtime() { return runtime_; }  // compute thread only
  kj::TaskSet& tasks() { return tasks_; }
  StepBatcher& batcher() { return batcher_; }  // every step goes to the compute thread through it
  HandOnQueue& hand_on() { return hand_on_; }  // and every submitted step on to the next stage
  const Bytes& node_id() const { return node_id_; }
  LinkSecurity security() const { return {&options_.secret, options_.tls}; }
  RateLimitedLog& refusals() { return refusals_; }
  StepQuota& quota() { return quota_; }
  std::chrono::steady_clock::time_point started() const { return started_; }
  uint64_t compute_micros() const { return runtime_.compute_micros(); }  // any thread: an atomic

  void FillInfo(wire::NodeInfo::Builder info) const;
  // Forgets every session (the runtime drops their caches with the shard).
  void ForgetSessions();
  // Closes one session here and, in the background, its KV cache.
  void CloseSession(const Bytes& ticket, const char* why);
  // Its client let the Session capability go: a kept session waits (its KV
  // parked on NVMe where there is a swap directory) until resumed or until
  // the TTL passes; any other session closes.
  void ReleaseSession(const Bytes& ticket);

  kj::Maybe<LoadedShard> shard;
  std::map<Bytes, SessionEntry> sessions;  // ticket -> session
  std::map<Bytes, Bytes> kept;             // keep key -> ticket, for every kept session
  uint64_t next_session_id = 1;
  kj::Maybe<kj::Own<PeerLink>> next;       // the next stage, after an authenticated hello
  // Every Session capability this node issued, so that a batch naming
  // sessions by capability (Control.submitBatch) can be resolved to them.
  capnp::CapabilityServerSet<wire::Session> session_caps;
  uint32_t stage_index = 0, stage_count = 1;
  FetchProgress fetch_progress;            // the shard being fetched, if any (written on the fetch thread)
  // Set to stop the fetch in flight: a later loadShard replaces it, so a
  // source that never answers cannot hold the node's loads.
  std::shared_ptr<std::atomic<bool>> fetch_cancel = std::make_shared<std::atomic<bool>>(false);
  // Completes when the last requested load has finished; never rejects.
  kj::ForkedPromise<void> load_chain = kj::Promise<void>(kj::READY_NOW).fork();

 private:
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  struct ErrorHandler final : kj::TaskSet::ErrorHandler {
    void taskFailed(kj::Exception&& e) override;
  };
  NodeOptions options_;
  kj::Timer& timer_;
  kj::Network& network_;
  Bytes node_id_;  // random per process: lets a node recognise itself as a next stage
  MemoryTier compute_tier_;   // where weights and KV live: device on CUDA, else RAM
  MemoryAccountant memory_;   // charged by runtime_ on the compute thread
  ComputeThread compute_;
  StageRuntime runtime_;
  ComputeThread fetcher_;
  RateLimitedLog refusals_;
  ErrorHandler error_handler_;
  StepBatcher batcher_;
  HandOnQueue hand_on_;
  StepQuota quota_;    // before tasks_: the steps' holds are released as their tasks go
  kj::TaskSet tasks_;  // last: destroyed first, before the members its tasks use
};

// "0123abcd..." for logs.
std::string HexId(uint64_t id);

}  // namespace strata
