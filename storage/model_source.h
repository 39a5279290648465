#pragma once
// ModelSource: where `--model` points, and a verified local copy of it.
//   - a local directory (used as it is);
//   - an http(s) URL of a model directory: config.json, then
//     model.safetensors.index.json and its shards or model.safetensors, and
//     the tokenizer files that exist; a SHA256SUMS file beside them, where the
//     source publishes one, gives the files' hashes;
//   - a Hugging Face repo id, ORG/NAME[@REVISION], on an HF-compatible
//     endpoint: GET /api/models/ORG/NAME/revision/REV?blobs=true lists the
//     files with their hashes (LFS files: SHA-256; others: the git blob's
//     SHA-1), and /ORG/NAME/resolve/REV/FILE serves each.
// The coordinator mirrors a remote model into its cache once, checking every
// file against the hash its source publishes (a mismatch is fetched again,
// then fails; it is never used), and from there hashes every tensor and serves
// the nodes their shards (coordinator/cluster/model_server). An interrupted download
// resumes where it stopped; a complete mirror is used again without a byte
// transferred. Mirrors of the hub are keyed by the commit the endpoint names,
// so a repo that changes gets a fresh mirror.
//
// Thread-compatible: call it on a thread of its own (it blocks); progress
// counters are atomics any thread may read.
#include <cstdint>
#include <string>

#include "base/status.h"
#include "storage/env.h"
#include "storage/shard_fetch.h"

namespace strata {

struct ModelRef {
  enum class Kind { kLocal, kUrl, kHub };
  Kind kind = Kind::kLocal;
  std::string location;          // the directory, the URL (no trailing '/'), or ORG/NAME
  std::string revision = "main"; // hub only
};

// Names a local directory if one exists by that name; else an http(s) URL;
// else ORG/NAME[@REVISION]. Anything else is an error that says what --model takes.
Result<ModelRef> ParseModelRef(const std::string& text);

struct MirrorOptions {
  std::string cache_dir;                           // mirrors go under CACHE/sources/
  std::string hf_endpoint = "https://huggingface.co";
  std::string token;                               // "Authorization: Bearer" for the source ("": none)
  int connections = 4;                             // files fetched at once
  int attempts = 4;                                // per file
  uint32_t backoff_ms = 500;                       // doubles with every attempt
  FetchProgress* progress = nullptr;
};

struct MirrorResult {
  std::string dir;               // a complete, verified model directory
  uint64_t fetched_bytes = 0;    // 0: the mirror was warm
  int files = 0;
  int files_verified = 0;        // against a hash the source published
};

// Whether the hub's token may go to `endpoint` (an http(s) URL): over
// https, or over plain http only to this machine (a loopback host).
bool TokenMayGoTo(const std::string& endpoint);

// For a local ref: the directory itself, nothing fetched. The token of
// `options` goes only to the hub endpoint, and only where TokenMayGoTo:
// never to a plain URL's server.
Result<MirrorResult> MirrorModel(Env& env, const ModelRef& ref, const MirrorOptions& options);

// Hashes a source publishes for its files, as an HF-compatible endpoint does:
// the SHA-256 (hex) of a whole file, and the git blob SHA-1 of one.
std::string FileSha256Hex(const std::string& path);
std::string GitBlobSha1Hex(const std::string& path);

}  // namespace strata
