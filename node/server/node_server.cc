#include "node/server/node_server.h"

#include <kj/debug.h>

#include <chrono>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <spdlog/spdlog.h>

#include "base/escape.h"
#include "base/hex.h"
#include "base/system_memory.h"
#include "node/server/node_state.h"
#include "node/server/stage_step.h"
#include "protocol/node_status.h"
#include "protocol/rpc_error.h"
#include "protocol/tensor_codec.h"
#include "protocol/version.h"

namespace strata {
namespace {

Bytes ToBytes(capnp::Data::Reader d) { return Bytes(d.begin(), d.end()); }

// Whether `dir` (resolved: no symlink or ".." escapes) lies under one of `roots`.
bool UnderModelRoots(const std::string& dir, const std::vector<std::string>& roots) {
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) == nullptr) return !roots.empty();  // missing: the load says so
  const std::string path = resolved;
  for (const std::string& root : roots) {
    if (root == "/" || path == root || path.rfind(root + "/", 0) == 0) return true;
  }
  return false;
}

// A peer's text with every byte, an embedded NUL included (a plain
// conversion stops at the first NUL: "m\0/../../etc" would read as "m").
std::string WholeText(capnp::Text::Reader text) { return std::string(text.begin(), text.size()); }

// Where a shard comes from: a directory on this node, or a coordinator's
// model server (fetched into the cache, verified, first).
struct ShardSource {
  std::string dir;       // the directory, or "model:ID" for a fetched one
  std::string url, model_id, token;
};

// Fetches the shard into the cache if it is not there (the fetch thread).
Result<std::string> Fetched(NodeState* s, const ShardSource& source, const ShardOptions& options,
                            std::shared_ptr<std::atomic<bool>> cancel) {
  if (s->options().cache_dir.empty()) return Status::Error("this node has no --cache-dir to fetch shards into");
  FetchOptions fetch;
  fetch.base_url = source.url;
  fetch.token = source.token;
  fetch.cache_dir = s->options().cache_dir;
  fetch.cache_limit = s->options().cache_limit;
  fetch.progress = &s->fetch_progress;
  fetch.cancel = cancel.get();
  if (s->options().tls != nullptr) {
    const TlsFiles& tls = s->options().tls_files;
    fetch.tls = {tls.ca, tls.cert, tls.key};
  }
  s->fetch_progress.done = 0;
  s->fetch_progress.total = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto fetched = FetchShard(*s->options().env, fetch, source.model_id, options.first_layer, options.end_layer);
  if (!fetched.ok()) {
    if (cancel->load()) return Status::Error("the fetch from " + EscapeText(source.url) + " was replaced by a later load");
    return fetched.status();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("shard [{}, {}) of model {}: {} bytes fetched from {} in {:.3f} s ({:.1f} MiB/s), {} tensors fetched "
               "again after a bad hash",
               options.first_layer, options.end_layer, source.model_id.substr(0, 12), fetched->fetched_bytes,
               EscapeText(source.url), seconds, fetched->fetched_bytes / 1048576.0 / std::max(seconds, 1e-9),
               fetched->refetched_tensors);
  return fetched->dir;
}

// Where the shard's files are: its directory, or (from a model source) the
// cache once the fetch thread has them there. The shard held until now
// stays, serving, while they come; a failed fetch leaves it as it was.
kj::Promise<Result<std::string>> ShardFiles(NodeState* s, const ShardSource& source, const ShardOptions& options,
                                            std::shared_ptr<std::atomic<bool>> cancel) {
  if (source.url.empty()) return Result<std::string>(source.dir);
  return s->fetcher().Run([s, source, options, cancel]() -> Result<std::string> {
    try {
      return Fetched(s, source, options, cancel);
    } catch (const std::exception& e) {
      return Status::Error("fetching the shard failed: " + EscapeText(e.what(), 200));
    }
  });
}

// Several coordinators may share a node: asking for the shard it holds keeps
// it, and every open session with it. Anything else replaces the shard, once
// its files are here.
kj::Promise<Result<LoadedShard>> LoadIfNeeded(kj::Own<NodeState> state, ShardSource source, ShardOptions options,
                                              std::shared_ptr<std::atomic<bool>> cancel) {
  KJ_IF_MAYBE(held, state->shard) {
    if (held->model_dir == source.dir && held->first_layer == options.first_layer &&
        held->end_layer == options.end_layer && held->dtype == options.dtype) {
      return Result<LoadedShard>(*held);
    }
  }
  spdlog::info("loading layers [{}, {}) of {} as {}", options.first_layer, options.end_layer, EscapeText(source.dir),
               DTypeName(options.dtype));
  NodeState* s = state.get();
  return ShardFiles(s, source, options, cancel)
      .then([state = kj::mv(state), source, options](Result<std::string>&& files) mutable
            -> kj::Promise<Result<LoadedShard>> {
        if (!files.ok()) return Result<LoadedShard>(files.status());
        state->ForgetSessions();  // the runtime drops the old shard's sessions with it
        state->shard = nullptr;
        NodeState* s = state.get();
        return s->compute()
            .Run([s, from = files.value(), source, options]() -> Result<LoadedShard> {
              // Nothing thrown on the compute thread may poison the load chain.
              try {
                auto loaded = s->runtime().Load(from, options);
                if (loaded.ok()) loaded->model_dir = source.dir;  // what a later loadShard names
                return loaded;
              } catch (const std::exception& e) {
                return Status::Error("loading the shard failed: " + EscapeText(e.what(), 200));
              }
            })
            .then([state = kj::mv(state)](Result<LoadedShard>&& loaded) mutable {
              if (loaded.ok()) {
                state->shard = loaded.value();
                spdlog::info("loaded layers [{}, {}): {} MiB of weights, resident {} MiB", loaded->first_layer,
                             loaded->end_layer, loaded->weight_bytes >> 20, ResidentBytesOf() >> 20);
              }
              return kj::mv(loaded);
            });
      })
      .then([](Result<LoadedShard>&& loaded) {
        if (!loaded.ok()) spdlog::error("load failed: {}", loaded.status().message());
        return kj::mv(loaded);
      });
}

// A conversation's capability. Dropping it (or its holder disconnecting)
// closes the session and frees its KV cache — unless it is a kept session,
// which waits to be resumed.
class SessionImpl final : public wire::Session::Server {
 public:
  SessionImpl(kj::Own<NodeState> state, Bytes ticket) : state_(kj::mv(state)), ticket_(kj::mv(ticket)) {}
  ~SessionImpl() noexcept(false) { state_->ReleaseSession(ticket_); }

  kj::Promise<void> close(CloseContext context) override {
    state_->CloseSession(ticket_, "closed by its client");
    return kj::READY_NOW;
  }
  kj::Promise<void> setSink(SetSinkContext context) override {
    auto found = state_->sessions.find(ticket_);
    if (found == state_->sessions.end()) throw RpcError("setSink: the session is closed");
    found->second.sink = std::make_shared<wire::StepSink::Client>(context.getParams().getSink());
    return kj::READY_NOW;
  }
  kj::Promise<void> submit(SubmitContext context) override {
    return SubmitStep(kj::addRef(*state_), ticket_, 0, context.getParams().getStep());
  }
  kj::Promise<void> halt(HaltContext context) override {
    auto found = state_->sessions.find(ticket_);
    if (found != state_->sessions.end()) found->second.halts->fetch_add(1);
    return kj::READY_NOW;
  }
  const Bytes& ticket() const { return ticket_; }

 private:
  kj::Own<NodeState> state_;
  const Bytes ticket_;
};

// The most members one batch message may carry.
constexpr unsigned kMaxBatchMembers = 1024;

// What the previous stage holds: it may hand on steps of sessions whose
// tickets its coordinator gave it, and nothing else.
class UpstreamImpl final : public wire::Upstream::Server {
 public:
  explicit UpstreamImpl(kj::Own<NodeState> state) : state_(kj::mv(state)) {}

  kj::Promise<void> submit(SubmitContext context) override {
    auto params = context.getParams();
    return SubmitStep(kj::addRef(*state_), ToBytes(params.getTicket()), params.getHop(), params.getStep());
  }
  kj::Promise<void> submitBatch(SubmitBatchContext context) override {
    auto params = context.getParams();
    auto steps = params.getSteps();
    if (steps.size() > kMaxBatchMembers) throw RpcError("submitBatch: over 1024 steps in one batch");
    // All members are queued in this one turn, so they are batched together.
    for (auto member : steps) SubmitBatchMember(*state_, ToBytes(member.getTicket()), params.getHop(), member.getStep());
    return kj::READY_NOW;
  }

 private:
  kj::Own<NodeState> state_;
};

// The coordinator's rights over this node.
class ControlImpl final : public wire::Control::Server {
 public:
  explicit ControlImpl(kj::Own<NodeState> state) : state_(kj::mv(state)) {}

  kj::Promise<void> info(InfoContext context) override {
    state_->FillInfo(context.getResults().initInfo());
    return kj::READY_NOW;
  }

  kj::Promise<void> canOpen(CanOpenContext context) override {
    const std::string dir = WholeText(context.getParams().getModelDir());
    if (dir.empty() || dir.size() > 4096 || dir.find('\0') != std::string::npos) {
      throw RpcError("canOpen: the model directory must be a path of 1..4096 bytes");
    }
    struct stat st {};
    const bool there = ::stat(dir.c_str(), &st) == 0 &&
                       (S_ISDIR(st.st_mode) ? ::access((dir + "/config.json").c_str(), R_OK) == 0
                                            : S_ISREG(st.st_mode) && ::access(dir.c_str(), R_OK) == 0);
    context.getResults().setReadable(there && UnderModelRoots(dir, state_->options().model_roots));
    return kj::READY_NOW;
  }

  kj::Promise<void> loadShard(LoadShardContext context) override {
    auto spec = context.getParams().getSpec();
    ShardOptions options;
    options.first_layer = spec.getFirstLayer();
    options.end_layer = spec.getEndLayer();
    options.device = state_->options().device;
    if (!FromWire(spec.getDtype(), &options.dtype)) throw RpcError("loadShard: unknown dtype");
    ShardSource source;
    if (spec.hasSource() && spec.getSource().getUrl().size() > 0) {
      auto s = spec.getSource();
      source.url = s.getUrl();
      source.model_id = s.getModelId();
      source.token = s.getToken();
      // A --tls node takes its shards over https from a member, and only so.
      const char* scheme = state_->options().tls != nullptr ? "https://" : "http://";
      if (source.url.rfind(scheme, 0) != 0 || source.url.size() > 512 ||
          source.url.find_first_of(" \r\n\t") != std::string::npos) {
        throw RpcError(std::string("loadShard: a model source is an ") + scheme + " URL of at most 512 bytes");
      }
      if (!IsLowerHex(source.model_id, 64) || source.token.size() > 128 || !IsLowerHex(source.token, source.token.size())) {
        throw RpcError("loadShard: a model id is 64 hex digits, a token at most 128");
      }
      source.dir = "model:" + source.model_id;
    } else {
      source.dir = WholeText(spec.getModelDir());
      if (source.dir.empty() || source.dir.size() > 4096 || source.dir.find('\0') != std::string::npos) {
        throw RpcError("loadShard: the model directory must be a path of 1..4096 bytes");
      }
      if (!UnderModelRoots(source.dir, state_->options().model_roots)) {
        throw RpcError("loadShard: node " + state_->options().name + " loads models only from its --models-dir or " +
                     "its cache; fetch this one with `strata generate --distribute`");
      }
    }
    NodeState* state = state_.get();
    // A fetch still in flight is for a load this one replaces: it stops now.
    state->fetch_cancel->store(true);
    state->fetch_cancel = std::make_shared<std::atomic<bool>>(false);
    // Loads run one after another: a request that arrives while another
    // loads waits for it, then finds the shard it wants already there.
    auto loaded = state->load_chain.addBranch()
                      .then([ref = kj::addRef(*state_), source, options, cancel = state->fetch_cancel]() mutable {
                        return LoadIfNeeded(kj::mv(ref), source, options, cancel);
                      })
                      .fork();
    // The chain must never reject, or every later load would fail with it.
    state->load_chain = loaded.addBranch().ignoreResult().catch_([](kj::Exception&&) {}).fork();
    return loaded.addBranch().then([state, context](Result<LoadedShard>&& result) mutable {
      if (!result.ok()) throw RpcError(result.status().message());
      state->FillInfo(context.getResults().initInfo());
    });
  }

  kj::Promise<void> setNext(SetNextContext context) override;
  kj::Promise<void> openSession(OpenSessionContext context) override;
  kj::Promise<void> resumeSession(ResumeSessionContext context) override;
  kj::Promise<void> submitBatch(SubmitBatchContext context) override;

 private:
  kj::Own<NodeState> state_;
};

kj::Promise<void> ControlImpl::setNext(SetNextContext context) {
  auto params = context.getParams();
  const std::string address = params.getAddress();
  const uint32_t index = params.getStageIndex(), count = params.getStageCount();
  if (count == 0 || count > 1024 || index >= count) {
    throw RpcError("setNext: stage " + std::to_string(index) + " of " + std::to_string(count) + " is impossible");
  }
  const bool last = index + 1 == count;
  if (last != address.empty()) {
    throw RpcError(last ? "setNext: the last stage of a pipeline cannot have a next stage"
                      : "setNext: stage " + std::to_string(index) + " of " + std::to_string(count) +
                            " needs a next stage");
  }
  NodeState* state = state_.get();
  if (last) {
    state->next = nullptr;
    state->stage_index = index;
    state->stage_count = count;
    return kj::READY_NOW;
  }
  // A failed link keeps the old one: the new one replaces it only once it
  // has answered an authenticated hello and is not this node itself.
  auto connected = ConnectPeer(state->network(), state->timer(), address, state->security(), wire::PeerRole::STAGE,
                               state->options().name, state->options().connect_timeout_ms);
  return connected.then(
      [state, address, index, count](kj::Own<PeerLink>&& link) {
        if (link->node_id == state->node_id()) {
          throw RpcError("setNext: " + EscapeText(address) + " is this node itself; a stage cannot forward to itself");
        }
        spdlog::info("stage {} of {}; next stage is {}", index, count, EscapeText(address));
        state->next = kj::mv(link);
        state->stage_index = index;
        state->stage_count = count;
      },
      [address](kj::Exception&& e) -> void {
        // One answer for every failure: the reply must not tell a closed
        // port from a filtered one or from a stranger's server.
        spdlog::warn("setNext to {} failed: {}", EscapeText(address), EscapeText(e.getDescription().cStr()));
        throw RpcError("setNext: " + EscapeText(address) + " did not answer an authenticated hello of this cluster");
      });
}

kj::Promise<void> ControlImpl::openSession(OpenSessionContext context) {
  auto params = context.getParams();
  NodeState* state = state_.get();
  const LoadedShard* shard = nullptr;
  KJ_IF_MAYBE(s, state->shard) { shard = s; }
  if (shard == nullptr) throw RpcError("openSession: no shard is loaded on node " + state->options().name);
  const uint32_t capacity = params.getCapacity();
  if (capacity == 0 || capacity > shard->context) {
    throw RpcError("openSession: capacity " + std::to_string(capacity) + " is outside 1.." +
                 std::to_string(shard->context) + " (the model's context)");
  }
  if (state->sessions.size() >= state->options().max_sessions) {
    throw RpcError("openSession: node " + state->options().name + " has its maximum of " +
                 std::to_string(state->options().max_sessions) + " sessions open");
  }
  const bool last = state->stage_index + 1 == state->stage_count;
  Bytes downstream = ToBytes(params.getDownstreamTicket());
  if (last ? !downstream.empty() : downstream.size() != kTicketBytes) {
    throw RpcError(last ? "openSession: the last stage takes no downstream ticket"
                      : "openSession: a downstream ticket of " + std::to_string(kTicketBytes) + " bytes is required");
  }
  SamplingOptions sampling;
  sampling.temperature = params.getSampling().getTemperature();
  sampling.top_k = params.getSampling().getTopK();
  sampling.top_p = params.getSampling().getTopP();
  sampling.seed = params.getSampling().getSeed();
  if (!(sampling.temperature >= 0.0f && sampling.temperature <= 1000.0f) ||
      !(sampling.top_p > 0.0f && sampling.top_p <= 1.0f)) {
    throw RpcError("openSession: temperature must be in 0..1000 and top_p in (0, 1]");
  }
  Bytes keep_key = ToBytes(params.getKeepKey());
  if (!keep_key.empty() && keep_key.size() != kTicketBytes) {
    throw RpcError("openSession: a keep key must be " + std::to_string(kTicketBytes) + " bytes");
  }
  if (!keep_key.empty() && state->kept.count(keep_key)) throw RpcError("openSession: that keep key is in use");
  const uint64_t id = state->next_session_id++;
  return state->compute()
      .Run([state, id, capacity, sampling]() { return state->runtime().Open(id, capacity, sampling); })
      .then([state, context, id, capacity, downstream = kj::mv(downstream), keep_key = kj::mv(keep_key)](Status&& st) mutable {
        if (!st.ok()) throw RpcError(st.message());
        if (!keep_key.empty() && state->kept.count(keep_key)) {
          state->tasks().add(state->compute().Run([state, id]() { state->runtime().Close(id); }));
          throw RpcError("openSession: that keep key is in use");
        }
        Bytes ticket = RandomBytes(kTicketBytes);
        SessionEntry entry;
        entry.id = id;
        entry.capacity = capacity;
        entry.downstream_ticket = kj::mv(downstream);
        entry.keep_key = keep_key;
        state->sessions[ticket] = kj::mv(entry);
        if (!keep_key.empty()) state->kept[keep_key] = ticket;
        spdlog::info("session={} opened, capacity {} tokens{}", HexId(id), capacity, keep_key.empty() ? "" : ", kept");
        auto results = context.getResults();
        results.setTicket(kj::arrayPtr(ticket.data(), ticket.size()));
        results.setSession(state->session_caps.add(kj::heap<SessionImpl>(kj::addRef(*state), kj::mv(ticket))));
      });
}

kj::Promise<void> ControlImpl::resumeSession(ResumeSessionContext context) {
  NodeState* state = state_.get();
  const Bytes key = ToBytes(context.getParams().getKeepKey());
  auto kept = key.size() == kTicketBytes ? state->kept.find(key) : state->kept.end();
  // One answer whether the key is unknown, expired or malformed.
  if (kept == state->kept.end()) throw RpcError("resumeSession: no kept session has that id on this node (expired?)");
  const Bytes ticket = kept->second;
  SessionEntry& entry = state->sessions.at(ticket);
  if (entry.attached) throw RpcError("resumeSession: that session is in use by another client");
  entry.attached = true;
  ++entry.detachments;
  const uint64_t id = entry.id;
  const uint32_t capacity = entry.capacity;
  state->runtime().Prefetch(id);  // its KV starts coming back from NVMe now
  return state->compute()
      .Run([state, id]() { return state->runtime().Length(id); })
      .then([state, context, ticket, id, capacity](Result<int64_t>&& length) mutable {
        if (!length.ok()) throw RpcError("resumeSession: " + length.status().message());
        spdlog::info("session={} resumed at {} tokens", HexId(id), length.value());
        auto results = context.getResults();
        results.setLength(static_cast<uint32_t>(length.value()));
        results.setCapacity(capacity);
        results.setSession(state->session_caps.add(kj::heap<SessionImpl>(kj::addRef(*state), ticket)));
      });
}

kj::Promise<void> ControlImpl::submitBatch(SubmitBatchContext context) {
  auto steps = context.getParams().getSteps();
  if (steps.size() > kMaxBatchMembers) throw RpcError("submitBatch: over 1024 steps in one batch");
  // Each member names its session by capability: resolve them all first, so
  // that a foreign capability refuses the whole call before any member runs.
  kj::Vector<kj::Promise<kj::Maybe<wire::Session::Server&>>> lookups;
  for (auto member : steps) {
    auto session = member.getSession();
    lookups.add(state_->session_caps.getLocalServer(session));
  }
  return kj::joinPromises(lookups.releaseAsArray())
      .then([state = kj::addRef(*state_), context](kj::Array<kj::Maybe<wire::Session::Server&>> servers) mutable {
        std::vector<Bytes> tickets;
        for (size_t i = 0; i < servers.size(); ++i) {
          KJ_IF_MAYBE(server, servers[i]) {
            tickets.push_back(static_cast<SessionImpl&>(*server).ticket());
          } else {
            throw RpcError("submitBatch: member " + std::to_string(i) + " is not a session this node opened");
          }
        }
        auto steps = context.getParams().getSteps();
        for (size_t i = 0; i < tickets.size(); ++i) SubmitBatchMember(*state, tickets[i], 0, steps[i].getStep());
      });
}

// The bootstrap of one connection: the challenge-response of peer_auth.h,
// then the capability of the peer's role. One challenge and one hello per
// connection; the nonce is this connection's alone, so a hello recorded
// elsewhere proves nothing here.
class NodeImpl final : public wire::Node::Server {
 public:
  NodeImpl(kj::Own<NodeState> state, kj::Own<ConnectionState> connection)
      : state_(kj::mv(state)), connection_(kj::mv(connection)) {}

  kj::Promise<void> challenge(ChallengeContext context) override {
    auto params = context.getParams();
    CheckVersion(params.getProtocolVersion());
    if (challenged_) throw Refuse("a second challenge on one connection");
    const Bytes client_nonce = ToBytes(params.getClientNonce());
    if (client_nonce.size() != kNonceBytes) throw Refuse("a malformed challenge");
    challenged_ = true;
    server_nonce_ = RandomBytes(kNonceBytes);
    client_nonce_ = client_nonce;
    auto results = context.getResults();
    results.setServerNonce(kj::arrayPtr(server_nonce_.data(), server_nonce_.size()));
    results.setNodeId(kj::arrayPtr(state_->node_id().data(), state_->node_id().size()));
    if (!state_->options().secret.empty()) {
      const Bytes proof = ServerProof(state_->options().secret, kProtocolVersion, client_nonce_, server_nonce_);
      results.setServerProof(kj::arrayPtr(proof.data(), proof.size()));
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> hello(HelloContext context) override {
    auto params = context.getParams();
    CheckVersion(params.getProtocolVersion());
    if (!challenged_) throw Refuse("a hello without a challenge");
    if (hello_done_) throw Refuse("a second hello on one connection");
    hello_done_ = true;  // the nonce is spent, whatever happens next
    const std::string peer = params.getPeer();
    if (peer.size() > 128) throw Refuse("a peer name over 128 bytes");
    const auto role = params.getRole();
    if (role != wire::PeerRole::COORDINATOR && role != wire::PeerRole::STAGE) throw Refuse("an unknown role");
    const ClusterSecret& secret = state_->options().secret;
    if (!secret.empty()) {
      const Bytes expected = ClientProof(secret, kProtocolVersion, static_cast<uint32_t>(role), peer, server_nonce_,
                                         client_nonce_);
      if (!ProofsEqual(ToBytes(params.getClientProof()), expected)) {
        throw Refuse("a hello that does not prove the cluster secret");
      }
    }
    const CoordinatorPub* pub = state_->options().coordinator_pub;
    if (role == wire::PeerRole::COORDINATOR && pub != nullptr &&
        !pub->Verify(CoordinatorTranscript(kProtocolVersion, state_->node_id(), server_nonce_, client_nonce_, peer),
                     ToBytes(params.getCoordinatorSignature()))) {
      throw Refuse("a coordinator's hello not signed with this cluster's coordinator key (--coordinator-key)");
    }
    connection_->authenticated = true;
    spdlog::info("hello from {} at {} as {}", EscapeText(peer, 64), connection_->peer,
                 role == wire::PeerRole::COORDINATOR ? "coordinator" : "stage");
    auto results = context.getResults();
    state_->FillInfo(results.initInfo());
    if (role == wire::PeerRole::COORDINATOR) {
      results.setControl(kj::heap<ControlImpl>(kj::addRef(*state_)));
    } else {
      results.setUpstream(kj::heap<UpstreamImpl>(kj::addRef(*state_)));
    }
    return kj::READY_NOW;
  }

 private:
  void CheckVersion(uint32_t version) {
    if (version == kProtocolVersion) return;
    throw Refuse("protocol version " + std::to_string(version) + " (node '" + state_->options().name + "' speaks " +
                 std::to_string(kProtocolVersion) + ")");
  }

  // One warning per address per minute; the peer learns only that it was refused.
  kj::Exception Refuse(const std::string& what) {
    if (state_->refusals().ShouldLog(connection_->peer)) {
      spdlog::warn("refused {}: {} (further refusals of this address are not logged for a minute)",
                   connection_->peer, what);
    }
    return RpcError("refused by node '" + state_->options().name + "': " + what);
  }

  kj::Own<NodeState> state_;
  kj::Own<ConnectionState> connection_;
  bool challenged_ = false, hello_done_ = false;
  Bytes server_nonce_, client_nonce_;
};

}  // namespace

NodeServer::NodeServer(const NodeOptions& options, kj::Timer& timer, kj::Network& network)
    : state_(kj::refcounted<NodeState>(options, timer, network)) {}
NodeServer::~NodeServer() = default;

const Bytes& NodeServer::node_id() const { return state_->node_id(); }

std::string NodeServer::MetricsText() const {
  capnp::MallocMessageBuilder message;
  auto info = message.initRoot<wire::NodeInfo>();
  state_->FillInfo(info);
  NodeMetricsRow row;
  row.status = ReadNodeInfo(info.asReader(), "");
  row.labels = "node=\"" + EscapePromLabel(row.status.name) + "\"";
  return NodeMetricsText({row});
}

wire::Node::Client NodeServer::Bootstrap(kj::Own<ConnectionState> connection) {
  return kj::heap<NodeImpl>(kj::addRef(*state_), kj::mv(connection));
}

}  // namespace strata
