#pragma once
// StageStep: one step of one session, the one step type from the
// coordinator through every stage to the kernel. The coordinator makes it
// (token ids, for the first stage) and sends it with FillStep; each stage's
// checks read it back off the wire (node/server/stage_step), its batcher
// queues it, the engine computes it (LlamaShard::Forward, ForwardBatch), and
// the next stage receives it with this stage's hidden states as its input.
//
// Plain data without LibTorch: protocol/ sits below the engine.
#include <cstdint>
#include <utility>
#include <vector>

#include "protocol/host_tensor.h"
#include "strata.capnp.h"

namespace strata {

// What a stage receives: token ids (first stage) or hidden states
// [tokens, hidden] in the compute dtype (every later stage).
struct StageInput {
  std::vector<int32_t> tokens;
  HostTensor hidden;
  static StageInput Tokens(std::vector<int32_t> ids) {
    StageInput input;
    input.tokens = std::move(ids);
    return input;
  }
  bool is_tokens() const { return !tokens.empty(); }
  // Positions the step covers: its tokens, or its rows of hidden states.
  int64_t positions() const {
    if (is_tokens()) return static_cast<int64_t>(tokens.size());
    return hidden.shape.empty() ? 0 : hidden.shape[0];
  }
};

// Decoding on a one-stage pipeline without a round trip per token: the
// node feeds each sampled token back as its next step, `steps` more times,
// ending early after a stop token (wire Step.feedBack).
struct FeedBack {
  uint32_t steps = 0;
  std::vector<int32_t> stop_tokens;  // at most wire::MAX_STOP_TOKENS
};

// Positions [start, start + input.positions()) of `session`, and what the
// last stage does with them.
struct StageStep {
  uint64_t session = 0;      // the coordinator's session id there, a node's own id on a node
  uint32_t start = 0;        // as on the wire
  StageInput input;
  bool sample = false;       // the last stage samples a token after it
  bool want_logits = false;  // the last stage returns its logits
  FeedBack feed_back;        // only to a pipeline of one stage
};

// The step of `input` at `start` of `session`; without feedback.
StageStep StepAt(uint64_t session, uint32_t start, StageInput input, bool sample = false, bool want_logits = false);

// Writes `step` as a wire Step: its token ids, or its hidden states through
// the tensor codec.
void FillStep(const StageStep& step, wire::Step::Builder out);

}  // namespace strata
