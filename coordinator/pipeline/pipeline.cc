#include "coordinator/pipeline/pipeline.h"

#include <memory>

#include <unistd.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "base/escape.h"
#include "base/progress_line.h"
#include "protocol/peer_link.h"
#include "protocol/tensor_codec.h"
#include "protocol/version.h"

namespace strata {
namespace {

void SetSampling(wire::SamplingParams::Builder s, const SamplingParams& sampling) {
  s.setTemperature(sampling.temperature);
  s.setTopK(sampling.top_k);
  s.setTopP(sampling.top_p);
  s.setSeed(sampling.seed);
}

}  // namespace

std::string ExceptionText(const kj::Exception& e) {
  std::string text;
  for (const char* p = e.getDescription().cStr(); *p != '\0' && text.size() < 2000; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c == 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      text += hex;
    } else {
      text += static_cast<char>(c);
    }
  }
  // KJ's own prefixes name how the error travelled, not what it is.
  for (const std::string prefix : {"remote exception: ", "std::exception: "}) {
    for (size_t at; (at = text.find(prefix)) != std::string::npos;) text.erase(at, prefix.size());
  }
  if (e.getType() == kj::Exception::Type::DISCONNECTED && text.find("disconnect") == std::string::npos) {
    text += " (disconnected)";
  }
  return text;
}

RpcEnv::RpcEnv(kj::AsyncIoContext& io, Timeouts timeouts, LinkSecurity security)
    : io_(io), timeouts_(timeouts), security_(security), interrupted_(io.unixEventPort.onSignal(SIGINT).ignoreResult().fork()) {}

namespace {

// `promise`, or a failure once `timeout_ms` pass; `*timed_out` says which
// failure it was, set by the deadline itself (never read from a message).
template <typename T>
kj::Promise<T> WithDeadline(kj::Timer& timer, kj::Promise<T>&& promise, uint32_t timeout_ms, std::shared_ptr<bool> timed_out) {
  return promise.exclusiveJoin(timer.afterDelay(timeout_ms * kj::MILLISECONDS).then([timed_out]() -> T {
    *timed_out = true;
    throw kj::Exception(kj::Exception::Type::OVERLOADED, __FILE__, __LINE__, kj::str("deadline passed"));
  }));
}

}  // namespace

template <typename T>
T RpcEnv::Await(kj::Promise<T>&& promise, uint32_t timeout_ms, const std::string& what) {
  auto interrupt = interrupted_.addBranch().then([]() -> T {
    throw kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str("interrupted (Ctrl-C)"));
  });
  // timeout_ms 0: the promise bounds its own steps (a whole generation).
  auto timed_out = std::make_shared<bool>(false);
  auto bounded = timeout_ms == 0 ? kj::mv(promise) : WithDeadline(io_.provider->getTimer(), kj::mv(promise), timeout_ms, timed_out);
  try {
    return bounded.exclusiveJoin(kj::mv(interrupt)).wait(io_.waitScope);
  } catch (const kj::Exception& e) {
    throw PipelineError((what.empty() ? "" : what + ": ") +
                        (*timed_out ? "timed out after " + std::to_string(timeout_ms) + " ms" : ExceptionText(e)));
  }
}

template <typename T>
kj::Promise<T> RpcEnv::Bound(kj::Promise<T>&& promise, uint32_t timeout_ms, const std::string& what) {
  auto timed_out = std::make_shared<bool>(false);
  return WithDeadline(io_.provider->getTimer(), kj::mv(promise), timeout_ms, timed_out)
      .catch_([what, timeout_ms, timed_out](kj::Exception&& e) -> kj::Promise<T> {
        return kj::Exception(e.getType(), __FILE__, __LINE__,
                             kj::str(what, ": ", *timed_out ? "timed out after " + std::to_string(timeout_ms) + " ms" : ExceptionText(e)));
      });
}

// For the generation driver's front ends, which wait for a whole generation.
template void RpcEnv::Await<void>(kj::Promise<void>&& promise, uint32_t timeout_ms, const std::string& what);
// For the CLI, which waits at its edge for a resumed session's length and capacity.
template std::pair<uint32_t, uint32_t> RpcEnv::Await<std::pair<uint32_t, uint32_t>>(
    kj::Promise<std::pair<uint32_t, uint32_t>>&& promise, uint32_t timeout_ms, const std::string& what);
// For the CLI's start: the nodes' hellos (or one's), a node's status, which nodes lack the model.
template std::vector<std::unique_ptr<NodeConnection>> RpcEnv::Await<std::vector<std::unique_ptr<NodeConnection>>>(
    kj::Promise<std::vector<std::unique_ptr<NodeConnection>>>&& promise, uint32_t timeout_ms, const std::string& what);
template std::unique_ptr<NodeConnection> RpcEnv::Await<std::unique_ptr<NodeConnection>>(
    kj::Promise<std::unique_ptr<NodeConnection>>&& promise, uint32_t timeout_ms, const std::string& what);
template NodeStatus RpcEnv::Await<NodeStatus>(kj::Promise<NodeStatus>&& promise, uint32_t timeout_ms,
                                              const std::string& what);
template std::vector<std::string> RpcEnv::Await<std::vector<std::string>>(
    kj::Promise<std::vector<std::string>>&& promise, uint32_t timeout_ms, const std::string& what);

kj::Promise<std::vector<std::unique_ptr<NodeConnection>>> ConnectNodes(RpcEnv& env,
                                                                       const std::vector<std::string>& addresses,
                                                                       bool leave_out_unreachable) {
  // All at once; a failure is kept until every hello ends, so the one
  // reported is the first node in order that did not answer.
  kj::Vector<kj::Promise<kj::Maybe<kj::Exception>>> hellos;
  auto nodes = kj::heap<std::vector<std::unique_ptr<NodeConnection>>>(addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) {
    auto* slot = &(*nodes)[i];
    hellos.add(NodeConnection::Connect(env, addresses[i])
                   .then([slot](std::unique_ptr<NodeConnection>&& c) -> kj::Maybe<kj::Exception> {
                     *slot = std::move(c);
                     return nullptr;
                   },
                         [](kj::Exception&& e) -> kj::Maybe<kj::Exception> { return kj::mv(e); }));
  }
  return kj::joinPromises(hellos.releaseAsArray())
      .then([nodes = kj::mv(nodes), leave_out_unreachable](kj::Array<kj::Maybe<kj::Exception>> failures) mutable
            -> kj::Promise<std::vector<std::unique_ptr<NodeConnection>>> {
        std::vector<std::unique_ptr<NodeConnection>> answered;
        kj::Maybe<kj::Exception> first;
        for (size_t i = 0; i < failures.size(); ++i) {
          KJ_IF_MAYBE(e, failures[i]) {
            if (!leave_out_unreachable) return kj::mv(*e);
            spdlog::warn("left out: {}", ExceptionText(*e));
            if (first == nullptr) first = kj::mv(*e);
          } else {
            answered.push_back(std::move((*nodes)[i]));
          }
        }
        KJ_IF_MAYBE(e, first) {
          if (answered.empty()) return kj::mv(*e);
        }
        return answered;
      });
}

kj::Promise<std::unique_ptr<NodeConnection>> NodeConnection::Connect(RpcEnv& env, const std::string& address) {
  // ConnectPeer bounds the hello by its own timeout; Bound names the address.
  auto hello = ConnectPeer(env.io().provider->getNetwork(), env.io().provider->getTimer(), address, env.security(),
                           wire::PeerRole::COORDINATOR, "coordinator", env.timeouts().connect_ms);
  return env.Bound(kj::mv(hello), env.timeouts().connect_ms + 1000, "cannot reach node at " + address)
      .then([address](kj::Own<PeerLink>&& link) {
        std::unique_ptr<NodeConnection> c(new NodeConnection());
        c->address_ = address;
        c->link_ = kj::mv(link);
        c->hello_status_ = ReadNodeInfo(c->link_->info(), address);
        return c;
      });
}

kj::Promise<NodeStatus> NodeConnection::Status(RpcEnv& env) {
  return env.Bound(control().infoRequest().send(), env.timeouts().connect_ms, Label())
      .then([this](capnp::Response<wire::Control::InfoResults>&& reply) { return ReadNodeInfo(reply.getInfo(), address_); });
}

std::string NodeConnection::Label() const { return "node " + hello_status_.name + " (" + address_ + ")"; }

Pipeline::Pipeline(RpcEnv& env, std::vector<std::unique_ptr<NodeConnection>> nodes, uint32_t vocab)
    : env_(env), nodes_(std::move(nodes)), vocab_(vocab) {}

std::vector<NodeCapacity> Pipeline::Capacities() const {
  std::vector<NodeCapacity> out;
  for (const auto& n : nodes_) {
    NodeCapacity c{n->hello_status().name, n->address(), n->hello_status().free_bytes};
    c.bandwidth_gbps = n->hello_status().bandwidth_gbps;
    c.compute_gflops = n->hello_status().compute_gflops;
    for (const auto& t : n->hello_status().tiers) {
      if (t.name == "nvme" && t.budget > t.used) c.nvme_free_bytes = t.budget - t.used;
    }
    out.push_back(c);
  }
  return out;
}

// Every 250 ms until `done`: asks each loading node how far its fetch is and
// redraws one line per node (in place on a terminal, every second otherwise).
kj::Promise<void> Pipeline::DrawFetchProgress(kj::Own<bool> done, std::chrono::steady_clock::time_point start,
                                              int ticks) {
  return env_.io().provider->getTimer().afterDelay(250 * kj::MILLISECONDS).then([this, done = kj::mv(done), start, ticks]() mutable -> kj::Promise<void> {
    if (*done) return kj::READY_NOW;
    kj::Vector<kj::Promise<std::string>> lines;
    for (size_t i = 0; i < stages_.size(); ++i) {
      NodeConnection& node = stage_node(i);
      const std::string name = node.hello_status().name;
      lines.add(node.control().infoRequest().send().then(
          [name, start](capnp::Response<wire::Control::InfoResults>&& r) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            return ProgressLine(name, r.getInfo().getFetchDoneBytes(), r.getInfo().getFetchTotalBytes(), s);
          },
          [name](kj::Exception&&) { return name + " (no answer)"; }));
    }
    return kj::joinPromises(lines.releaseAsArray()).then([this, done = kj::mv(done), start, ticks](kj::Array<std::string> text) mutable {
      const bool tty = ::isatty(2);
      if (tty || ticks % 4 == 3) {
        std::string out;
        for (const auto& l : text) out += l + "\n";
        if (tty && ticks > 0) std::fprintf(stderr, "\x1b[%zuA", text.size());  // back over the last drawing
        std::fputs(out.c_str(), stderr);
      }
      return DrawFetchProgress(kj::mv(done), start, ticks + 1);
    });
  });
}

kj::Promise<std::vector<std::string>> Pipeline::CannotOpen(const std::string& model_dir, const ShardPlan& plan) {
  kj::Vector<kj::Promise<std::string>> asked;  // a label, or "" where the node can read it
  for (const auto& stage : plan.stages) {
    NodeConnection& node = *nodes_[stage.node];
    auto request = node.control().canOpenRequest();
    request.setModelDir(model_dir);
    asked.add(env_.Bound(request.send(), env_.timeouts().connect_ms, node.Label())
                  .then([label = node.Label()](capnp::Response<wire::Control::CanOpenResults>&& r) {
                    return r.getReadable() ? std::string() : label;
                  }));
  }
  return kj::joinPromises(asked.releaseAsArray()).then([](kj::Array<std::string> labels) {
    std::vector<std::string> out;
    for (auto& l : labels) {
      if (!l.empty()) out.push_back(kj::mv(l));
    }
    return out;
  });
}

kj::Promise<void> Pipeline::Load(const std::string& model_dir, const ShardPlan& plan, TensorDType dtype,
                                 const Source* source) {
  stages_.clear();
  submits_.reset();  // the first stage may change
  lost_ = nullptr;   // watches the new stages from the next step on
  for (const auto& s : plan.stages) stages_.push_back(s.node);
  // Every node loads at once; the error of the first that fails is reported,
  // naming it.
  kj::Vector<kj::Promise<void>> loads;
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    NodeConnection& node = *nodes_[plan.stages[i].node];
    auto request = node.control().loadShardRequest();
    auto spec = request.initSpec();
    spec.setModelDir(model_dir);
    if (source != nullptr) {
      auto s = spec.initSource();
      s.setUrl(source->url);
      s.setModelId(source->model_id);
      s.setToken(source->token);
    }
    spec.setFirstLayer(static_cast<uint32_t>(plan.stages[i].first_layer));
    spec.setEndLayer(static_cast<uint32_t>(plan.stages[i].end_layer));
    spec.setDtype(ToWire(dtype));
    loads.add(env_.Bound(request.send().ignoreResult(), env_.timeouts().load_ms, node.Label()));
  }
  auto all = kj::joinPromises(loads.releaseAsArray());
  if (source != nullptr) {
    // The bars stop once every load is done (the flag is shared with them).
    auto done = kj::heap<bool>(false);
    bool* flag = done.get();
    auto bars = DrawFetchProgress(kj::mv(done), std::chrono::steady_clock::now(), 0).eagerlyEvaluate(nullptr);
    all = all.then([flag]() { *flag = true; }).attach(kj::mv(bars));
  }
  return all.then([this]() { return LinkStages(); });
}

// Tells each stage its place and the address of the next one.
kj::Promise<void> Pipeline::LinkStages() {
  kj::Vector<kj::Promise<void>> links;
  for (size_t i = 0; i < stages_.size(); ++i) {
    NodeConnection& node = stage_node(i);
    auto request = node.control().setNextRequest();
    request.setAddress(i + 1 < stages_.size() ? stage_node(i + 1).address() : "");
    request.setStageIndex(static_cast<uint32_t>(i));
    request.setStageCount(static_cast<uint32_t>(stages_.size()));
    links.add(env_.Bound(request.send().ignoreResult(), env_.timeouts().connect_ms * 2, node.Label()));
  }
  return kj::joinPromises(links.releaseAsArray());
}

kj::Promise<std::pair<uint32_t, uint32_t>> Pipeline::ResumeSession(uint64_t session, const Bytes& keep_key) {
  return ResumeFrom(session, keep_key, 0, {0, 0}, {});
}

// Resumes stage `stage`, then the ones after it; every stage must hold as
// many tokens of the session as the first.
kj::Promise<std::pair<uint32_t, uint32_t>> Pipeline::ResumeFrom(uint64_t session, Bytes keep_key, size_t stage,
                                                                std::pair<uint32_t, uint32_t> held,
                                                                std::vector<wire::Session::Client> caps) {
  if (stage == stages_.size()) {
    sessions_.emplace(session, kj::mv(caps));
    return env_.Bound(AttachSink(session), env_.timeouts().call_ms, "setting the session's sink").then([held]() {
      return held;
    });
  }
  NodeConnection& node = stage_node(stage);
  auto request = node.control().resumeSessionRequest();
  request.setKeepKey(kj::arrayPtr(keep_key.data(), keep_key.size()));
  const std::string label = node.Label();
  return env_.Bound(request.send(), env_.timeouts().call_ms, label)
      .then([this, session, keep_key = kj::mv(keep_key), stage, held, caps = kj::mv(caps),
             label](capnp::Response<wire::Control::ResumeSessionResults>&& reply) mutable {
        if (stage > 0 && (reply.getLength() != held.first || reply.getCapacity() != held.second)) {
          return kj::Promise<std::pair<uint32_t, uint32_t>>(
              kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                            kj::str(label, " holds ", reply.getLength(), " tokens of that session, the first stage ",
                                    held.first)));
        }
        caps.push_back(reply.getSession());
        return ResumeFrom(session, kj::mv(keep_key), stage + 1, {reply.getLength(), reply.getCapacity()},
                          kj::mv(caps));
      });
}

bool Pipeline::UseLoadedShards(int64_t num_layers, ShardPlan* plan) {
  plan->stages.clear();
  stages_.clear();
  submits_.reset();
  lost_ = nullptr;  // watches the new stages from the next step on
  int64_t at = 0;
  while (at < num_layers) {
    bool found = false;
    for (size_t n = 0; n < nodes_.size() && !found; ++n) {
      const NodeStatus& s = nodes_[n]->hello_status();
      if (!s.shard_loaded || s.first_layer != at || s.end_layer <= at) continue;
      plan->stages.push_back({n, at, static_cast<int64_t>(s.end_layer), s.shard_bytes});
      stages_.push_back(n);
      at = s.end_layer;
      found = true;
    }
    if (!found) return false;
  }
  return true;
}

namespace {

// The last stage's answer, validated (its text and tensors are a peer's).
// Checked before any of it is used: the token inside the vocabulary, one
// time per stage at most, logits f32 [vocab] and finite.
StepReply ParseStepReply(wire::StepResult::Reader result, bool want_logits, uint32_t vocab, size_t stages) {
  StepReply reply;
  if (result.getToken() >= vocab) {
    throw PipelineError("the last stage sent token id " + std::to_string(result.getToken()) +
                        ", outside the vocabulary of " + std::to_string(vocab));
  }
  reply.token = static_cast<int32_t>(result.getToken());
  if (result.getStageMicros().size() > stages) {
    throw PipelineError("the last stage sent " + std::to_string(result.getStageMicros().size()) +
                        " stage times for a pipeline of " + std::to_string(stages) + " stages");
  }
  for (uint64_t us : result.getStageMicros()) reply.stage_micros.push_back(us);
  if (want_logits) {
    HostTensor logits;
    std::string error;
    if (!result.hasLogits() || !DecodeTensor(result.getLogits(), &logits, &error) ||
        logits.dtype != TensorDType::kF32 || logits.shape.size() != 1 || logits.shape[0] != vocab) {
      throw PipelineError("the last stage sent bad logits: " +
                          (error.empty() ? "missing or not f32 [" + std::to_string(vocab) + "]" : error));
    }
    if (!AllFinite(logits)) throw PipelineError("the last stage sent logits that are NaN or infinite");
    reply.logits.resize(static_cast<size_t>(logits.numel()));
    std::memcpy(reply.logits.data(), logits.data.data(), logits.data.size());
  }
  return reply;
}

}  // namespace

// One session's sink: the last stage reports each submitted step's result
// here, any stage its failure, each over its own link to this process.
class SessionSink final : public wire::StepSink::Server {
 public:
  SessionSink(std::vector<std::string> labels, uint32_t vocab) : labels_(std::move(labels)), vocab_(vocab) {}
  ~SessionSink() noexcept(false) { FailAll("the session was closed"); }

  // The result of the step at `start_pos`, when it comes (or came: a
  // fed-back step's result may arrive before anyone asks for it).
  kj::Promise<StepReply> Expect(uint32_t start_pos, bool want_logits) {
    auto early = early_.find(start_pos);
    if (early != early_.end()) {
      auto result = kj::mv(early->second);
      early_.erase(early);
      return result;
    }
    auto paf = kj::newPromiseAndFulfiller<StepReply>();
    pending_[start_pos] = {kj::mv(paf.fulfiller), want_logits};
    return kj::mv(paf.promise);
  }
  // Results at [from, end) are the node's own fed-back steps: kept until
  // asked for. The range is within the session's capacity, and so is what
  // is kept.
  void FeedBackRange(uint32_t from, uint32_t end) {
    feed_from_ = from;
    feed_end_ = end;
    early_.clear();
  }
  void FailAll(const std::string& why) {
    for (auto& [pos, p] : pending_) {
      if (p.fulfiller->isWaiting()) p.fulfiller->reject(KJ_EXCEPTION(FAILED, why.c_str()));
    }
    pending_.clear();
    FeedBackRange(0, 0);
  }

 protected:
  kj::Promise<void> done(DoneContext context) override {
    auto params = context.getParams();
    const uint32_t pos = params.getStartPos();
    auto found = pending_.find(pos);
    if (found == pending_.end()) {
      // Nobody waits (cancelled), a stray report, or a fed-back step ahead of its reader.
      if (FedBack(pos)) early_.emplace(pos, Parse(params.getResult(), false));
      return kj::READY_NOW;
    }
    Pending p = kj::mv(found->second);
    pending_.erase(found);
    try {
      p.fulfiller->fulfill(ParseStepReply(params.getResult(), p.want_logits, vocab_, labels_.size()));
    } catch (const PipelineError& e) {
      p.fulfiller->reject(Bad(e));
    }
    return kj::READY_NOW;
  }
  kj::Promise<void> failed(FailedContext context) override {
    auto params = context.getParams();
    const uint32_t pos = params.getStartPos();
    const uint32_t stage = params.getStage();
    const std::string who = stage < labels_.size() ? labels_[stage] : "stage " + std::to_string(stage);
    auto error = kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                               kj::str(who.c_str(), ": ", EscapeText(params.getMessage().cStr(), 600).c_str()));
    auto found = pending_.find(pos);
    if (found == pending_.end()) {
      if (FedBack(pos)) early_.emplace(pos, kj::Promise<StepReply>(kj::mv(error)));
      return kj::READY_NOW;
    }
    found->second.fulfiller->reject(kj::mv(error));
    pending_.erase(found);
    return kj::READY_NOW;
  }

 private:
  struct Pending {
    kj::Own<kj::PromiseFulfiller<StepReply>> fulfiller;
    bool want_logits = false;
  };
  bool FedBack(uint32_t pos) const { return pos >= feed_from_ && pos < feed_end_ && !early_.count(pos); }
  kj::Exception Bad(const PipelineError& e) const {  // a result the last stage should not have sent
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(labels_.back().c_str(), ": ", e.what()));
  }
  kj::Promise<StepReply> Parse(wire::StepResult::Reader result, bool want_logits) const {
    try {
      return ParseStepReply(result, want_logits, vocab_, labels_.size());
    } catch (const PipelineError& e) {
      return Bad(e);
    }
  }
  std::vector<std::string> labels_;    // per stage, for errors
  const uint32_t vocab_;
  std::map<uint32_t, Pending> pending_;  // by start position
  uint32_t feed_from_ = 0, feed_end_ = 0;  // the fed-back steps' positions
  std::map<uint32_t, kj::Promise<StepReply>> early_;  // their results, before they are asked for
};

kj::Promise<StepReply> Pipeline::StepAsync(StageStep step) {
  auto found = sessions_.find(step.session);
  auto sink = sinks_.find(step.session);
  if (found == sessions_.end() || sink == sinks_.end()) return KJ_EXCEPTION(FAILED, "no open session", step.session);
  // A step from here ends what an earlier step fed back; this one's feedback
  // starts after it.
  const uint32_t next = step.start + static_cast<uint32_t>(step.input.positions());
  sink->second.impl->FeedBackRange(next, next + step.feed_back.steps);
  auto result = sink->second.impl->Expect(step.start, step.want_logits);
  if (!submits_) submits_ = std::make_unique<SubmitQueue>(stage_node(0).control());
  // The first stage takes the step (with the other sessions' steps of this
  // turn, in one message) or refuses it, naming why; the result then comes
  // from the last stage, or a failure from whichever stage failed.
  auto taken = env_.Bound(submits_->Submit(found->second[0], kj::mv(step)),
                          env_.timeouts().call_ms, stage_node(0).Label());
  auto reported = taken.then([result = kj::mv(result)]() mutable { return kj::mv(result); })
                      .exclusiveJoin(AnyStageLost().then([]() -> StepReply { KJ_UNREACHABLE; }));
  return env_.Bound(kj::mv(reported), env_.timeouts().call_ms, "the pipeline");
}

kj::Promise<StepReply> Pipeline::ExpectAsync(uint64_t session, uint32_t start_pos) {
  auto sink = sinks_.find(session);
  if (sink == sinks_.end()) return KJ_EXCEPTION(FAILED, "no open session", session);
  auto reported = sink->second.impl->Expect(start_pos, false)
                      .exclusiveJoin(AnyStageLost().then([]() -> StepReply { KJ_UNREACHABLE; }));
  return env_.Bound(kj::mv(reported), env_.timeouts().call_ms, "the pipeline");
}

void Pipeline::HaltAsync(uint64_t session) {
  auto found = sessions_.find(session);
  auto sink = sinks_.find(session);
  if (found == sessions_.end() || sink == sinks_.end()) return;
  sink->second.impl->FeedBackRange(0, 0);
  // Fire and forget, as close: a step submitted after it travels behind it.
  found->second[0].haltRequest().send().detach([](kj::Exception&&) {});
}

kj::Promise<void> Pipeline::AnyStageLost() {
  if (lost_ == nullptr) {
    kj::Promise<void> any = kj::NEVER_DONE;
    for (size_t i = 0; i < stages_.size(); ++i) {
      const std::string label = stage_node(i).Label();
      any = any.exclusiveJoin(stage_node(i).OnDisconnect().then([label]() -> void {
        kj::throwFatalException(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                                              kj::str(label.c_str(), ": the connection to it dropped")));
      }));
    }
    lost_ = any.fork();
  }
  KJ_IF_MAYBE(lost, lost_) { return lost->addBranch(); }
  KJ_UNREACHABLE;
}

void Pipeline::DropSink(uint64_t session) {
  auto sink = sinks_.find(session);
  if (sink == sinks_.end()) return;
  sink->second.impl->FailAll("the session was closed");
  sinks_.erase(sink);
}

kj::Promise<void> Pipeline::AttachSink(uint64_t session) {
  auto found = sessions_.find(session);
  if (found == sessions_.end()) return KJ_EXCEPTION(FAILED, "no open session", session);
  std::vector<std::string> labels;
  for (size_t i = 0; i < stages_.size(); ++i) labels.push_back(stage_node(i).Label());
  auto impl = kj::heap<SessionSink>(kj::mv(labels), vocab_);
  Sink sink;
  sink.impl = impl.get();
  sink.client = kj::mv(impl);
  auto sets = kj::heapArrayBuilder<kj::Promise<void>>(found->second.size());
  for (size_t i = 0; i < found->second.size(); ++i) {
    auto request = found->second[i].setSinkRequest();
    request.setSink(sink.client);
    sets.add(env_.Bound(request.send().ignoreResult(), env_.timeouts().call_ms, stage_node(i).Label()));
  }
  sinks_[session] = kj::mv(sink);
  return kj::joinPromises(sets.finish());
}

kj::Promise<void> Pipeline::OpenSession(uint64_t session, uint32_t capacity, const SamplingParams& sampling,
                                        const Bytes& keep_key) {
  return OpenFrom(session, capacity, sampling, keep_key, stages_.size(), nullptr, {});
}

// Opens stage `stage - 1`, then the ones before it, last to first: each
// learns the ticket of the next one's session.
kj::Promise<void> Pipeline::OpenFrom(uint64_t session, uint32_t capacity, SamplingParams sampling, Bytes keep_key,
                                     size_t stage, kj::Array<capnp::byte> downstream,
                                     std::vector<wire::Session::Client> reversed) {
  if (stage == 0) {
    std::vector<wire::Session::Client> caps;
    for (size_t i = reversed.size(); i-- > 0;) caps.push_back(kj::mv(reversed[i]));
    sessions_.emplace(session, kj::mv(caps));
    return AttachSink(session);
  }
  NodeConnection& node = stage_node(stage - 1);
  auto request = node.control().openSessionRequest();
  request.setCapacity(capacity);
  SetSampling(request.initSampling(), sampling);
  request.setDownstreamTicket(downstream);
  request.setKeepKey(kj::arrayPtr(keep_key.data(), keep_key.size()));
  return env_.Bound(request.send(), env_.timeouts().call_ms, node.Label())
      .then([this, session, capacity, sampling, keep_key = kj::mv(keep_key), stage, reversed = kj::mv(reversed)](
                capnp::Response<wire::Control::OpenSessionResults>&& reply) mutable {
        reversed.push_back(reply.getSession());
        return OpenFrom(session, capacity, sampling, kj::mv(keep_key), stage - 1,
                        kj::heapArray<capnp::byte>(reply.getTicket()), kj::mv(reversed));
      });
}

kj::Promise<void> Pipeline::CloseSession(uint64_t session) {
  auto found = sessions_.find(session);
  if (found == sessions_.end()) return kj::READY_NOW;
  auto closes = kj::heapArrayBuilder<kj::Promise<void>>(found->second.size());
  for (auto& cap : found->second) {
    // The close travels now; its answer matters only to a caller that waits.
    closes.add(WithDeadline(env_.io().provider->getTimer(), cap.closeRequest().send().ignoreResult(), 1000,
                            std::make_shared<bool>(false))
                   .catch_([](kj::Exception&&) {}));
  }
  sessions_.erase(found);
  DropSink(session);
  return kj::joinPromises(closes.finish());
}

}  // namespace strata
