#include "protocol/step.h"

#include "protocol/tensor_codec.h"

namespace strata {

StageStep StepAt(uint64_t session, uint32_t start, StageInput input, bool sample, bool want_logits) {
  StageStep step;
  step.session = session;
  step.start = start;
  step.input = std::move(input);
  step.sample = sample;
  step.want_logits = want_logits;
  return step;
}

void FillStep(const StageStep& step, wire::Step::Builder out) {
  out.setStartPos(step.start);
  out.setWantLogits(step.want_logits);
  out.setSample(step.sample);
  if (step.input.is_tokens()) {
    const auto& tokens = step.input.tokens;
    auto ids = out.initInput().initTokens(static_cast<unsigned>(tokens.size()));
    for (size_t i = 0; i < tokens.size(); ++i) ids.set(static_cast<unsigned>(i), static_cast<uint32_t>(tokens[i]));
  } else {
    EncodeTensor(step.input.hidden, out.initInput().initHidden());
  }
  if (step.feed_back.steps == 0) return;
  out.setFeedBack(step.feed_back.steps);
  const auto& stop = step.feed_back.stop_tokens;
  auto stops = out.initStopTokens(static_cast<unsigned>(stop.size()));
  for (size_t i = 0; i < stop.size(); ++i) stops.set(static_cast<unsigned>(i), static_cast<uint32_t>(stop[i]));
}

}  // namespace strata
