#include "node/server/step_quota.h"

#include <string>

namespace strata {

Result<std::unique_ptr<StepQuota::Hold>> StepQuota::Take(uint64_t session, uint64_t bytes) {
  const auto found = per_session_.find(session);
  const uint32_t of_session = found == per_session_.end() ? 0 : found->second;
  if (of_session >= limits_.max_per_session) {
    return Status::Error("step: the session already has " + std::to_string(of_session) +
                         " steps queued on this node (at most " + std::to_string(limits_.max_per_session) + ")");
  }
  if (steps_ >= limits_.max_steps) {
    return Status::Error("step: this node has " + std::to_string(steps_) + " steps queued (at most " +
                         std::to_string(limits_.max_steps) + "); try again");
  }
  if (bytes > limits_.max_bytes - bytes_) {
    return Status::Error("step: this node holds " + std::to_string(bytes_ >> 20) + " MiB of queued inputs (at most " +
                         std::to_string(limits_.max_bytes >> 20) + " MiB); try again");
  }
  ++per_session_[session];
  ++steps_;
  bytes_ += bytes;
  return std::make_unique<Hold>(*this, session, bytes);
}

void StepQuota::Give(uint64_t session, uint64_t bytes) {
  auto found = per_session_.find(session);
  if (found != per_session_.end() && --found->second == 0) per_session_.erase(found);
  --steps_;
  bytes_ -= bytes;
}

}  // namespace strata
