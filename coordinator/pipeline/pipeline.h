#pragma once
// The coordinator's side of the pipeline: connections to the nodes (hello,
// version check), shard loading, wiring each stage to the next, sessions and
// steps, each a promise. Every network wait has a timeout; RpcEnv::Await,
// where the CLI blocks, adds Ctrl-C and turns a failure into PipelineError
// with one line naming the node.
//
// Not thread-safe: lives on the coordinator's one KJ event-loop thread.
#include <kj/async-io.h>
#include <capnp/rpc-twoparty.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "coordinator/pipeline/shard_plan.h"
#include "coordinator/pipeline/submit_queue.h"
#include "protocol/host_tensor.h"
#include "protocol/node_status.h"
#include "protocol/peer_link.h"
#include "strata.capnp.h"

namespace strata {

class PipelineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failure's text for a user: KJ's "remote exception: " and "std::exception: "
// prefixes (how it travelled, a std::exception thrown in a continuation)
// dropped, a peer's control bytes (a newline, a terminal escape) as \xNN, at
// most ~2000 bytes, and "(disconnected)" added where a lost link says nothing.
std::string ExceptionText(const kj::Exception& e);

struct Timeouts {
  uint32_t connect_ms = 10000;
  uint32_t call_ms = 120000;   // one pipeline step
  uint32_t load_ms = 1800000;  // loading a shard
};

// The event loop, the Ctrl-C signal and how this process proves itself to
// nodes, all borrowed from main().
class RpcEnv {
 public:
  RpcEnv(kj::AsyncIoContext& io, Timeouts timeouts, LinkSecurity security = {});

  // Waits for `promise` up to timeout_ms; a failure, timeout or Ctrl-C throws
  // PipelineError("<what>: <cause>"). Defined (and instantiated) in
  // pipeline.cc: the pipeline is its only user.
  template <typename T>
  T Await(kj::Promise<T>&& promise, uint32_t timeout_ms, const std::string& what);
  // The asynchronous form, for code that runs inside the event loop (the
  // HTTP server): `promise` bounded by timeout_ms, failing with a
  // kj::Exception whose description is "<what>: <cause>".
  template <typename T>
  kj::Promise<T> Bound(kj::Promise<T>&& promise, uint32_t timeout_ms, const std::string& what);

  kj::AsyncIoContext& io() { return io_; }
  const Timeouts& timeouts() const { return timeouts_; }
  const LinkSecurity& security() const { return security_; }

 private:
  kj::AsyncIoContext& io_;
  Timeouts timeouts_;
  LinkSecurity security_;
  kj::ForkedPromise<void> interrupted_;
};

class NodeConnection {
 public:
  // Connects and says hello; fails naming the address.
  static kj::Promise<std::unique_ptr<NodeConnection>> Connect(RpcEnv& env, const std::string& address);
  // The node's status now; fails naming the node. The connection must outlive the promise.
  kj::Promise<NodeStatus> Status(RpcEnv& env);

  const std::string& address() const { return address_; }
  const NodeStatus& hello_status() const { return hello_status_; }
  wire::Control::Client& control() { return link_->control; }
  std::string Label() const;  // "node NAME (ADDRESS)"
  // Resolves when this process's link to the node drops (a killed node).
  kj::Promise<void> OnDisconnect() { return link_->client->onDisconnect(); }

 private:
  NodeConnection() = default;
  std::string address_;
  NodeStatus hello_status_;
  kj::Own<PeerLink> link_;
};

// Connects to every address at once; the connections come in the addresses'
// order, or a failure naming the first node in that order that did not answer.
// `leave_out_unreachable` (discovered members: one that stopped still beacons
// for a few seconds): a node that does not answer is logged and left out,
// and only none answering fails.
kj::Promise<std::vector<std::unique_ptr<NodeConnection>>> ConnectNodes(RpcEnv& env,
                                                                       const std::vector<std::string>& addresses,
                                                                       bool leave_out_unreachable = false);


struct SamplingParams {
  float temperature = 0.0f;
  uint32_t top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
};

struct StepReply {
  int32_t token = 0;
  std::vector<float> logits;            // [vocab] when asked for
  std::vector<uint64_t> stage_micros;   // compute time per stage
};

class Pipeline {
 public:
  // `vocab`: the model's vocabulary, against which every reply of the last
  // stage is checked (a token inside it, logits of its size).
  Pipeline(RpcEnv& env, std::vector<std::unique_ptr<NodeConnection>> nodes, uint32_t vocab);

  std::vector<NodeCapacity> Capacities() const;
  // Every operation that asks the nodes is a promise: the CLI waits for it
  // at its edge (RpcEnv::Await), `strata serve` chains it on its event
  // loop. Failures are kj::Exceptions whose description names the node
  // ("<node>: <cause>"); every call is bounded by a timeout.
  //
  // Loads every stage of the plan in parallel, then wires stage i to i+1.
  // With a `source`, every node fetches its shard's tensors from that model
  // server into its cache first, and a progress bar per node is drawn on
  // stderr while they do. `*source` must outlive the promise.
  struct Source {
    std::string url, model_id, token;
  };
  kj::Promise<void> Load(const std::string& model_dir, const ShardPlan& plan, TensorDType dtype,
                         const Source* source = nullptr);
  // The labels of the plan's nodes that cannot read `model_dir` by path
  // (Control.canOpen), in stage order: they need the model distributed.
  kj::Promise<std::vector<std::string>> CannotOpen(const std::string& model_dir, const ShardPlan& plan);
  // Sessions and steps: the session's capabilities are kept by the pipeline, so a promise may be
  // dropped (a client went away) and the session closed afterwards.
  //
  // Opens a session of `capacity` tokens on every stage, last to first: each
  // stage learns the ticket by which it reaches the next one's session.
  // A non-empty `keep_key` (16 bytes) makes it a kept session: it outlives
  // this process on every node, for the nodes' TTL, and ResumeSession with
  // the same key picks it up again.
  kj::Promise<void> OpenSession(uint64_t session, uint32_t capacity, const SamplingParams& sampling,
                                const Bytes& keep_key = {});
  // Picks up a kept session on every stage; gives the tokens its KV holds
  // (the same on every stage, or a failure naming the stage that differs)
  // and its capacity.
  kj::Promise<std::pair<uint32_t, uint32_t>> ResumeSession(uint64_t session, const Bytes& keep_key);
  // Lets go of a kept session without closing it.
  void DetachSession(uint64_t session) {
    sessions_.erase(session);
    DropSink(session);
  }
  // Uses the shards the nodes already hold, when they chain [0, num_layers)
  // (resuming a kept session must not reload and so forget it).
  bool UseLoadedShards(int64_t num_layers, ShardPlan* plan);
  // Closes the session on every stage and frees its KV everywhere; the
  // session is gone from here at once. The promise waits at most a second
  // for the stages' answers and never fails (a dead node must not delay an
  // error report): wait for it, or drop it.
  kj::Promise<void> CloseSession(uint64_t session);
  // StepAsync submits the step to the first stage (Session.submit) and waits
  // for its result from the last stage's direct report to this session's
  // sink: no call is held open through the middle stages.
  // With feed_back (a one-stage pipeline), the node then makes the steps
  // that follow itself; ExpectAsync waits for each one's result.
  // `step` carries token ids; its session is this pipeline's id for it.
  kj::Promise<StepReply> StepAsync(StageStep step);
  // The result of the fed-back step at `start_pos` (without logits), whether
  // it has already come or not.
  kj::Promise<StepReply> ExpectAsync(uint64_t session, uint32_t start_pos);
  // Ends the session's feedback on the node; results still on their way
  // are dropped.
  void HaltAsync(uint64_t session);
  bool HasSession(uint64_t session) const { return sessions_.count(session) > 0; }

  size_t stage_count() const { return stages_.size(); }
  NodeConnection& stage_node(size_t i) { return *nodes_[stages_[i]]; }

 private:
  // Fails when the link to any stage drops, naming it: a submitted step a
  // dead node had taken would otherwise never be reported.
  kj::Promise<void> AnyStageLost();
  kj::Promise<void> LinkStages();
  kj::Maybe<kj::ForkedPromise<void>> lost_;
  // Fails what still waits on the session's sink, and forgets it.
  void DropSink(uint64_t session);
  // Registers this process's sink for `session` on every stage.
  kj::Promise<void> AttachSink(uint64_t session);
  kj::Promise<void> OpenFrom(uint64_t session, uint32_t capacity, SamplingParams sampling, Bytes keep_key,
                             size_t stage, kj::Array<capnp::byte> downstream,
                             std::vector<wire::Session::Client> reversed);
  kj::Promise<std::pair<uint32_t, uint32_t>> ResumeFrom(uint64_t session, Bytes keep_key, size_t stage,
                                                        std::pair<uint32_t, uint32_t> held,
                                                        std::vector<wire::Session::Client> caps);
  kj::Promise<void> DrawFetchProgress(kj::Own<bool> done, std::chrono::steady_clock::time_point start, int ticks);

  RpcEnv& env_;
  std::vector<std::unique_ptr<NodeConnection>> nodes_;
  const uint32_t vocab_;
  std::vector<size_t> stages_;  // pipeline order -> index into nodes_
  // session -> its Session capability on every stage, in pipeline order.
  std::map<uint64_t, std::vector<wire::Session::Client>> sessions_;
  // session -> where its stages report submitted steps (the server object
  // lives as long as some client of it: this map's, or a node's).
  struct Sink {
    class SessionSink* impl = nullptr;
    wire::StepSink::Client client = nullptr;
  };
  std::map<uint64_t, Sink> sinks_;
  // Steps to the first stage, batched per event-loop turn (made at the first
  // step, once the stages are wired; destroyed before nodes_).
  std::unique_ptr<SubmitQueue> submits_;
};

}  // namespace strata
