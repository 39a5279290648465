#pragma once
// `strata generate --coordinator HOST:PORT`: the same command as a client of
// a running `strata serve`, over its OpenAI-compatible API (streamed).
#include "coordinator/cli/generate_command.h"

namespace strata {

// The process exit code; the text goes to stdout as it streams, a summary
// (or --json's object) after it.
int RunRemoteGenerate(const GenerateFlags& flags);

}  // namespace strata
