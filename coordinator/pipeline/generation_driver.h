#pragma once
// GenerationDriver: one request's generation on a pipeline, and the sole
// owner of its state: its tokens, its text, its stop conditions and timings.
// It does no terminal or network I/O of its own: `strata generate` prints
// what it produces, `strata serve` streams it over HTTP; both are front ends
// of this one driver. Sampling happens on the last stage, from the session's
// (seed, position), so the driver holds no randomness.
//
// Prefill goes in chunks of `prefill_chunk` tokens (each well under the RPC
// message limit), then decode one token a step until `max_tokens`, an
// end-of-sequence token, or a stop sequence. Text that might be the start of
// a stop sequence is held back until it is known not to be one, so a client
// never sees any part of a stop sequence.
//
// Not thread-safe: lives on the coordinator's event loop. The pipeline
// session must be open before Run(); dropping Run()'s promise cancels the
// generation between steps (the caller then closes the session).
#include <kj/async.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/pipeline/pipeline.h"
#include "coordinator/pipeline/tokenizer.h"

namespace strata {

struct GenerationRequest {
  std::vector<int32_t> prompt;       // token ids, BOS included when wanted
  int64_t max_tokens = 64;
  std::vector<std::string> stop;     // stop sequences (text); at most 4, as OpenAI's API
  uint32_t base = 0;                 // positions the session already holds (a resumed one)
  int64_t prefill_chunk = 512;
  bool want_logits = false;          // each generated position's logits, to the sink
  bool run_last_token = false;       // run the last sampled token too, so the KV holds the whole conversation
};

// Where a generation's output goes, as it is produced.
class TokenSink {
 public:
  virtual ~TokenSink() = default;
  // A generated token and the text it adds ("" while a multi-byte character
  // or a possible stop sequence is incomplete). `logits` is [vocab] when
  // asked for, else empty.
  virtual void OnToken(int32_t token, const std::string& text, const std::vector<float>& logits) = 0;
};

struct GenerationResult {
  std::vector<int32_t> tokens;       // generated, an end-of-sequence token included
  std::string text;                  // their text, up to (not including) a stop sequence
  std::string finish_reason;         // "stop" (end of sequence, stop sequence) or "length"
  double prefill_s = 0, decode_s = 0;
  double first_token_s = 0;          // from Run() to the first token
  std::vector<double> inter_token_s; // between consecutive tokens
  std::vector<uint64_t> stage_micros;  // compute per stage, summed over decode steps
};

class GenerationDriver {
 public:
  GenerationDriver(Pipeline& pipeline, const Tokenizer& tokenizer, uint64_t session, GenerationRequest request,
                   TokenSink* sink);
  ~GenerationDriver();  // halts the node's feedback of a generation that did not finish
  kj::Promise<void> Run();
  const GenerationResult& result() const { return result_; }
  uint64_t session() const { return session_; }

 private:
  kj::Promise<void> Prefill(size_t begin);
  kj::Promise<void> Decode(StepReply reply);
  // The step after the last token: submitted, or (feeding back) awaited.
  kj::Promise<StepReply> NextStep();
  kj::Promise<void> Finish();
  // Takes a sampled token; false once the generation is over.
  bool Accept(const StepReply& reply);
  // Text newly safe to show, given the whole decoded text so far.
  std::string Release(bool final);
  uint32_t NextPos() const;

  Pipeline& pipeline_;
  const Tokenizer& tokenizer_;
  const uint64_t session_;
  const GenerationRequest request_;
  TokenSink* sink_;                  // borrowed; may be null
  GenerationResult result_;
  IncrementalDecoder text_;          // the generated tokens that are text (no end-of-sequence)
  std::string decoded_;              // text_.text(), cut at a stop sequence
  size_t released_ = 0;              // bytes of decoded_ handed to the sink
  bool stopped_ = false;             // a stop sequence was found
  bool feeding_ = false;             // the node feeds its tokens back (a one-stage pipeline)
  bool finished_ = false;            // Finish ran
  double t_start_ = 0, t_prefilled_ = 0, t_last_ = 0;
};

}  // namespace strata
