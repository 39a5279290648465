#include "storage/safetensors.h"
#include "base/escape.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

namespace strata {
namespace {

using json = nlohmann::json;

Status Bad(const std::string& path, const std::string& why) {
  return Status::Error("malformed safetensors file " + path + ": " + why);
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  auto mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile(std::move(mapped.value())));
  Status st = file->ParseHeader();
  if (!st.ok()) return st;
  return file;
}

Status SafetensorsFile::ParseHeader() {
  const std::string& p = file_->path();
  const uint64_t file_size = file_->size();
  if (file_size < 8) return Bad(p, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file_->data()[i];
  if (header_len > kMaxHeaderBytes) return Bad(p, "header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  if (header_len > file_size - 8) {
    return Bad(p, "header length " + std::to_string(header_len) + " runs past the end of the " +
                      std::to_string(file_size) + "-byte file (truncated?)");
  }
  const char* begin = reinterpret_cast<const char*>(file_->data() + 8);
  json header = json::parse(begin, begin + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Bad(p, "header is not valid JSON");
  if (!header.is_object()) return Bad(p, "header is not a JSON object");

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;
  struct Range { uint64_t begin, end; const std::string* name; };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return Bad(p, "__metadata__ is not an object");
      continue;
    }
    if (!entry.is_object()) return Bad(p, "entry '" + EscapeText(name, 80) + "' is not an object");
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) return Bad(p, "tensor '" + EscapeText(name, 80) + "' has no dtype string");
    if (sh == entry.end() || !sh->is_array()) return Bad(p, "tensor '" + EscapeText(name, 80) + "' has no shape array");
    if (off == entry.end() || !off->is_array() || off->size() != 2) {
      return Bad(p, "tensor '" + EscapeText(name, 80) + "' has no [begin, end] data_offsets");
    }
    TensorView view;
    view.name = name;
    if (!ParseSafetensorsDType(dt->get<std::string>(), &view.dtype)) {
      return Bad(p, "tensor '" + EscapeText(name, 80) + "' has unsupported dtype " + EscapeText(dt->get<std::string>(), 32));
    }
    for (const json& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
        return Bad(p, "tensor '" + EscapeText(name, 80) + "' has a shape entry that is not a non-negative integer");
      }
      view.shape.push_back(d.get<int64_t>());
    }
    for (const json& o : *off) {
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0)) {
        return Bad(p, "tensor '" + EscapeText(name, 80) + "' has a data offset that is not a non-negative integer");
      }
    }
    const uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e) return Bad(p, "tensor '" + EscapeText(name, 80) + "' has data_offsets begin > end");
    uint64_t want = 0;
    if (!DTypeBytes(view.dtype, view.shape, &want)) {
      return Bad(p, "tensor '" + EscapeText(name, 80) + "' shape is too large");
    }
    if (e - b != want) {
      return Bad(p, "tensor '" + EscapeText(name, 80) + "' has " + std::to_string(e - b) + " bytes but its shape x " +
                        DTypeString(view.dtype) + " needs " + std::to_string(want));
    }
    if (e > data_size) {
      return Bad(p, "tensor '" + EscapeText(name, 80) + "' ends at byte " + std::to_string(e) + " past the " +
                        std::to_string(data_size) + "-byte data section (truncated?)");
    }
    view.data = file_->data() + data_start + b;
    view.nbytes = want;
    auto inserted = tensors_.emplace(name, std::move(view));
    ranges.push_back({b, e, &inserted.first->first});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& x, const Range& y) { return x.begin < y.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      return Bad(p, "tensors '" + *ranges[i - 1].name + "' and '" + *ranges[i].name + "' overlap");
    }
  }
  return Status::Ok();
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Status WriteSafetensors(Env& env, const std::string& path, const std::vector<TensorToWrite>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    uint64_t n = 0;
    if (!DTypeBytes(t.dtype, t.shape, &n)) return Status::Error("tensor " + t.name + " too large");
    offset = (offset + 7) & ~uint64_t{7};
    header[t.name] = {{"dtype", DTypeString(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    sizes.push_back(n);
    offset += n;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  // Written under a temporary name and renamed when whole: a full disk or an
  // I/O error never leaves a truncated file that looks like a model.
  const std::string tmp = path + ".partial";
  auto file = env.NewWritableFile(tmp);
  if (!file.ok()) return file.status();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  Status st = file.value()->Append(len, 8);
  if (st.ok()) st = file.value()->Append(text.data(), text.size());
  uint64_t written = 0;
  std::vector<uint8_t> buffer;
  for (size_t i = 0; st.ok() && i < tensors.size(); ++i) {
    const uint64_t aligned = (written + 7) & ~uint64_t{7};
    static const uint8_t kZeros[8] = {};
    st = file.value()->Append(kZeros, aligned - written);
    buffer.assign(sizes[i], 0);
    tensors[i].fill(buffer.data());
    if (st.ok()) st = file.value()->Append(buffer.data(), buffer.size());
    written = aligned + sizes[i];
  }
  return FinishPartialFile(env, std::move(file.value()), path, st);
}

}  // namespace strata
