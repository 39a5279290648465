#pragma once
// `strata perplexity` (generate with --perplexity-file): the text read as a
// scoring request (coordinator/pipeline/perplexity), and the run that prints
// a line per chunk on stderr and the result on stdout.
#include <cstdint>
#include <vector>

#include "coordinator/cli/generate_command.h"
#include "coordinator/pipeline/perplexity.h"
#include "coordinator/pipeline/pipeline.h"
#include "coordinator/pipeline/tokenizer.h"
#include "storage/model_config.h"

namespace strata {

// The text of --perplexity-file as a scoring request, checked against the model.
Status ReadScoreRequest(const GenerateFlags& flags, const ModelConfig& config, const Tokenizer& tokenizer,
                        PerplexityRequest* out);

// Scores on a loaded pipeline, every chunk in a session of its own; returns the exit code.
int RunScore(RpcEnv& env, Pipeline& pipeline, const GenerateFlags& flags, PerplexityRequest request, uint64_t session,
             const ShardPlan& plan, const std::vector<NodeCapacity>& capacities);

}  // namespace strata
