#pragma once
// Perplexity: how well the model predicts a text, measured as llama.cpp's
// llama-perplexity measures it, so that the figures compare. The text's
// tokens go in chunks of `ctx`, each in a session of its own whose first
// token is BOS (when the model has one); the first half of a chunk is
// context, and every later token is scored by the log-probability that the
// last stage's logits for the position before it give it (log-softmax in
// double precision here). PPL = exp(mean negative log-likelihood).
//
// The scored positions run one at a time, as decode steps: the logits are
// those generation sees, split or not.
//
// Not thread-safe: lives on the coordinator's event loop, as the pipeline.
#include <kj/async.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "coordinator/pipeline/pipeline.h"

namespace strata {

struct PerplexityRequest {
  std::vector<int32_t> tokens;       // the text (BOS first when the model has one)
  int64_t ctx = 256;                 // tokens per chunk, BOS included (>= 4)
  int64_t max_chunks = 0;            // 0: every whole chunk of the text
  int32_t bos = -1;                  // the first token of every chunk (-1: the text's own)
  int64_t vocab = 0;
  int64_t prefill_chunk = 512;       // most context tokens per step
};

struct PerplexityResult {
  int64_t chunks = 0, scored = 0;
  double nll = 0;                    // summed over the scored tokens (nats)
  std::vector<double> chunk_ppl;
  double seconds = 0;
  double ppl() const;
};

class PerplexityRun {
 public:
  // Sessions get ids session_base, session_base + 1, ... `progress` (may be
  // empty) is called after every chunk.
  PerplexityRun(Pipeline& pipeline, uint64_t session_base, PerplexityRequest request,
                std::function<void(const PerplexityResult&, int64_t chunks)> progress);
  // Chunks the text holds; 0 when it is shorter than one chunk.
  int64_t chunks() const;
  kj::Promise<void> Run();
  const PerplexityResult& result() const { return result_; }

 private:
  kj::Promise<void> Chunk(int64_t c);
  kj::Promise<StepReply> Context(uint64_t session, int64_t at);
  kj::Promise<void> Score(uint64_t session, int64_t pos, double nll, StepReply reply);
  std::vector<int32_t> ChunkTokens(int64_t c) const;

  Pipeline& pipeline_;
  const uint64_t session_base_;
  const PerplexityRequest request_;
  std::function<void(const PerplexityResult&, int64_t)> progress_;
  PerplexityResult result_;
  std::vector<int32_t> chunk_;       // the chunk being scored
};

// -log p(target) from a row of logits; NaN when the row is not `vocab`
// finite values or the target is out of range.
double NegativeLogLikelihood(const std::vector<float>& logits, int64_t vocab, int32_t target);

}  // namespace strata
