#pragma once
// FaultInjectionEnv: an Env that forwards to another and fails what a test
// asks for, inside the real code path: writes past a byte allowance fail with
// ENOSPC (or any errno) as a full disk would, reads fail with EIO, or come
// back short. Thread-safe: mu_ guards the fault settings; files made by it
// must not outlive it.
#include <cerrno>
#include <cstdint>

#include "base/mutex.h"
#include "storage/env.h"

namespace strata {

class FaultInjectionEnv final : public Env {
 public:
  explicit FaultInjectionEnv(Env& base) : base_(base) {}

  // From now on, writes fail with `error` once `bytes` more have been
  // written (across every file of this Env); Allocate past it too.
  void FailWritesAfter(uint64_t bytes, int error = ENOSPC);
  void FailReads(int error = EIO);
  void ShortReads(size_t at_most);  // every read returns at most this many bytes
  void Heal();                      // no more faults

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<RandomRWFile>> NewRandomRWFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override { return base_.RenameFile(from, to); }
  Status RemoveFile(const std::string& path) override { return base_.RemoveFile(path); }
  Status CreateDir(const std::string& path) override { return base_.CreateDir(path); }
  Status CreateScratchFile(const std::string& path) override { return base_.CreateScratchFile(path); }

  // For the wrapped files: may `n` bytes be written now? Counts them if so.
  Status TakeWrite(const std::string& path, uint64_t n);
  // For the wrapped files: the read fault, if any, and the read size cap.
  Status ReadFault(const std::string& path, size_t* cap);

 private:
  Env& base_;
  Mutex mu_;
  bool limit_writes_ GUARDED_BY(mu_) = false;
  uint64_t write_allowance_ GUARDED_BY(mu_) = 0;
  int write_error_ GUARDED_BY(mu_) = ENOSPC;
  int read_error_ GUARDED_BY(mu_) = 0;
  size_t short_reads_ GUARDED_BY(mu_) = 0;  // 0: off
};

}  // namespace strata
