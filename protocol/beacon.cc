#include "protocol/beacon.h"

#include <cstring>

namespace strata {
namespace {

constexpr char kMagic[4] = {'S', 'T', 'R', 'B'};
constexpr char kMacLabel[] = "strata-beacon-v1";
constexpr size_t kHeader = 4 + 1 + 1 + 8 + 16;

Bytes MacOver(const ClusterSecret& secret, const uint8_t* data, size_t n) {
  Bytes message(kMacLabel, kMacLabel + sizeof kMacLabel - 1);
  message.insert(message.end(), data, data + n);
  return Hmac(secret, message);
}

bool PutText(Bytes* out, const std::string& s, size_t max) {
  if (s.size() > max) return false;
  out->push_back(static_cast<uint8_t>(s.size()));
  out->insert(out->end(), s.begin(), s.end());
  return true;
}

bool TakeText(const uint8_t* data, size_t size, size_t* at, size_t max, std::string* out) {
  if (*at >= size) return false;
  const size_t n = data[(*at)++];
  if (n > max || size - *at < n) return false;
  out->assign(reinterpret_cast<const char*>(data + *at), n);
  *at += n;
  for (char c : *out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;  // printable text only
  }
  return true;
}

}  // namespace

Result<Bytes> EncodeBeacon(const Beacon& b, const ClusterSecret& secret) {
  if (b.node_id.size() != 16) return Status::Error("a beacon's node id is 16 bytes");
  Bytes out(kMagic, kMagic + 4);
  out.push_back(kBeaconVersion);
  out.push_back(b.flags);
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(b.counter >> (8 * i)));
  out.insert(out.end(), b.node_id.begin(), b.node_id.end());
  if (!PutText(&out, b.cluster, 64) || !PutText(&out, b.name, 64) || !PutText(&out, b.address, 128)) {
    return Status::Error("a beacon's cluster name and node name are at most 64 bytes, its address 128");
  }
  if (!secret.empty()) {
    const Bytes mac = MacOver(secret, out.data(), out.size());
    out.insert(out.end(), mac.begin(), mac.end());
  }
  return out;
}

Result<Beacon> DecodeBeacon(const uint8_t* data, size_t size, const ClusterSecret& secret) {
  if (size < kHeader + 3 || size > kMaxBeaconBytes) return Status::Error("a datagram of " + std::to_string(size) + " bytes");
  if (std::memcmp(data, kMagic, 4) != 0) return Status::Error("not a Strata beacon");
  if (data[4] != kBeaconVersion) return Status::Error("beacon version " + std::to_string(data[4]));
  Beacon b;
  b.flags = data[5];
  for (int i = 0; i < 8; ++i) b.counter = (b.counter << 8) | data[6 + i];
  b.node_id.assign(data + 14, data + 30);
  size_t at = kHeader;
  if (!TakeText(data, size, &at, 64, &b.cluster) || !TakeText(data, size, &at, 64, &b.name) ||
      !TakeText(data, size, &at, 128, &b.address)) {
    return Status::Error("a malformed beacon");
  }
  const size_t rest = size - at;
  if (secret.empty()) {
    if (rest != 0) return Status::Error("a signed beacon, and this listener has no cluster secret");
    return b;
  }
  if (rest != kProofBytes) return Status::Error("an unsigned beacon, and this cluster has a secret");
  const Bytes expected = MacOver(secret, data, at);
  if (!ProofsEqual(Bytes(data + at, data + size), expected)) return Status::Error("a beacon with a bad MAC");
  return b;
}

}  // namespace strata
