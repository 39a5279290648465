#include "storage/fault_env.h"

#include <algorithm>
#include <cstring>

#include "base/escape.h"

namespace strata {
namespace {

class FaultyWritableFile final : public WritableFile {
 public:
  FaultyWritableFile(FaultInjectionEnv& env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  Status Append(const void* data, size_t n) override {
    Status st = env_.TakeWrite(path_, n);
    return st.ok() ? base_->Append(data, n) : st;
  }
  Status Sync() override { return base_->Sync(); }
  Status Close() override { return base_->Close(); }

 private:
  FaultInjectionEnv& env_;
  const std::string path_;
  std::unique_ptr<WritableFile> base_;
};

class FaultyRandomRWFile final : public RandomRWFile {
 public:
  FaultyRandomRWFile(FaultInjectionEnv& env, std::string path, std::unique_ptr<RandomRWFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  Status Read(uint64_t offset, void* dst, size_t n, size_t* read) override {
    size_t cap = n;
    Status st = env_.ReadFault(path_, &cap);
    if (!st.ok()) {
      *read = 0;
      return st;
    }
    return base_->Read(offset, dst, std::min(n, cap), read);
  }
  Status Write(uint64_t offset, const void* src, size_t n) override {
    Status st = env_.TakeWrite(path_, n);
    return st.ok() ? base_->Write(offset, src, n) : st;
  }
  Status Allocate(uint64_t offset, uint64_t n) override {
    Status st = env_.TakeWrite(path_, n);
    return st.ok() ? base_->Allocate(offset, n) : st;
  }
  Status Sync() override { return base_->Sync(); }

 private:
  FaultInjectionEnv& env_;
  const std::string path_;
  std::unique_ptr<RandomRWFile> base_;
};

}  // namespace

void FaultInjectionEnv::FailWritesAfter(uint64_t bytes, int error) {
  MutexLock lock(&mu_);
  limit_writes_ = true;
  write_allowance_ = bytes;
  write_error_ = error;
}

void FaultInjectionEnv::FailReads(int error) {
  MutexLock lock(&mu_);
  read_error_ = error;
}

void FaultInjectionEnv::ShortReads(size_t at_most) {
  MutexLock lock(&mu_);
  short_reads_ = at_most;
}

void FaultInjectionEnv::Heal() {
  MutexLock lock(&mu_);
  limit_writes_ = false;
  read_error_ = 0;
  short_reads_ = 0;
}

Status FaultInjectionEnv::TakeWrite(const std::string& path, uint64_t n) {
  MutexLock lock(&mu_);
  if (!limit_writes_) return Status::Ok();
  if (n > write_allowance_) {
    write_allowance_ = 0;
    return Status::Error("cannot write " + EscapeText(path) + ": " + std::strerror(write_error_));
  }
  write_allowance_ -= n;
  return Status::Ok();
}

Status FaultInjectionEnv::ReadFault(const std::string& path, size_t* cap) {
  MutexLock lock(&mu_);
  if (read_error_ != 0) return Status::Error("cannot read " + EscapeText(path) + ": " + std::strerror(read_error_));
  if (short_reads_ > 0) *cap = std::min(*cap, short_reads_);
  return Status::Ok();
}

Result<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewWritableFile(const std::string& path) {
  auto file = base_.NewWritableFile(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<WritableFile>(new FaultyWritableFile(*this, path, std::move(file.value())));
}

Result<std::unique_ptr<RandomRWFile>> FaultInjectionEnv::NewRandomRWFile(const std::string& path) {
  auto file = base_.NewRandomRWFile(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<RandomRWFile>(new FaultyRandomRWFile(*this, path, std::move(file.value())));
}

}  // namespace strata
