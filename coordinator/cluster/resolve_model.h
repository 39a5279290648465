#pragma once
// ResolveModel: turns `--model` (a directory, an http(s) URL of a model
// directory, or a Hugging Face repo id ORG/NAME[@REVISION]) into a local,
// verified model directory, mirroring a remote one into the coordinator's
// model cache (storage/model_source) with a progress bar on stderr.
//
// Thread-compatible: blocks the calling thread while it mirrors.
#include <string>

#include "base/status.h"

namespace strata {

struct ModelSourceFlags {
  std::string hf_endpoint;   // "": $HF_ENDPOINT, else https://huggingface.co
  std::string model_cache;   // "": $XDG_CACHE_HOME/strata, else ~/.cache/strata
};

Result<std::string> ResolveModel(const std::string& model, const ModelSourceFlags& flags);

// The coordinator's model cache: mirrors of remote models and manifests.
std::string ModelCacheDir(const ModelSourceFlags& flags);

}  // namespace strata
