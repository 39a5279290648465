#pragma once
// Env: how storage/ reaches the filesystem (LevelDB's Env is the model). The
// code that writes model files — and, with tiered memory, the swap files of
// KV pages — goes through it, so tests put a FaultInjectionEnv in its place
// and see ENOSPC, EIO and short reads arrive in the real code paths. main()
// makes the PosixEnv and passes it down; there is no global default.
//
// An Env is thread-safe. A WritableFile is used by one thread at a time; a
// RandomRWFile's positioned calls may run on several threads at once.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace strata {

// A file written front to back.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(const void* data, size_t n) = 0;
  virtual Status Sync() = 0;
  virtual Status Close() = 0;  // also on destruction, ignoring errors
};

// A file read and written at offsets (a swap file).
class RandomRWFile {
 public:
  virtual ~RandomRWFile() = default;
  // Reads up to n bytes at offset into dst; *read < n only at end of file or
  // on a short read, which the caller must treat as an error for its page.
  virtual Status Read(uint64_t offset, void* dst, size_t n, size_t* read) = 0;
  virtual Status Write(uint64_t offset, const void* src, size_t n) = 0;
  // Reserves [offset, offset + n) on disk now, so a full disk fails here.
  virtual Status Allocate(uint64_t offset, uint64_t n) = 0;
  virtual Status Sync() = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  // Creates (or truncates) `path` for writing, mode 0644. Never through a
  // symbolic link: a link planted in a shared directory redirects nothing.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens `path` for positioned reads and writes, creating it (mode 0600);
  // never through a symbolic link.
  virtual Result<std::unique_ptr<RandomRWFile>> NewRandomRWFile(const std::string& path) = 0;
  // Creates `path` empty (mode 0600), failing if anything is there already,
  // a symbolic link included: a scratch file (swap pages, streamed layers)
  // is always the node's own.
  virtual Status CreateScratchFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Makes `path` a directory, with each missing parent; what it creates is
  // mode 0700 (swap pages and cached shards are nobody else's). Ok when it
  // is a directory already; an error naming the path when it is not.
  virtual Status CreateDir(const std::string& path) = 0;
};

// Writes `contents` to `path` under a temporary name (path + ".partial"),
// renamed over `path` only when all of it is written and closed: a full disk
// or an I/O error leaves no truncated file, and says so naming the path.
Status WriteFileWhole(Env& env, const std::string& path, const std::string& contents);
// The end of such a write: `file` (written to path + ".partial", `written`
// saying how that went) closed and renamed to `path`, or on any failure
// removed, with one error naming `path`.
Status FinishPartialFile(Env& env, std::unique_ptr<WritableFile> file, const std::string& path, Status written);

// Where Strata keeps what it fetched (a node's shards, the coordinator's model
// mirrors and manifests) unless told otherwise: $XDG_CACHE_HOME/strata, else
// $HOME/.cache/strata, else /var/tmp/strata-cache.
std::string DefaultCacheDir();

// The real thing: POSIX calls, errors named with the path and strerror.
class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<RandomRWFile>> NewRandomRWFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status RemoveFile(const std::string& path) override;
  Status CreateDir(const std::string& path) override;
  Status CreateScratchFile(const std::string& path) override;
};

}  // namespace strata
