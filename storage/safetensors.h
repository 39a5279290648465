#pragma once
// Reader for the safetensors format: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}}, then the data bytes.
// Open() validates the whole header before anything is used: header length,
// JSON, dtypes, shape x dtype size == byte range, ranges inside the file, no
// overlaps. A malformed file gives one error naming the file and the cause.
// Thread-safe after Open(): everything is immutable.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/dtype.h"
#include "storage/env.h"
#include "storage/mapped_file.h"

namespace strata {

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  // inside the file's mapping; valid while the file lives
  uint64_t nbytes;
  // GGUF's llama q_proj/k_proj: rows of each of this many heads are in the
  // order of interleaved rotary pairs (row 2i + p holds Hugging Face's row
  // p * head_dim / 2 + i); 0: Hugging Face's own order.
  int64_t interleaved_rope_heads = 0;

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Largest header accepted (the format's own reference caps it at 100 MB).
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  const TensorView* Find(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::string& path() const { return file_->path(); }
  uint64_t size() const { return file_->size(); }
  // Where a tensor's bytes start in the file.
  uint64_t offset_of(const TensorView& view) const { return static_cast<uint64_t>(view.data - file_->data()); }
  // See MappedFile::Populate and MappedFile::Release.
  Status Populate(const TensorView& view) const { return file_->Populate(view.data, view.nbytes); }
  void Release(const TensorView& view) const { file_->Release(view.data, view.nbytes); }

 private:
  explicit SafetensorsFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
  Status ParseHeader();

  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
};

// Writes a safetensors file; tensors are laid out in the order given, each
// 8-byte aligned (the header is padded so data starts aligned too).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  // Writes exactly numel * DTypeSize(dtype) bytes into dst; called once,
  // one tensor at a time, so a large model never sits whole in memory.
  std::function<void(uint8_t* dst)> fill;
};
// Through `env`, so tests can fill the disk under it.
Status WriteSafetensors(Env& env, const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace strata
