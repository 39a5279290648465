#pragma once
// A read-only memory map of a whole file. Thread-safe after Open(): the
// mapping is immutable until destruction.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace strata {

class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Maps the pages of [begin, begin+n) in now, reading them from disk if
  // needed, so the first forward does not fault them in one by one.
  Status Populate(const uint8_t* begin, size_t n) const;

  // Drops this process's pages of [begin, begin+n) (after the bytes were
  // copied elsewhere) so resident memory reflects only what is still used.
  void Release(const uint8_t* begin, size_t n) const;

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;  // nullptr when size_ == 0
  size_t size_;
};

}  // namespace strata
