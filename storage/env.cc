#include "storage/env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/escape.h"

namespace strata {
namespace {

Status Errno(const std::string& what, const std::string& path, int error) {
  return Status::Error(what + " " + EscapeText(path) + ": " + std::strerror(error));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override { Close(); }

  Status Append(const void* data, size_t n) override {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Errno("cannot write", path_, w < 0 ? errno : EIO);
      p += w;
      n -= static_cast<size_t>(w);
    }
    return Status::Ok();
  }
  Status Sync() override { return ::fsync(fd_) == 0 ? Status::Ok() : Errno("cannot sync", path_, errno); }
  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    const int r = ::close(fd_);
    fd_ = -1;
    return r == 0 ? Status::Ok() : Errno("cannot close", path_, errno);
  }

 private:
  const std::string path_;
  int fd_;
};

class PosixRandomRWFile final : public RandomRWFile {
 public:
  PosixRandomRWFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomRWFile() override { ::close(fd_); }

  Status Read(uint64_t offset, void* dst, size_t n, size_t* read) override {
    *read = 0;
    auto* p = static_cast<uint8_t*>(dst);
    while (*read < n) {
      const ssize_t r = ::pread(fd_, p + *read, n - *read, static_cast<off_t>(offset + *read));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Errno("cannot read", path_, errno);
      if (r == 0) break;  // end of file
      *read += static_cast<size_t>(r);
    }
    return Status::Ok();
  }
  Status Write(uint64_t offset, const void* src, size_t n) override {
    const auto* p = static_cast<const uint8_t*>(src);
    size_t done = 0;
    while (done < n) {
      const ssize_t w = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(offset + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Errno("cannot write", path_, w < 0 ? errno : EIO);
      done += static_cast<size_t>(w);
    }
    return Status::Ok();
  }
  Status Allocate(uint64_t offset, uint64_t n) override {
    const int r = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(n));
    return r == 0 ? Status::Ok() : Errno("cannot reserve space in", path_, r);
  }
  Status Sync() override { return ::fdatasync(fd_) == 0 ? Status::Ok() : Errno("cannot sync", path_, errno); }

 private:
  const std::string path_;
  const int fd_;
};

}  // namespace

Result<std::unique_ptr<WritableFile>> PosixEnv::NewWritableFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", path, errno);
  return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
}

Result<std::unique_ptr<RandomRWFile>> PosixEnv::NewRandomRWFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot open", path, errno);
  return std::unique_ptr<RandomRWFile>(new PosixRandomRWFile(path, fd));
}

Status PosixEnv::CreateScratchFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", path, errno);
  ::close(fd);
  return Status::Ok();
}

Status PosixEnv::RenameFile(const std::string& from, const std::string& to) {
  return ::rename(from.c_str(), to.c_str()) == 0 ? Status::Ok() : Errno("cannot rename", from, errno);
}

Status PosixEnv::RemoveFile(const std::string& path) {
  return ::unlink(path.c_str()) == 0 || errno == ENOENT ? Status::Ok() : Errno("cannot remove", path, errno);
}

Status FinishPartialFile(Env& env, std::unique_ptr<WritableFile> file, const std::string& path, Status written) {
  const std::string tmp = path + ".partial";
  if (written.ok()) written = file->Close();
  if (written.ok()) written = env.RenameFile(tmp, path);
  if (written.ok()) return written;
  file.reset();
  env.RemoveFile(tmp);
  return Status::Error("cannot write " + EscapeText(path) + ": " + written.message());
}

Status WriteFileWhole(Env& env, const std::string& path, const std::string& contents) {
  auto file = env.NewWritableFile(path + ".partial");
  if (!file.ok()) return file.status();
  Status written = file.value()->Append(contents.data(), contents.size());
  return FinishPartialFile(env, std::move(file.value()), path, written);
}

std::string DefaultCacheDir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg != '\0') return std::string(xdg) + "/strata";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return std::string(home) + "/.cache/strata";
  return "/var/tmp/strata-cache";
}

Status PosixEnv::CreateDir(const std::string& path) {
  if (path.empty()) return Status::Error("cannot create a directory with an empty name");
  // Parents first: each prefix ending before a '/', then the path itself.
  for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    const std::string prefix = path.substr(0, end);
    struct stat st {};
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return Errno("cannot create directory", prefix, errno);
    if (::stat(prefix.c_str(), &st) != 0) return Errno("cannot use directory", prefix, errno);
    if (!S_ISDIR(st.st_mode)) return Errno("cannot use directory", prefix, ENOTDIR);
    if (end == std::string::npos) return Status::Ok();
  }
}

}  // namespace strata
