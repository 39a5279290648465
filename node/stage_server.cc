#include "node/stage_server.h"

#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <set>

#include "node/compute_thread.h"
#include "node/stage_runtime.h"
#include "protocol/peer_link.h"
#include "protocol/tensor_codec.h"
#include "protocol/version.h"

namespace strata {
namespace {

std::string Hex(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      uint64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

kj::Exception Failed(const std::string& message) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(message.c_str()));
}

}  // namespace

class NodeState : public kj::Refcounted {
 public:
  NodeState(const NodeOptions& options, kj::Timer& timer, kj::Network& network)
      : options_(options), timer_(timer), network_(network),
        compute_([threads = options.threads]() { SetComputeThreads(threads); }), tasks_(error_handler_) {}

  const NodeOptions& options() const { return options_; }
  kj::Timer& timer() { return timer_; }
  kj::Network& network() { return network_; }
  const kj::Executor& compute() { return compute_.executor(); }
  // Only touched inside compute().executeAsync(...) lambdas.
  StageRuntime& runtime() { return runtime_; }
  kj::TaskSet& tasks() { return tasks_; }

  void FillInfo(wire::NodeInfo::Builder info) const {
    info.setName(options_.name);
    info.setProtocolVersion(kProtocolVersion);
    info.setThreads(static_cast<uint32_t>(options_.threads));
    info.setDevice(options_.device);
    uint64_t used = 0;
    KJ_IF_MAYBE(s, shard) {
      used = s->weight_bytes + s->kv_bytes_per_token * session_tokens;
      info.setShardLoaded(true);
      info.setFirstLayer(static_cast<uint32_t>(s->first_layer));
      info.setEndLayer(static_cast<uint32_t>(s->end_layer));
      info.setShardBytes(s->weight_bytes);
    }
    info.setFreeMemoryBytes(options_.memory_budget > used ? options_.memory_budget - used : 0);
    info.setActiveSessions(static_cast<uint32_t>(sessions.size()));
    info.setResidentBytes(ResidentBytes());
  }

  kj::Maybe<LoadedShard> shard;
  std::map<uint64_t, uint64_t> sessions;  // open session -> capacity
  uint64_t session_tokens = 0;            // sum of capacities
  kj::Maybe<kj::Own<PeerLink>> next;  // the connection to the next stage
  // Completes when the last requested load has finished (never fails).
  kj::ForkedPromise<void> load_chain = kj::Promise<void>(kj::READY_NOW).fork();

 private:
  struct ErrorHandler final : kj::TaskSet::ErrorHandler {
    void taskFailed(kj::Exception&& e) override { spdlog::warn("background task failed: {}", e.getDescription().cStr()); }
  };
  NodeOptions options_;
  kj::Timer& timer_;
  kj::Network& network_;
  ComputeThread compute_;
  StageRuntime runtime_;
  ErrorHandler error_handler_;
  kj::TaskSet tasks_;
};

namespace {

// Several coordinators may share a node: asking for the shard it holds keeps
// it, and every open session with it. Anything else replaces the shard.
kj::Promise<Result<LoadedShard>> LoadIfNeeded(kj::Own<NodeState> state, std::string dir, ShardOptions options) {
  KJ_IF_MAYBE(held, state->shard) {
    if (held->model_dir == dir && held->first_layer == options.first_layer && held->end_layer == options.end_layer &&
        held->dtype == options.dtype) {
      return Result<LoadedShard>(*held);
    }
  }
  spdlog::info("loading layers [{}, {}) of {} as {}", options.first_layer, options.end_layer, dir,
               DTypeName(options.dtype));
  state->sessions.clear();  // the runtime drops the old shard's sessions with it
  state->session_tokens = 0;
  state->shard = nullptr;
  NodeState* s = state.get();
  const uint64_t budget = s->options().memory_budget;
  return s->compute()
      .executeAsync([s, dir, options, budget]() { return s->runtime().Load(dir, options, budget); })
      .then([state = kj::mv(state)](Result<LoadedShard>&& loaded) mutable {
        if (loaded.ok()) {
          state->shard = loaded.value();
          spdlog::info("loaded layers [{}, {}): {} MiB of weights, resident {} MiB", loaded->first_layer,
                       loaded->end_layer, loaded->weight_bytes >> 20, ResidentBytes() >> 20);
        } else {
          spdlog::error("load failed: {}", loaded.status().message());
        }
        return kj::mv(loaded);
      });
}

// One Stage capability per hello. Sessions opened through it are closed when
// its holder goes away (a coordinator that disconnects leaks nothing).
class StageImpl final : public wire::Stage::Server {
 public:
  StageImpl(kj::Own<NodeState> state, std::string peer) : state_(kj::mv(state)), peer_(kj::mv(peer)) {}

  ~StageImpl() noexcept(false) {
    for (uint64_t id : owned_) CloseSession(id, "its client disconnected");
  }

  kj::Promise<void> info(InfoContext context) override {
    state_->FillInfo(context.getResults().initInfo());
    return kj::READY_NOW;
  }

  kj::Promise<void> loadShard(LoadShardContext context) override {
    auto spec = context.getParams().getSpec();
    ShardOptions options;
    options.first_layer = spec.getFirstLayer();
    options.end_layer = spec.getEndLayer();
    options.device = state_->options().device;
    if (!FromWire(spec.getDtype(), &options.dtype)) throw Failed("loadShard: unknown dtype");
    std::string dir = spec.getModelDir();
    NodeState* state = state_.get();
    // Loads run one after another: a request that arrives while another
    // loads waits for it, then finds the shard it wants already there.
    auto loaded = state->load_chain.addBranch()
                      .then([ref = kj::addRef(*state_), dir, options]() mutable { return LoadIfNeeded(kj::mv(ref), dir, options); })
                      .fork();
    state->load_chain = loaded.addBranch().ignoreResult().fork();
    return loaded.addBranch().then([state, context](Result<LoadedShard>&& result) mutable {
      if (!result.ok()) throw Failed(result.status().message());
      state->FillInfo(context.getResults().initInfo());
    });
  }

  kj::Promise<void> setNext(SetNextContext context) override {
    std::string address = context.getParams().getAddress();
    state_->next = nullptr;
    if (address.empty()) return kj::READY_NOW;
    NodeState* state = state_.get();
    auto connected = ConnectPeer(state->network(), state->timer(), address, state->options().name,
                                 state->options().connect_timeout_ms);
    return connected
        .then(
            [state, address](kj::Own<PeerLink>&& link) {
              spdlog::info("next stage is {}", address);
              state->next = kj::mv(link);
            },
            [address](kj::Exception&& e) -> void {
              throw Failed("cannot reach next stage at " + address + ": " + e.getDescription().cStr());
            });
  }

  kj::Promise<void> openSession(OpenSessionContext context) override {
    auto params = context.getParams();
    const uint64_t id = params.getSessionId();
    const int64_t capacity = params.getCapacity();
    SamplingOptions sampling;
    sampling.temperature = params.getSampling().getTemperature();
    sampling.top_k = params.getSampling().getTopK();
    sampling.top_p = params.getSampling().getTopP();
    sampling.seed = params.getSampling().getSeed();
    if (!(sampling.temperature >= 0.0f) || !(sampling.top_p > 0.0f)) {
      throw Failed("openSession: temperature must be >= 0 and top_p > 0");
    }
    NodeState* state = state_.get();
    if (state->sessions.count(id)) throw Failed("session " + Hex(id) + " is already open");
    const uint64_t budget = state->options().memory_budget;
    return state->compute()
        .executeAsync([state, id, capacity, sampling, budget]() {
          return state->runtime().Open(id, capacity, sampling, budget);
        })
        .then([this, state, id, capacity](Status&& st) {
          if (!st.ok()) throw Failed(st.message());
          state->sessions[id] = static_cast<uint64_t>(capacity);
          state->session_tokens += static_cast<uint64_t>(capacity);
          owned_.insert(id);
          spdlog::info("session={} opened, capacity {} tokens", Hex(id), capacity);
        });
  }

  kj::Promise<void> closeSession(CloseSessionContext context) override {
    const uint64_t id = context.getParams().getSessionId();
    owned_.erase(id);
    CloseSession(id, "closed by its client");
    return kj::READY_NOW;
  }

  kj::Promise<void> forward(ForwardContext context) override;

 private:
  void CloseSession(uint64_t id, const char* why) {
    NodeState* state = state_.get();
    auto it = state->sessions.find(id);
    if (it == state->sessions.end()) return;
    state->session_tokens -= it->second;
    state->sessions.erase(it);
    spdlog::info("session={} closed: {}", Hex(id), why);
    state->tasks().add(state->compute().executeAsync([state, id]() { state->runtime().Close(id); }));
  }

  kj::Own<NodeState> state_;
  std::string peer_;
  std::set<uint64_t> owned_;  // sessions opened through this capability
};

kj::Promise<void> StageImpl::forward(ForwardContext context) {
  auto params = context.getParams();
  const uint64_t id = params.getSessionId();
  const int64_t start = params.getStartPos();
  const bool want_logits = params.getWantLogits(), sample = params.getSample();
  NodeState* state = state_.get();
  if (state->shard == nullptr) throw Failed("forward: no shard is loaded on node " + state->options().name);
  if (!state->sessions.count(id)) throw Failed("forward: unknown session " + Hex(id));
  StageInput input;
  auto in = params.getInput();
  if (in.isTokens()) {
    for (uint32_t t : in.getTokens()) input.tokens.push_back(static_cast<int32_t>(t));
    if (input.tokens.empty()) throw Failed("forward: empty token list");
  } else {
    std::string error;
    if (!DecodeTensor(in.getHidden(), &input.hidden, &error)) throw Failed("forward: bad hidden states: " + error);
  }
  return state->compute()
      .executeAsync([state, id, start, input = kj::mv(input), sample]() {
        return state->runtime().Step(id, start, input, sample);
      })
      .then([state, context, id, want_logits, sample](Result<StepOutcome>&& step) mutable -> kj::Promise<void> {
        if (!step.ok()) throw Failed(step.status().message());
        auto results = context.getResults().initResult();
        KJ_IF_MAYBE(link, state->next) {
          if (step->output.hidden.data.empty()) throw Failed("forward: the last stage has a next stage set");
          auto request = (*link)->stage.forwardRequest();
          request.setSessionId(id);
          request.setStartPos(context.getParams().getStartPos());
          request.setWantLogits(want_logits);
          request.setSample(sample);
          EncodeTensor(step->output.hidden, request.initInput().initHidden());
          const uint64_t micros = step->micros;
          const std::string address = (*link)->address;
          return state->timer()
              .timeoutAfter(state->options().rpc_timeout_ms * kj::MILLISECONDS, request.send())
              .then(
                  [context, micros](capnp::Response<wire::Stage::ForwardResults>&& r) mutable {
                    auto downstream = r.getResult();
                    auto results = context.getResults().getResult();
                    results.setToken(downstream.getToken());
                    if (downstream.hasLogits()) results.setLogits(downstream.getLogits());
                    auto theirs = downstream.getStageMicros();
                    auto ours = results.initStageMicros(theirs.size() + 1);
                    ours.set(0, micros);
                    for (unsigned i = 0; i < theirs.size(); ++i) ours.set(i + 1, theirs[i]);
                  },
                  [address](kj::Exception&& e) -> void {
                    throw kj::Exception(e.getType(), __FILE__, __LINE__,
                                        kj::str("next stage at ", address.c_str(), " failed: ", e.getDescription()));
                  });
        }
        if (step->output.logits.empty()) throw Failed("forward: this stage is not the last and has no next stage");
        results.setToken(static_cast<uint32_t>(std::max(step->token, 0)));
        if (want_logits) {
          HostTensor logits;
          logits.dtype = TensorDType::kF32;
          logits.shape = {static_cast<int64_t>(step->output.logits.size())};
          const auto* bytes = reinterpret_cast<const uint8_t*>(step->output.logits.data());
          logits.data.assign(bytes, bytes + step->output.logits.size() * sizeof(float));
          EncodeTensor(logits, results.initLogits());
        }
        results.initStageMicros(1).set(0, step->micros);
        return kj::READY_NOW;
      });
}

class NodeImpl final : public wire::Node::Server {
 public:
  explicit NodeImpl(kj::Own<NodeState> state) : state_(kj::mv(state)) {}

  kj::Promise<void> hello(HelloContext context) override {
    auto params = context.getParams();
    std::string peer = params.getPeer();
    if (params.getProtocolVersion() != kProtocolVersion) {
      spdlog::warn("refused {}: protocol version {} (this node speaks {})", peer, params.getProtocolVersion(),
                   kProtocolVersion);
      throw Failed("protocol version mismatch: node '" + state_->options().name + "' speaks " +
                   std::to_string(kProtocolVersion) + ", the peer speaks " +
                   std::to_string(params.getProtocolVersion()));
    }
    spdlog::info("hello from {}", peer);
    state_->FillInfo(context.getResults().initInfo());
    context.getResults().setStage(kj::heap<StageImpl>(kj::addRef(*state_), peer));
    return kj::READY_NOW;
  }

 private:
  kj::Own<NodeState> state_;
};

}  // namespace

wire::Node::Client MakeNodeServer(const NodeOptions& options, kj::Timer& timer, kj::Network& network) {
  return kj::heap<NodeImpl>(kj::refcounted<NodeState>(options, timer, network));
}

}  // namespace strata
