#include "storage/page_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include "base/mutex.h"
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <random>
#include <thread>

#include "base/escape.h"

namespace strata {
namespace {

constexpr size_t kAlign = 4096;

using AlignedBuffer = AlignedBytes;

// Runs submitted jobs one after another on a thread of its own.
class IoThread : public PageIo {
 public:
  IoThread(size_t page_bytes, uint32_t count) : page_bytes_(page_bytes) {
    for (uint32_t i = 0; i < count; ++i) {
      buffers_.emplace_back(static_cast<uint8_t*>(std::aligned_alloc(kAlign, page_bytes)));
    }
  }
  ~IoThread() override { Stop(); }

  uint8_t* buffer(uint32_t index) override { return buffers_.at(index).get(); }
  uint32_t buffer_count() const override { return static_cast<uint32_t>(buffers_.size()); }
  size_t page_bytes() const override { return page_bytes_; }

  void Submit(std::vector<Op> ops, Done done) override {
    {
      MutexLock lock(&mu_);
      jobs_.push_back({std::move(ops), std::move(done)});
    }
    cv_.Signal();
  }

 protected:
  struct Job {
    std::vector<Op> ops;
    Done done;
  };
  void Start() { thread_ = std::thread([this]() { Loop(); }); }
  // Derived destructors stop the thread before their members go.
  void Stop() {
    {
      MutexLock lock(&mu_);
      stop_ = true;
    }
    cv_.Signal();
    if (thread_.joinable()) thread_.join();
  }
  virtual std::vector<Status> Run(const std::vector<Op>& ops) = 0;

  // The op's own checks, before it reaches the disk.
  uint8_t* Memory(const Op& op) const { return op.data != nullptr ? op.data : buffers_[op.buffer].get(); }

  Status Check(const Op& op) const {
    if (op.data != nullptr && reinterpret_cast<uintptr_t>(op.data) % kAlign != 0) {
      return Status::Error("page I/O memory is not 4096-aligned");
    }
    if (op.data == nullptr && op.buffer >= buffers_.size()) return Status::Error("page I/O names buffer " + std::to_string(op.buffer));
    if (op.offset % kAlign != 0) return Status::Error("page I/O offset " + std::to_string(op.offset) + " is unaligned");
    return Status::Ok();
  }

  const size_t page_bytes_;
  std::vector<AlignedBuffer> buffers_;

 private:
  void Loop() {
    while (true) {
      Job job;
      {
        MutexLock lock(&mu_);
        while (!stop_ && jobs_.empty()) cv_.Wait(&mu_);
        if (jobs_.empty()) return;  // stopping, nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job.done(Run(job.ops));
    }
  }
  Mutex mu_;
  CondVar cv_;  // under mu_
  std::deque<Job> jobs_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

std::string OpName(const PageIo::Op& op) {
  return std::string(op.write ? "write" : "read") + " of the page at byte " + std::to_string(op.offset);
}

class UringPageIo final : public IoThread {
 public:
  UringPageIo(std::string path, int fd, const PageIoOptions& o)
      : IoThread(o.page_bytes, o.buffers), path_(std::move(path)), fd_(fd), depth_(o.queue_depth) {}
  ~UringPageIo() override {
    Stop();
    if (ring_ready_) io_uring_queue_exit(&ring_);
    ::close(fd_);
  }
  const char* kind() const override { return "io_uring"; }

  Status Init() {
    const int r = io_uring_queue_init(depth_, &ring_, 0);
    if (r < 0) return Status::Error(std::string("io_uring is not available here: ") + std::strerror(-r));
    ring_ready_ = true;
    std::vector<iovec> iov;
    for (auto& b : buffers_) iov.push_back({b.get(), page_bytes_});
    const int g = io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size()));
    if (g < 0) return Status::Error(std::string("cannot register page buffers with io_uring: ") + std::strerror(-g));
    Start();
    return Status::Ok();
  }

 private:
  std::vector<Status> Run(const std::vector<Op>& ops) override {
    std::vector<Status> result(ops.size());
    std::vector<bool> completed(ops.size(), false);
    size_t next = 0, in_flight = 0, finished = 0;
    while (finished < ops.size()) {
      // Fill the queue, then submit the whole batch with one call.
      while (next < ops.size() && in_flight < depth_) {
        const Op& op = ops[next];
        Status st = Check(op);
        if (!st.ok()) {
          result[next] = st;
          completed[next++] = true;
          ++finished;
          continue;
        }
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;
        if (op.data != nullptr && op.write) {
          io_uring_prep_write(sqe, fd_, op.data, static_cast<unsigned>(page_bytes_), op.offset);
        } else if (op.data != nullptr) {
          io_uring_prep_read(sqe, fd_, op.data, static_cast<unsigned>(page_bytes_), op.offset);
        } else if (op.write) {
          io_uring_prep_write_fixed(sqe, fd_, buffers_[op.buffer].get(), static_cast<unsigned>(page_bytes_), op.offset,
                                    static_cast<int>(op.buffer));
        } else {
          io_uring_prep_read_fixed(sqe, fd_, buffers_[op.buffer].get(), static_cast<unsigned>(page_bytes_), op.offset,
                                   static_cast<int>(op.buffer));
        }
        io_uring_sqe_set_data64(sqe, next);
        ++next;
        ++in_flight;
      }
      if (in_flight == 0) continue;
      io_uring_submit(&ring_);
      io_uring_cqe* cqe = nullptr;
      int r = io_uring_wait_cqe(&ring_, &cqe);
      if (r == -EINTR) continue;
      if (r < 0) {  // the ring itself failed: every op still open fails with it
        for (size_t i = 0; i < ops.size(); ++i) {
          if (!completed[i]) result[i] = Status::Error("io_uring: " + std::string(std::strerror(-r)));
        }
        return result;
      }
      do {
        const size_t i = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
        const int res = cqe->res;
        if (res < 0) {
          result[i] = Status::Error(OpName(ops[i]) + " of " + EscapeText(path_) + " failed: " + std::strerror(-res));
        } else if (static_cast<size_t>(res) != page_bytes_) {
          result[i] = Status::Error(OpName(ops[i]) + " of " + EscapeText(path_) + " was short: " +
                                    std::to_string(res) + " of " + std::to_string(page_bytes_) + " bytes");
        }
        io_uring_cqe_seen(&ring_, cqe);
        completed[i] = true;
        --in_flight;
        ++finished;
      } while (io_uring_peek_cqe(&ring_, &cqe) == 0);
    }
    return result;
  }

  const std::string path_;
  const int fd_;
  const uint32_t depth_;
  io_uring ring_{};
  bool ring_ready_ = false;
};

class EnvPageIo final : public IoThread {
 public:
  EnvPageIo(std::string path, std::unique_ptr<RandomRWFile> file, const PageIoOptions& o, int threads)
      : IoThread(o.page_bytes, o.buffers), path_(std::move(path)), file_(std::move(file)), threads_(threads) {
    Start();
  }
  ~EnvPageIo() override { Stop(); }
  const char* kind() const override { return "pread"; }

 private:
  Status RunOne(const Op& op) {
    Status st = Check(op);
    if (!st.ok()) return st;
    if (op.write) return file_->Write(op.offset, Memory(op), page_bytes_);
    size_t read = 0;
    st = file_->Read(op.offset, Memory(op), page_bytes_, &read);
    if (st.ok() && read != page_bytes_) {
      st = Status::Error(OpName(op) + " of " + EscapeText(path_) + " was short: " + std::to_string(read) + " of " +
                         std::to_string(page_bytes_) + " bytes");
    }
    return st;
  }
  std::vector<Status> Run(const std::vector<Op>& ops) override {
    std::vector<Status> result(ops.size());
    std::vector<std::thread> pool;
    const size_t n = std::min<size_t>(static_cast<size_t>(threads_), ops.size());
    for (size_t t = 0; t < n; ++t) {
      pool.emplace_back([&, t]() {
        for (size_t i = t; i < ops.size(); i += n) result[i] = RunOne(ops[i]);
      });
    }
    for (auto& th : pool) th.join();
    return result;
  }

  const std::string path_;
  std::unique_ptr<RandomRWFile> file_;
  const int threads_;
};

Status CheckOptions(const PageIoOptions& o) {
  if (o.page_bytes == 0 || o.page_bytes % kAlign != 0) {
    return Status::Error("page size " + std::to_string(o.page_bytes) + " is not a multiple of 4096");
  }
  if (o.buffers == 0 || o.queue_depth == 0) return Status::Error("page I/O needs buffers and a queue depth");
  return Status::Ok();
}

}  // namespace

void AlignedFree::operator()(uint8_t* p) const { std::free(p); }

AlignedBytes AllocateAligned(size_t n) {
  const size_t size = RoundUpToBlock(std::max<size_t>(n, 1));
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kAlign, size));
  if (p != nullptr && size > n) std::memset(p + n, 0, size - n);
  return AlignedBytes(p);
}

Result<std::unique_ptr<PageIo>> OpenUringPageIo(const std::string& path, const PageIoOptions& options) {
  Status st = CheckOptions(options);
  if (!st.ok()) return st;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot open " + EscapeText(path) + " for direct I/O: " + std::strerror(errno));
  if (options.file_bytes > 0) {
    const int r = ::posix_fallocate(fd, 0, static_cast<off_t>(options.file_bytes));
    if (r != 0) {
      ::close(fd);
      return Status::Error("cannot reserve " + std::to_string(options.file_bytes >> 20) + " MiB in " +
                           EscapeText(path) + ": " + std::strerror(r));
    }
  }
  auto io = std::make_unique<UringPageIo>(path, fd, options);
  st = io->Init();
  if (!st.ok()) return st;
  return std::unique_ptr<PageIo>(std::move(io));
}

Result<std::unique_ptr<PageIo>> OpenEnvPageIo(Env& env, const std::string& path, const PageIoOptions& options,
                                              int threads) {
  Status st = CheckOptions(options);
  if (!st.ok()) return st;
  auto file = env.NewRandomRWFile(path);
  if (!file.ok()) return file.status();
  if (options.file_bytes > 0) {
    st = file.value()->Allocate(0, options.file_bytes);
    if (!st.ok()) return st;
  }
  return std::unique_ptr<PageIo>(new EnvPageIo(path, std::move(file.value()), options, std::max(1, threads)));
}

Result<std::unique_ptr<PageIo>> OpenPageIo(Env& env, const std::string& path, const PageIoOptions& options,
                                           std::string* note) {
  note->clear();
  auto uring = OpenUringPageIo(path, options);
  if (uring.ok()) return uring;
  *note = uring.status().message() + "; using a pread/pwrite thread pool instead";
  return OpenEnvPageIo(env, path, options);
}

Result<std::unique_ptr<PageIo>> OpenScratchPageIo(Env& env, const std::string& dir, const std::string& prefix,
                                                  const PageIoOptions& options, bool thread_pool, std::string* note) {
  std::random_device random;
  char name[17];
  std::snprintf(name, sizeof name, "%08x%08x", random(), random());
  const std::string path = dir + "/" + prefix + "-" + name + ".bin";
  note->clear();
  Status created = env.CreateScratchFile(path);
  if (!created.ok()) return created;
  auto io = thread_pool ? OpenEnvPageIo(env, path, options) : OpenPageIo(env, path, options, note);
  Status removed = env.RemoveFile(path);  // the open file is all that is needed
  (void)removed;
  return io;
}

std::vector<Status> RunPageIo(PageIo& io, std::vector<PageIo::Op> ops) {
  std::promise<std::vector<Status>> promise;
  auto future = promise.get_future();
  io.Submit(std::move(ops), [&promise](std::vector<Status> result) { promise.set_value(std::move(result)); });
  return future.get();
}

}  // namespace strata
