#include "coordinator/cluster/resolve_model.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "base/escape.h"
#include "base/progress_line.h"
#include "storage/env.h"
#include "storage/model_source.h"

namespace strata {
namespace {

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

}  // namespace

std::string ModelCacheDir(const ModelSourceFlags& flags) {
  return flags.model_cache.empty() ? DefaultCacheDir() : flags.model_cache;
}

Result<std::string> ResolveModel(const std::string& model, const ModelSourceFlags& flags) {
  auto ref = ParseModelRef(model);
  if (!ref.ok()) return ref.status();
  if (ref->kind == ModelRef::Kind::kLocal) return ref->location;
  MirrorOptions o;
  o.cache_dir = ModelCacheDir(flags);
  o.hf_endpoint = !flags.hf_endpoint.empty() ? flags.hf_endpoint
                  : !GetEnv("HF_ENDPOINT").empty() ? GetEnv("HF_ENDPOINT") : "https://huggingface.co";
  while (!o.hf_endpoint.empty() && o.hf_endpoint.back() == '/') o.hf_endpoint.pop_back();
  o.token = GetEnv("HF_TOKEN");
  if (!o.token.empty() && (ref->kind != ModelRef::Kind::kHub || !TokenMayGoTo(o.hf_endpoint))) {
    std::fprintf(stderr, "strata: note: HF_TOKEN is not sent to %s: only to the hub endpoint, over https\n",
                 EscapeText(ref->kind == ModelRef::Kind::kHub ? o.hf_endpoint : ref->location, 200).c_str());
  }
  FetchProgress progress;
  o.progress = &progress;
  // The mirror runs on a thread of its own; this one draws its progress.
  Result<MirrorResult> result = Status::Error("not run");
  std::atomic<bool> finished{false};
  const auto start = std::chrono::steady_clock::now();
  std::thread worker([&]() {
    PosixEnv env;
    result = MirrorModel(env, ref.value(), o);
    finished = true;
  });
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  bool drew = false;
  int ticks = 0;
  while (!finished) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (++ticks % (tty ? 2 : 10) != 0 || progress.total == 0) continue;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, tty ? "\r%s" : "%s\n", ProgressLine("model", progress.done, progress.total, s).c_str());
    drew = true;
  }
  worker.join();
  if (drew && tty) std::fprintf(stderr, "\n");
  if (!result.ok()) return Status::Error("--model " + EscapeText(model, 200) + ": " + result.status().message());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "model: %s mirrored in %s (%d files, %d checked against the source's hashes; %.1f MiB fetched in %.1f s)\n",
               EscapeText(model, 200).c_str(), result->dir.c_str(), result->files, result->files_verified,
               result->fetched_bytes / 1048576.0, s);
  return result->dir;
}

}  // namespace strata
