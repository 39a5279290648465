// libFuzzer: discovery beacons, as any host on the network may send them.
// Decoding never reads out of bounds; a beacon that decodes encodes back to
// the same bytes (nothing is accepted that the format cannot say); a
// refusal always says why.
#include <cstdint>
#include <cstring>

#include "protocol/beacon.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const strata::ClusterSecret kSecret(strata::Bytes(32, 0x5a));
  for (const strata::ClusterSecret* secret : {&kSecret, static_cast<const strata::ClusterSecret*>(nullptr)}) {
    const strata::ClusterSecret none;
    const strata::ClusterSecret& s = secret != nullptr ? *secret : none;
    auto beacon = strata::DecodeBeacon(data, size, s);
    if (!beacon.ok()) {
      if (beacon.status().message().empty()) __builtin_trap();
      continue;
    }
    auto again = strata::EncodeBeacon(beacon.value(), s);
    if (!again.ok() || again->size() != size || std::memcmp(again->data(), data, size) != 0) __builtin_trap();
  }
  return 0;
}
