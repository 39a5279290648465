#include "storage/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/escape.h"

namespace strata {

namespace {

Result<std::string> ReadBounded(const std::string& path, const std::string& what, size_t max_bytes, bool secret) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot read " + what + " " + EscapeText(path) + ": " + std::strerror(errno));
  struct stat st;
  std::string text;
  Status status = Status::Ok();
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    status = Status::Error(what + " " + EscapeText(path) + " is not a regular file");
  } else if (secret && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    status = Status::Error(what + " " + EscapeText(path) + " is readable by others (mode " + mode +
                           "); run: chmod 600 " + EscapeText(path));
  } else if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    status = Status::Error(what + " " + EscapeText(path) + " is over " + std::to_string(max_bytes) + " bytes");
  } else {
    text.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, &text[got], text.size() - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    text.resize(got);
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

}  // namespace

Result<std::string> ReadSmallFile(const std::string& path, const std::string& what, size_t max_bytes) {
  return ReadBounded(path, what, max_bytes, false);
}

Result<std::string> ReadPrivateFile(const std::string& path, const std::string& what, size_t max_bytes) {
  return ReadBounded(path, what, max_bytes, true);
}

}  // namespace strata
