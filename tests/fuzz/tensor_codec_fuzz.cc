// libFuzzer: the tensor codec on arbitrary Cap'n Proto messages. The input
// is a message (segment table and segments) whose root is a wire Tensor.
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "protocol/tensor_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<capnp::word> words(size / sizeof(capnp::word) + 1);
  std::memcpy(words.data(), data, size);
  kj::runCatchingExceptions([&]() {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 1 << 20;
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), size / sizeof(capnp::word)), options);
    strata::HostTensor tensor;
    std::string error;
    if (strata::DecodeTensor(reader.getRoot<strata::wire::Tensor>(), &tensor, &error)) {
      if (static_cast<uint64_t>(tensor.numel()) * strata::ElementSize(tensor.dtype) != tensor.data.size()) {
        __builtin_trap();
      }
      strata::AllFinite(tensor);
    } else if (error.empty()) {
      __builtin_trap();  // a refusal always says why
    }
  });
  return 0;
}
