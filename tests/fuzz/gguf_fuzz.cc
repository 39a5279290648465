// libFuzzer: the GGUF parser, on the real file path (the input becomes an
// in-memory file that GgufFile::Open maps), and the typed metadata reads
// that the model loader makes.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "storage/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("gguf-fuzz", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0) return 0;
  if (size > 0 && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  auto file = strata::GgufFile::Open("/proc/self/fd/" + std::to_string(fd));
  if (!file.ok()) return 0;
  const strata::GgufFile& f = *file.value();
  // Every view must lie inside the file.
  for (const auto& [name, view] : f.tensors()) {
    if (view.nbytes > size || f.offset_of(view) > size - view.nbytes) __builtin_trap();
    volatile uint8_t sink = view.nbytes ? view.data[view.nbytes - 1] : 0;
    (void)sink;
  }
  for (const char* key : {"llama.block_count", "llama.embedding_length", "general.architecture"}) {
    (void)f.Int(key);
    (void)f.Float(key);
    (void)f.String(key);
  }
  (void)f.Array("tokenizer.ggml.tokens", strata::GgufValue::Kind::kString);
  return 0;
}
