// WriteGguf and the typed metadata values it writes (storage/gguf.h).
#include <cstring>

#include "storage/gguf.h"

namespace strata {
namespace {

constexpr uint64_t kGgufAlignment = 32;
enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

class Bytes {
 public:
  template <typename T>
  void Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void Str(const std::string& s) {
    Put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void Pad(uint64_t alignment) { out_.resize((out_.size() + alignment - 1) / alignment * alignment, 0); }
  std::vector<uint8_t>& data() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

void PutValue(Bytes& b, const GgufValue& v) {
  if (v.kind == GgufValue::Kind::kArray) {
    b.Put<uint32_t>(kArray);
    b.Put<uint32_t>(v.gguf_type);
    if (v.gguf_type == kString) {
      b.Put<uint64_t>(v.strings.size());
      for (const auto& s : v.strings) b.Str(s);
    } else if (v.gguf_type == kF32) {
      b.Put<uint64_t>(v.floats.size());
      for (double f : v.floats) b.Put(static_cast<float>(f));
    } else {
      b.Put<uint64_t>(v.ints.size());
      for (int64_t i : v.ints) b.Put(static_cast<int32_t>(i));
    }
    return;
  }
  b.Put<uint32_t>(v.gguf_type);
  switch (v.gguf_type) {
    case kU32: b.Put(static_cast<uint32_t>(v.u)); break;
    case kI32: b.Put(static_cast<int32_t>(v.i)); break;
    case kF32: b.Put(static_cast<float>(v.f)); break;
    case kBool: b.Put(static_cast<uint8_t>(v.b)); break;
    default: b.Str(v.s); break;
  }
}

}  // namespace

GgufValue GgufU32(uint32_t v) { GgufValue g; g.kind = GgufValue::Kind::kUint; g.gguf_type = kU32; g.u = v; return g; }
GgufValue GgufI32(int32_t v) { GgufValue g; g.kind = GgufValue::Kind::kInt; g.gguf_type = kI32; g.i = v; return g; }
GgufValue GgufF32(float v) { GgufValue g; g.kind = GgufValue::Kind::kFloat; g.gguf_type = kF32; g.f = v; return g; }
GgufValue GgufBool(bool v) { GgufValue g; g.kind = GgufValue::Kind::kBool; g.gguf_type = kBool; g.b = v; return g; }
GgufValue GgufStr(std::string v) {
  GgufValue g;
  g.kind = GgufValue::Kind::kString;
  g.gguf_type = kString;
  g.s = std::move(v);
  return g;
}
namespace {

// An array value of `element`s, written as GGUF type `type`; empty.
GgufValue ArrayOf(GgufValue::Kind element, uint32_t type) {
  GgufValue g;
  g.kind = GgufValue::Kind::kArray;
  g.element = element;
  g.gguf_type = type;
  return g;
}

}  // namespace

GgufValue GgufStrArray(std::vector<std::string> v) {
  GgufValue g = ArrayOf(GgufValue::Kind::kString, kString);
  g.strings = std::move(v);
  return g;
}
GgufValue GgufF32Array(std::vector<float> v) {
  GgufValue g = ArrayOf(GgufValue::Kind::kFloat, kF32);
  g.floats.assign(v.begin(), v.end());
  return g;
}
GgufValue GgufI32Array(std::vector<int32_t> v) {
  GgufValue g = ArrayOf(GgufValue::Kind::kInt, kI32);
  g.ints.assign(v.begin(), v.end());
  return g;
}

Result<std::string> GgufHead(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                             const std::vector<GgufTensorToWrite>& tensors, std::vector<uint64_t>* offsets) {
  Bytes head;
  head.Put<uint32_t>(0x46554747);  // "GGUF"
  head.Put<uint32_t>(3);
  head.Put<uint64_t>(tensors.size());
  head.Put<uint64_t>(metadata.size());
  for (const auto& [key, value] : metadata) {
    head.Str(key);
    PutValue(head, value);
  }
  std::vector<uint64_t> relative;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = 0;
    const uint32_t type = GgufTypeOf(t.dtype);
    if (type == UINT32_MAX || !DTypeBytes(t.dtype, t.shape, &n)) {
      return Status::Error("cannot write tensor '" + t.name + "' as " + DTypeString(t.dtype) + " to a GGUF file");
    }
    head.Str(t.name);
    head.Put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) head.Put<uint64_t>(static_cast<uint64_t>(*d));
    head.Put<uint32_t>(type);
    head.Put<uint64_t>(offset);
    relative.push_back(offset);
    offset += (n + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment;
  }
  head.Pad(kGgufAlignment);
  offsets->clear();
  for (uint64_t r : relative) offsets->push_back(head.data().size() + r);
  return std::string(head.data().begin(), head.data().end());
}

Status WriteGguf(Env& env, const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                 const std::vector<GgufTensorToWrite>& tensors) {
  std::vector<uint64_t> offsets;
  auto head = GgufHead(metadata, tensors, &offsets);
  if (!head.ok()) return Status::Error(head.status().message() + " (" + path + ")");
  auto file = env.NewWritableFile(path);
  if (!file.ok()) return file.status();
  Status st = file.value()->Append(head->data(), head->size());
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors.size() && st.ok(); ++i) {
    uint64_t n = 0;
    DTypeBytes(tensors[i].dtype, tensors[i].shape, &n);  // checked by GgufHead
    buf.assign((n + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment, 0);
    tensors[i].fill(buf.data());
    st = file.value()->Append(buf.data(), buf.size());
  }
  if (st.ok()) st = file.value()->Sync();
  if (st.ok()) st = file.value()->Close();
  if (!st.ok()) {
    env.RemoveFile(path);
    return Status::Error("writing " + path + ": " + st.message());
  }
  return Status::Ok();
}

}  // namespace strata
