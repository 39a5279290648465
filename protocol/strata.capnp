@0xc4f1b2a3d5e60718;
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("strata::wire");
# The only contract between Strata processes. Bump kProtocolVersion in
# protocol/version.h on any incompatible change; hello() refuses mismatches.
#
# Rights are capabilities. A stranger that reaches a node's port holds only
# the bootstrap `Node`, which answers `challenge` and `hello`. A hello that
# proves the cluster secret (protocol/peer_auth.h) returns `Control` to a
# coordinator or `Upstream` to the previous stage of a pipeline; `Control`
# opens `Session`s. Nothing is named by a guessable number.

enum DType {
  f32 @0;
  bf16 @1;
  f16 @2;
}

enum PeerRole {
  coordinator @0;   # plans, loads shards, opens sessions: gets Control
  stage @1;         # the previous stage of a pipeline: gets Upstream
}

struct Tensor {
  # A dense row-major tensor. Receivers validate dtype x shape == data size.
  dtype @0 :DType;
  shape @1 :List(UInt64);
  data @2 :Data;
}

struct TierUsage {
  tier @0 :Text;                # "device" | "ram" | "nvme"
  usedBytes @1 :UInt64;         # charged: weights, KV pages, buffers
  budgetBytes @2 :UInt64;       # the tier's hard limit
}

struct SwapCounters {
  pagesOut @0 :UInt64;          # KV pages written to NVMe
  pagesIn @1 :UInt64;           # and read back
  bytesOut @2 :UInt64;
  bytesIn @3 :UInt64;
  writeMicros @4 :UInt64;       # disk time of the swap-out bursts
  readMicros @5 :UInt64;        # and of the reads back
  prefetchHits @6 :UInt64;      # reads already started when the step needed them
  prefetchMisses @7 :UInt64;
  failures @8 :UInt64;          # bursts that failed: disk errors, bad checksums
  sessionsOnDisk @9 :UInt64;
  ramHits @10 :UInt64;          # steps whose KV was in RAM
  ramMisses @11 :UInt64;        # steps whose KV had to come back from NVMe
}

struct NodeInfo {
  name @0 :Text;
  protocolVersion @1 :UInt32;
  freeMemoryBytes @2 :UInt64;   # what this node may spend on weights + KV cache
  threads @3 :UInt32;
  device @4 :Text;              # "cpu" or "cuda:0"
  shardLoaded @5 :Bool;
  firstLayer @6 :UInt32;
  endLayer @7 :UInt32;
  activeSessions @8 :UInt32;
  shardBytes @9 :UInt64;
  residentBytes @10 :UInt64;    # VmRSS of the node process
  secured @11 :Bool;            # the node checks a cluster secret
  tls @12 :Bool;                # the node speaks TLS
  stepsComputed @13 :UInt64;    # forwards this node has computed since it started
  tiers @14 :List(TierUsage);   # every tier with a budget
  swap @15 :SwapCounters;       # the NVMe tier's traffic (zero without one)
  keptSessions @16 :UInt32;     # sessions that outlive their client, waiting to be resumed
  computeGflops @17 :Float32;   # measured at start: f32 matmul with the node's threads (0: not yet)
  memBandwidthGbps @18 :Float32; # measured at start: memory read bandwidth (what decode is bound by)
  fetchDoneBytes @19 :UInt64;   # the shard being fetched into the cache: bytes in and verified
  fetchTotalBytes @20 :UInt64;  # and what it needs
  batches @21 :UInt64;          # forwards run (a batch of decode steps counts once)
  batchRows @22 :UInt64;        # steps in them: batchRows / batches is the mean batch
  computeMicros @23 :UInt64;    # time spent in forwards since the node started
  uptimeMicros @24 :UInt64;     # since the node started
  cpuFeatures @25 :Text;        # what the CPU can do: "avx2 fma f16c avx512f ..."
  kernels @26 :Text;            # the kernel path per weight type: "f32:avx512 bf16:avx512-bf16 ..."
}

struct ModelSource {
  url @0 :Text;                 # the coordinator's model server: http://HOST:PORT
  modelId @1 :Text;             # the manifest's SHA-256 (hex): the node's cache key
  token @2 :Text;               # the server's bearer token ("" without a cluster secret)
}

struct ShardSpec {
  modelDir @0 :Text;            # a checkpoint directory on the node's filesystem (when no source)
  firstLayer @1 :UInt32;
  endLayer @2 :UInt32;          # exclusive
  dtype @3 :DType;              # compute dtype
  source @4 :ModelSource;       # set: fetch the shard's tensors into the node's cache, verified, then load
}

struct SamplingParams {
  temperature @0 :Float32;      # 0 = greedy
  topK @1 :UInt32;              # 0 = off
  topP @2 :Float32;             # 1 = off
  seed @3 :UInt64;
}

struct StepInput {
  union {
    tokens @0 :List(UInt32);    # to the first stage
    hidden @1 :Tensor;          # [tokens, hidden] to every later stage
  }
}

struct StepResult {
  token @0 :UInt32;
  logits @1 :Tensor;            # [vocab] f32 at the last position, only when asked
  stageMicros @2 :List(UInt64); # compute time of each stage from here to the end
}

struct Step {
  startPos @0 :UInt32;
  input @1 :StepInput;
  wantLogits @2 :Bool;
  sample @3 :Bool;
  feedBack @4 :UInt32;
  # Decode without a round trip per token: the stage that samples feeds the
  # token back as the session's next step (one token at the next position),
  # this many more times, each result to the sink as usual. Only a pipeline
  # of one stage feeds back (its first stage is its last), through submit.
  # It ends early after a token in stopTokens, or at Session.halt.
  stopTokens @5 :List(UInt32);  # at most maxStopTokens
}

const maxStopTokens :UInt32 = 16;

struct SessionStep {
  # One member of a batch to the first stage: named by its Session capability.
  session @0 :Session;
  step @1 :Step;
}

struct TicketStep {
  # One member of a batch handed on to the next stage: named by its ticket.
  ticket @0 :Data;
  step @1 :Step;
}

interface Node {
  # The bootstrap capability: all a stranger can reach.
  challenge @0 (protocolVersion :UInt32, clientNonce :Data) -> (serverNonce :Data, serverProof :Data, nodeId :Data);
  # Step one of the mutual handshake. serverProof = HMAC(secret, server
  # transcript) shows the node holds the secret (empty: the node has none).
  hello @1 (protocolVersion :UInt32, peer :Text, role :PeerRole, clientProof :Data, coordinatorSignature :Data)
      -> (info :NodeInfo, control :Control, upstream :Upstream);
  # Step two: clientProof = HMAC(secret, client transcript) over the nonce
  # this connection was just given. One hello per connection.
  # coordinatorSignature: Ed25519 over the coordinator transcript
  # (protocol/coordinator_key.h); a node started with --coordinator-pub
  # answers a coordinator's hello only when it verifies.
}

interface Control {
  # The coordinator's rights over a node.
  info @0 () -> (info :NodeInfo);
  loadShard @1 (spec :ShardSpec) -> (info :NodeInfo);
  setNext @2 (address :Text, stageIndex :UInt32, stageCount :UInt32);
  # Makes this node stage `stageIndex` of `stageCount`. The node dials
  # `address` (TCP HOST:PORT, "" for the last stage) itself and uses it only
  # after an authenticated hello; on failure the old link stays.
  openSession @3 (capacity :UInt32, sampling :SamplingParams, downstreamTicket :Data, keepKey :Data)
      -> (session :Session, ticket :Data);
  # keepKey (16 random bytes, or empty): the session outlives its Session
  # capability, for the node's --session-ttl, and resumeSession with the
  # same key gives it back. Its KV waits, on NVMe where the node has it.
  resumeSession @4 (keepKey :Data) -> (session :Session, length :UInt32, capacity :UInt32);
  # `downstreamTicket` is the next stage's ticket for this conversation;
  # `ticket` is what the previous stage presents to reach it (128 random bits).
  submitBatch @5 (steps :List(SessionStep));
  # Session.submit for several sessions at once (one step each, of
  # different sessions): the decode steps of a continuous batch in one
  # message. Each member is named by a Session capability this node issued;
  # any other capability fails the call. A member that fails its checks is
  # reported to its own session's sink, and the others are taken.
  canOpen @6 (modelDir :Text) -> (readable :Bool);
  # Whether loadShard could read `modelDir` by path on this node: under its
  # --models-dir and there (config.json, or a .gguf file). A coordinator asks
  # before it loads, and distributes the model to nodes that cannot.
}

interface Session {
  # One conversation on one node; dropping the capability closes it.
  removedForward @0 ();
  # Removed: every step goes through submit. A node answers "unimplemented".
  close @1 ();
  setSink @2 (sink :StepSink);
  # Where this stage reports the session's submitted steps: the last stage
  # their results, every stage their failures. The coordinator sets it on
  # every stage over its own link to that node, so a result travels straight
  # back, never through the middle stages.
  submit @3 (step :Step);
  # The one way to run a step, with no call held open through the pipeline:
  # returns once this stage (hop 0) has taken the step (validated, queued);
  # it then runs and is handed on to the next stage the same way; the last
  # stage sends the result to the sink. Steps of one session run in the
  # order they are submitted; a step not started when its session closes
  # never starts.
  halt @4 ();
  # Ends the session's feedback (Step.feedBack): no step submitted before
  # the halt is fed back any more. Steps submitted after it feed back again.
}

interface StepSink {
  # The coordinator's, one per session.
  done @0 (startPos :UInt32, result :StepResult);
  failed @1 (startPos :UInt32, stage :UInt32, message :Text);
}

interface Upstream {
  # What the previous stage may do: hand on a step of a session whose ticket
  # its coordinator gave it. `hop` is this stage's index in the pipeline.
  removedForward @0 ();
  # Removed: every step goes through submit. A node answers "unimplemented".
  submit @1 (ticket :Data, hop :UInt32, step :Step);
  # Session.submit's hand-on: returns once this stage has taken the step.
  submitBatch @2 (hop :UInt32, steps :List(TicketStep));
  # The hand-on of a batch: every member this stage computed together goes
  # on in one message. A member that fails its checks is reported to its
  # session's sink; the others are taken.
}
