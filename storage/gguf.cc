#include "storage/gguf.h"

#include <algorithm>
#include <cstring>

#include "base/escape.h"

namespace strata {
namespace {

// GGUF's metadata value types.
enum : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

size_t ScalarBytes(uint32_t type) {
  switch (type) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    case kString: return 8;  // at least its length
    default: return 0;
  }
}

// Bounds-checked little-endian reads over the mapped bytes.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  bool Bytes(void* out, uint64_t n) {
    if (n > left()) return false;
    std::memcpy(out, data_ + pos_, n);
    pos_ += n;
    return true;
  }
  template <typename T>
  bool Get(T* out) { return Bytes(out, sizeof(T)); }
  bool Str(std::string* out, uint64_t max) {
    uint64_t n;
    if (!Get(&n) || n > max || n > left()) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return true;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// One scalar of `type` into v (kind and widened value).
bool ReadScalar(Cursor& c, uint32_t type, GgufValue* v, std::string* why) {
  auto fail = [&](const char* what) { *why = what; return false; };
  switch (type) {
    case kU8: { uint8_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kUint; v->u = x; return true; }
    case kI8: { int8_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kInt; v->i = x; return true; }
    case kU16: { uint16_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kUint; v->u = x; return true; }
    case kI16: { int16_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kInt; v->i = x; return true; }
    case kU32: { uint32_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kUint; v->u = x; return true; }
    case kI32: { int32_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kInt; v->i = x; return true; }
    case kU64: { uint64_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kUint; v->u = x; return true; }
    case kI64: { int64_t x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kInt; v->i = x; return true; }
    case kF32: { float x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kFloat; v->f = x; return true; }
    case kF64: { double x; if (!c.Get(&x)) break; v->kind = GgufValue::Kind::kFloat; v->f = x; return true; }
    case kBool: {
      uint8_t x;
      if (!c.Get(&x)) break;
      if (x > 1) return fail("a bool that is neither 0 nor 1");
      v->kind = GgufValue::Kind::kBool;
      v->b = x != 0;
      return true;
    }
    case kString:
      if (!c.Str(&v->s, GgufFile::kMaxStringBytes)) return fail("a string longer than the file or the 16 MiB limit");
      v->kind = GgufValue::Kind::kString;
      return true;
    default: return fail("an unknown value type");
  }
  return fail("a value past the end of the file");
}

bool ReadValue(Cursor& c, uint32_t type, GgufValue* v, std::string* why) {
  v->gguf_type = type;
  if (type != kArray) return ReadScalar(c, type, v, why);
  uint32_t element;
  uint64_t count;
  if (!c.Get(&element) || !c.Get(&count)) {
    *why = "an array header past the end of the file";
    return false;
  }
  if (element == kArray) {
    *why = "an array of arrays (not used by any model format Strata reads)";
    return false;
  }
  const size_t least = ScalarBytes(element);
  if (least == 0) {
    *why = "an array of an unknown value type " + std::to_string(element);
    return false;
  }
  if (count > c.left() / least) {
    *why = "an array of " + std::to_string(count) + " elements, more than the file holds";
    return false;
  }
  v->kind = GgufValue::Kind::kArray;
  v->gguf_type = element;
  for (uint64_t k = 0; k < count; ++k) {
    GgufValue item;
    if (!ReadScalar(c, element, &item, why)) return false;
    v->element = item.kind;
    switch (item.kind) {
      case GgufValue::Kind::kString: v->strings.push_back(std::move(item.s)); break;
      case GgufValue::Kind::kFloat: v->floats.push_back(item.f); break;
      case GgufValue::Kind::kBool: v->ints.push_back(item.b); break;
      case GgufValue::Kind::kInt: v->ints.push_back(item.i); break;
      case GgufValue::Kind::kUint:
        if (item.u > static_cast<uint64_t>(INT64_MAX)) {
          *why = "an unsigned array element too large";
          return false;
        }
        v->ints.push_back(static_cast<int64_t>(item.u));
        v->element = GgufValue::Kind::kInt;
        break;
      default: break;
    }
  }
  if (count == 0) v->element = ScalarBytes(element) && element == kString ? GgufValue::Kind::kString
                               : element == kF32 || element == kF64      ? GgufValue::Kind::kFloat
                                                                         : GgufValue::Kind::kInt;
  return true;
}

const char* KindName(GgufValue::Kind k) {
  switch (k) {
    case GgufValue::Kind::kInt: case GgufValue::Kind::kUint: return "an integer";
    case GgufValue::Kind::kFloat: return "a float";
    case GgufValue::Kind::kBool: return "a bool";
    case GgufValue::Kind::kString: return "a string";
    case GgufValue::Kind::kArray: return "an array";
  }
  return "?";
}

}  // namespace

bool DTypeFromGguf(uint32_t ggml_type, DType* out) {
  switch (ggml_type) {
    case 0: *out = DType::kF32; return true;
    case 1: *out = DType::kF16; return true;
    case 2: *out = DType::kQ4_0; return true;
    case 3: *out = DType::kQ4_1; return true;
    case 6: *out = DType::kQ5_0; return true;
    case 7: *out = DType::kQ5_1; return true;
    case 8: *out = DType::kQ8_0; return true;
    case 12: *out = DType::kQ4_K; return true;
    case 13: *out = DType::kQ5_K; return true;
    case 14: *out = DType::kQ6_K; return true;
    case 30: *out = DType::kBF16; return true;
    default: return false;
  }
}

uint32_t GgufTypeOf(DType dtype) {
  for (uint32_t t = 0; t <= 40; ++t) {
    DType d;
    if (DTypeFromGguf(t, &d) && d == dtype) return t;
  }
  return UINT32_MAX;
}

std::string GgufTypeName(uint32_t ggml_type) {
  DType d;
  if (DTypeFromGguf(ggml_type, &d)) return DTypeString(d);
  static const char* kOthers[] = {nullptr, nullptr, nullptr, nullptr, "Q4_2", "Q4_3", nullptr, nullptr, nullptr,
                                  "Q8_1", "Q2_K", "Q3_K", nullptr, nullptr, nullptr, "Q8_K", "IQ2_XXS", "IQ2_XS",
                                  "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32",
                                  "I64", "F64", "IQ1_M"};
  if (ggml_type < sizeof kOthers / sizeof kOthers[0] && kOthers[ggml_type] != nullptr) {
    return std::string(kOthers[ggml_type]) + " (type " + std::to_string(ggml_type) + ")";
  }
  return "type " + std::to_string(ggml_type);
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  auto mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  std::unique_ptr<GgufFile> file(new GgufFile(std::move(mapped.value())));
  Status st = file->Parse();
  if (!st.ok()) return Status::Error("malformed GGUF file " + path + ": " + st.message());
  return file;
}

Status GgufFile::Parse() {
  Cursor c(file_->data(), file_->size());
  char magic[4];
  if (!c.Bytes(magic, 4) || std::memcmp(magic, "GGUF", 4) != 0) return Status::Error("no GGUF magic at the start");
  uint64_t tensor_count, kv_count;
  if (!c.Get(&version_) || !c.Get(&tensor_count) || !c.Get(&kv_count)) return Status::Error("header truncated");
  if (version_ != 2 && version_ != 3) return Status::Error("version " + std::to_string(version_) + " (2 and 3 are read)");
  if (tensor_count > kMaxTensors) return Status::Error(std::to_string(tensor_count) + " tensors, more than the limit of 65536");
  if (kv_count > kMaxKeys) return Status::Error(std::to_string(kv_count) + " metadata keys, more than the limit of 65536");

  for (uint64_t k = 0; k < kv_count; ++k) {
    std::string key, why;
    uint32_t type;
    if (!c.Str(&key, 65536) || !c.Get(&type)) {
      return Status::Error("metadata key " + std::to_string(k) + " of " + std::to_string(kv_count) + " truncated");
    }
    GgufValue v;
    if (!ReadValue(c, type, &v, &why)) return Status::Error("metadata '" + EscapeText(key, 128) + "': " + why);
    if (!metadata_.emplace(key, std::move(v)).second) return Status::Error("metadata key '" + EscapeText(key, 128) + "' twice");
  }
  if (const GgufValue* a = Find("general.alignment")) {
    if (a->kind != GgufValue::Kind::kUint || a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > (1u << 20)) {
      return Status::Error("general.alignment must be a power of two up to 1 MiB");
    }
    alignment_ = a->u;
  }

  struct Info { std::string name; DType dtype; std::vector<int64_t> shape; uint64_t offset, nbytes; };
  std::vector<Info> infos;
  for (uint64_t t = 0; t < tensor_count; ++t) {
    Info info;
    uint32_t dims, type;
    if (!c.Str(&info.name, 65536) || !c.Get(&dims)) return Status::Error("tensor " + std::to_string(t) + "'s entry truncated");
    const std::string name = "tensor '" + EscapeText(info.name, 128) + "'";
    if (dims == 0 || dims > kMaxDims) return Status::Error(name + " has " + std::to_string(dims) + " dimensions (1 to 4)");
    std::vector<int64_t> ne(dims);
    for (uint32_t d = 0; d < dims; ++d) {
      uint64_t n;
      if (!c.Get(&n)) return Status::Error(name + "'s entry truncated");
      if (n == 0 || n > (1ull << 40)) return Status::Error(name + " has a dimension of " + std::to_string(n));
      ne[d] = static_cast<int64_t>(n);
    }
    if (!c.Get(&type) || !c.Get(&info.offset)) return Status::Error(name + "'s entry truncated");
    if (!DTypeFromGguf(type, &info.dtype)) {
      return Status::Error(name + " has tensor type " + GgufTypeName(type) + ", which Strata does not read");
    }
    info.shape.assign(ne.rbegin(), ne.rend());
    if (!DTypeBytes(info.dtype, info.shape, &info.nbytes)) {
      return Status::Error(name + ": its rows of " + std::to_string(ne[0]) + " are not whole " +
                           DTypeString(info.dtype) + " blocks of " + std::to_string(DTypeBlockElements(info.dtype)) +
                           ", or it is too large");
    }
    if (info.offset % alignment_ != 0) return Status::Error(name + " starts at an unaligned offset");
    infos.push_back(std::move(info));
  }
  const uint64_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > file_->size()) return Status::Error("the tensor table runs to the end of the file: no data section");
  const uint64_t data_size = file_->size() - data_start;
  for (const Info& info : infos) {
    if (info.offset > data_size || info.nbytes > data_size - info.offset) {
      return Status::Error("tensor '" + EscapeText(info.name, 128) + "' runs past the end of the file (truncated?)");
    }
  }
  std::vector<const Info*> by_offset;
  for (const Info& info : infos) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](const Info* a, const Info* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->offset + by_offset[i - 1]->nbytes > by_offset[i]->offset) {
      return Status::Error("tensors '" + EscapeText(by_offset[i - 1]->name, 128) + "' and '" +
                           EscapeText(by_offset[i]->name, 128) + "' overlap");
    }
  }
  for (Info& info : infos) {
    TensorView view{info.name, info.dtype, info.shape, file_->data() + data_start + info.offset, info.nbytes};
    if (!tensors_.emplace(info.name, std::move(view)).second) {
      return Status::Error("tensor '" + EscapeText(info.name, 128) + "' twice");
    }
  }
  return Status::Ok();
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const TensorView* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {
Status WrongKind(const std::string& path, const std::string& key, const char* want, const GgufValue* v) {
  if (v == nullptr) return Status::Error("GGUF file " + path + " has no metadata key " + key);
  return Status::Error("GGUF file " + path + ": " + key + " is " + KindName(v->kind) + ", not " + want);
}
}  // namespace

Result<int64_t> GgufFile::Int(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v != nullptr && v->kind == GgufValue::Kind::kInt) return v->i;
  if (v != nullptr && v->kind == GgufValue::Kind::kUint && v->u <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->u);
  }
  return WrongKind(path(), key, "an integer", v);
}

Result<double> GgufFile::Float(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v != nullptr && v->kind == GgufValue::Kind::kFloat) return v->f;
  auto i = Int(key);
  if (i.ok()) return static_cast<double>(i.value());
  return WrongKind(path(), key, "a number", v);
}

Result<std::string> GgufFile::String(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v != nullptr && v->kind == GgufValue::Kind::kString) return v->s;
  return WrongKind(path(), key, "a string", v);
}

Result<bool> GgufFile::Bool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v != nullptr && v->kind == GgufValue::Kind::kBool) return v->b;
  return WrongKind(path(), key, "a bool", v);
}

Result<const GgufValue*> GgufFile::Array(const std::string& key, GgufValue::Kind element) const {
  const GgufValue* v = Find(key);
  if (v != nullptr && v->kind == GgufValue::Kind::kArray && v->element == element) return v;
  if (v != nullptr && v->kind == GgufValue::Kind::kArray) {
    return Status::Error("GGUF file " + path() + ": " + key + " is an array of " + KindName(v->element) + "s, not of " +
                         KindName(element) + "s");
  }
  return WrongKind(path(), key, "an array", v);
}

}  // namespace strata
