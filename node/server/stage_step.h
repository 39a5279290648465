#pragma once
// SubmitStep: one step of one session on this node, handed on to the rest
// of the pipeline. Every cheap check runs on the event loop before any work:
// the session's ticket, the hop against this node's place in the pipeline,
// the token count against the session's capacity, token ids against the
// vocabulary, hidden states' dtype, shape and finiteness. Only then does the
// compute thread embed or run a layer.
#include <kj/async.h>

#include "node/server/node_state.h"
#include "strata.capnp.h"

namespace strata {

// `hop` is the index of the stage this step was sent to (0 from the
// coordinator). After the checks the step runs in the background: the
// promise is ready once the step is taken. The next stage gets it by Upstream.submit;
// the last stage sends the result to the session's sink, and any stage its
// failure, so no call is held open through the pipeline.
// A step with feedBack (a pipeline of this one stage) makes its own next
// step from the token it samples, on this node, until the count is spent,
// a stop token comes, the session closes or Session.halt.
kj::Promise<void> SubmitStep(kj::Own<NodeState> state, const Bytes& ticket, uint32_t hop, wire::Step::Reader step);

// One member of a submitted batch: SubmitStep, except that a member failing
// its checks is reported to its own session's sink (or, with no session to
// tell, counted as a refusal) instead of failing the whole call.
void SubmitBatchMember(NodeState& state, const Bytes& ticket, uint32_t hop, wire::Step::Reader step);

}  // namespace strata
