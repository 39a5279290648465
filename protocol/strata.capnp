@0xc4f1b2a3d5e60718;
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("strata::wire");
# The only contract between Strata processes. Bump kProtocolVersion in
# protocol/version.h on any incompatible change; hello() refuses mismatches.

enum DType {
  f32 @0;
  bf16 @1;
  f16 @2;
}

struct Tensor {
  # A dense row-major tensor. Receivers validate dtype x shape == data size.
  dtype @0 :DType;
  shape @1 :List(UInt64);
  data @2 :Data;
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
}

struct ShardSpec {
  modelDir @0 :Text;            # a checkpoint directory on the node's filesystem
  firstLayer @1 :UInt32;
  endLayer @2 :UInt32;          # exclusive
  dtype @3 :DType;              # compute dtype
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

interface Node {
  # The bootstrap capability. It hands out the Stage only after the protocol
  # versions match, so later checks (a cluster secret) slot in here.
  hello @0 (protocolVersion :UInt32, peer :Text) -> (info :NodeInfo, stage :Stage);
}

interface Stage {
  info @0 () -> (info :NodeInfo);
  loadShard @1 (spec :ShardSpec) -> (info :NodeInfo);
  setNext @2 (address :Text);                 # "" = this is the last stage
  openSession @3 (sessionId :UInt64, capacity :UInt32, sampling :SamplingParams);
  forward @4 (sessionId :UInt64, startPos :UInt32, input :StepInput, wantLogits :Bool,
              sample :Bool) -> (result :StepResult);
  # Runs this stage on `input`, then forwards hidden states to the next stage
  # itself; the last stage samples (when `sample`) and the token comes back
  # along the chain of returns.
  closeSession @5 (sessionId :UInt64);
}
