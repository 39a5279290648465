#include "storage/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata {

Result<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Error(path + " is not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* addr = nullptr;
  if (size > 0) {
    addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return Status::Error("cannot map " + path + ": " + std::strerror(err));
    }
  }
  ::close(fd);  // the mapping keeps the file alive
  return std::unique_ptr<MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(addr), size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

Status MappedFile::Populate(const uint8_t* begin, size_t n) const {
  if (n == 0) return Status::Ok();
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t lo = reinterpret_cast<uintptr_t>(begin) & ~(page - 1);
  const size_t len = reinterpret_cast<uintptr_t>(begin) + n - lo;
  ::madvise(reinterpret_cast<void*>(lo), len, MADV_WILLNEED);
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
  if (::madvise(reinterpret_cast<void*>(lo), len, MADV_POPULATE_READ) == 0) return Status::Ok();
  if (errno == EINVAL) {  // kernels before 5.14: touch a byte a page
    volatile uint8_t sink = 0;
    for (uintptr_t p = lo; p < lo + len; p += page) sink = sink + *reinterpret_cast<const uint8_t*>(p);
    return Status::Ok();
  }
  return Status::Error("cannot read " + path_ + ": " + std::strerror(errno));
}

void MappedFile::Release(const uint8_t* begin, size_t n) const {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t lo = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1);
  uintptr_t hi = (reinterpret_cast<uintptr_t>(begin) + n) & ~(page - 1);
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace strata
