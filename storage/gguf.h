#pragma once
// Reader for GGUF (llama.cpp's model file, versions 2 and 3): a header, a
// table of typed metadata (config, tokenizer, chat template), a table of
// tensors (name, shape, type, offset), then the aligned tensor data.
//
// Open() validates everything before anything is used: the magic and
// version; every count, string and array length against the bytes that
// remain (so a hostile count allocates nothing); value types; tensor
// dimensions, types and their byte size; each tensor's range inside the
// data section, aligned and not overlapping another; unique keys and
// names. A malformed file gives one error naming the file and the cause.
// The file is memory-mapped: opening reads only the tables, so a node that
// uses a few layers pages in only those layers' bytes.
//
// Thread-safe after Open(): everything is immutable.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/mapped_file.h"
#include "storage/safetensors.h"

namespace strata {

// One metadata value. Scalars are widened (integers to int64/uint64, floats
// to double); arrays hold their elements the same way.
struct GgufValue {
  enum class Kind : uint8_t { kInt, kUint, kFloat, kBool, kString, kArray };
  Kind kind = Kind::kInt;
  uint32_t gguf_type = 0;           // the file's own type code (for arrays: of the elements)
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  Kind element = Kind::kInt;        // arrays: what the elements are
  std::vector<int64_t> ints;        // arrays of integers or bools (unsigned ones fit: checked)
  std::vector<double> floats;       // arrays of floats
  std::vector<std::string> strings; // arrays of strings
};

class GgufFile {
 public:
  static constexpr uint64_t kMaxTensors = 1u << 16;
  static constexpr uint64_t kMaxKeys = 1u << 16;
  static constexpr uint64_t kMaxStringBytes = 16u << 20;  // one key or string value
  static constexpr uint32_t kMaxDims = 4;

  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);

  uint32_t version() const { return version_; }
  const std::string& path() const { return file_->path(); }
  uint64_t size() const { return file_->size(); }
  uint64_t alignment() const { return alignment_; }

  const GgufValue* Find(const std::string& key) const;
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  // Typed reads: the value, or an error naming the key and what was wanted.
  Result<int64_t> Int(const std::string& key) const;        // any integer type that fits
  Result<double> Float(const std::string& key) const;       // a float, or an integer
  Result<std::string> String(const std::string& key) const;
  Result<bool> Bool(const std::string& key) const;
  Result<const GgufValue*> Array(const std::string& key, GgufValue::Kind element) const;

  // Tensors by their GGUF names ("blk.0.attn_q.weight"); shapes row-major,
  // the innermost dimension last (GGUF lists ne[0] first: reversed here).
  const TensorView* FindTensor(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  uint64_t offset_of(const TensorView& view) const { return static_cast<uint64_t>(view.data - file_->data()); }
  Status Populate(const TensorView& view) const { return file_->Populate(view.data, view.nbytes); }
  void Release(const TensorView& view) const { file_->Release(view.data, view.nbytes); }

 private:
  explicit GgufFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
  Status Parse();
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::map<std::string, TensorView> tensors_;
};

// GGUF's tensor type codes (ggml_type) for the types Strata reads; false
// for any other code. GgufTypeName names any code, known or not.
bool DTypeFromGguf(uint32_t ggml_type, DType* out);
uint32_t GgufTypeOf(DType dtype);  // the inverse, for writers
std::string GgufTypeName(uint32_t ggml_type);

}  // namespace strata

namespace strata {

// Metadata values for a writer, typed as GGUF types them.
GgufValue GgufU32(uint32_t v);
GgufValue GgufI32(int32_t v);
GgufValue GgufF32(float v);
GgufValue GgufBool(bool v);
GgufValue GgufStr(std::string v);
GgufValue GgufStrArray(std::vector<std::string> v);
GgufValue GgufF32Array(std::vector<float> v);
GgufValue GgufI32Array(std::vector<int32_t> v);

struct GgufTensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // row-major, the innermost dimension last
  // Writes exactly the tensor's bytes (DTypeBytes) into dst; called once,
  // one tensor at a time, so a large model never sits whole in memory.
  std::function<void(uint8_t* dst)> fill;
};

// The head of a GGUF v3 file: header, metadata in the order given and the
// tensor table, padded to the data's alignment (32); `offsets` gets each
// tensor's absolute offset in the file, tensors in the order given, each
// aligned. `fill` is not called. An error names a tensor no GGUF type holds.
Result<std::string> GgufHead(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                             const std::vector<GgufTensorToWrite>& tensors, std::vector<uint64_t>* offsets);

// Writes a GGUF v3 file through `env` (tests fill the disk under it): the
// head (GgufHead), then every tensor's bytes.
Status WriteGguf(Env& env, const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                 const std::vector<GgufTensorToWrite>& tensors);

}  // namespace strata
