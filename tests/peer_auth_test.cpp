// Unit tests of the handshake's pieces: proofs, secrets, address checks,
// escaping, and the finite-value check on hidden states.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "base/escape.h"
#include "protocol/peer_auth.h"
#include "protocol/peer_link.h"
#include "protocol/tensor_codec.h"
#include "tests/test_util.h"

namespace strata {
namespace {

ClusterSecret Secret(const std::string& s) { return ClusterSecret(Bytes(s.begin(), s.end())); }

TEST(PeerAuth, ProofsBindSecretNoncesRoleAndName) {
  const ClusterSecret a = Secret("0123456789abcdef0123"), b = Secret("0123456789abcdef0124");
  const Bytes cn = RandomBytes(kNonceBytes), sn = RandomBytes(kNonceBytes);
  const Bytes proof = ClientProof(a, 2, 0, "coordinator", sn, cn);
  EXPECT_EQ(proof.size(), kProofBytes);
  EXPECT_TRUE(ProofsEqual(proof, ClientProof(a, 2, 0, "coordinator", sn, cn)));
  EXPECT_FALSE(ProofsEqual(proof, ClientProof(b, 2, 0, "coordinator", sn, cn))) << "another secret";
  EXPECT_FALSE(ProofsEqual(proof, ClientProof(a, 3, 0, "coordinator", sn, cn))) << "another version";
  EXPECT_FALSE(ProofsEqual(proof, ClientProof(a, 2, 1, "coordinator", sn, cn))) << "another role";
  EXPECT_FALSE(ProofsEqual(proof, ClientProof(a, 2, 0, "coordinatos", sn, cn))) << "another name";
  EXPECT_FALSE(ProofsEqual(proof, ClientProof(a, 2, 0, "coordinator", RandomBytes(kNonceBytes), cn)))
      << "another connection's nonce: a replay";
  // The server's proof is over another transcript: it never doubles as a client's.
  EXPECT_FALSE(ProofsEqual(ServerProof(a, 2, cn, sn), proof));
  EXPECT_FALSE(ProofsEqual(Bytes(), Bytes())) << "an empty proof proves nothing";
}

TEST(PeerAuth, SecretFilesMustBePrivateAndLongEnough) {
  testing::TempDir dir;
  const std::string path = dir / "secret";
  std::ofstream(path) << "0123456789abcdef0123456789abcdef\n";
  ::chmod(path.c_str(), 0644);
  auto open = ClusterSecret::LoadFile(path);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("readable by others (mode 0644)"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  auto good = ClusterSecret::LoadFile(path);
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good->key().size(), 32u) << "the trailing newline is not part of the key";
  std::ofstream(dir / "short") << "tooshort";
  ::chmod((dir / "short").c_str(), 0600);
  EXPECT_NE(ClusterSecret::LoadFile(dir / "short").status().message().find("shorter than 16"), std::string::npos);
  EXPECT_NE(ClusterSecret::LoadFile(dir / "missing").status().message().find("cannot read"), std::string::npos);
  const ClusterSecret made = ClusterSecret::Generate();
  EXPECT_EQ(made.Hex().size(), 64u);
  EXPECT_NE(made.Hex(), ClusterSecret::Generate().Hex());
}

TEST(PeerLinkAddress, OnlyTcpHostPort) {
  EXPECT_TRUE(IsTcpAddress("127.0.0.1:7700"));
  EXPECT_TRUE(IsTcpAddress("box-a.lan:7700"));
  EXPECT_TRUE(IsTcpAddress("[::1]:7700"));
  EXPECT_FALSE(IsTcpAddress("unix:/tmp/socket"));
  EXPECT_FALSE(IsTcpAddress("unix-abstract:x"));
  EXPECT_FALSE(IsTcpAddress("127.0.0.1"));
  EXPECT_FALSE(IsTcpAddress("127.0.0.1:0"));
  EXPECT_FALSE(IsTcpAddress("127.0.0.1:65536"));
  EXPECT_FALSE(IsTcpAddress("host:80/path"));
  EXPECT_FALSE(IsTcpAddress("a b:80"));
  EXPECT_FALSE(IsTcpAddress(""));
}

TEST(EscapeText, NewlinesAndControlBytesCannotForgeLogLines) {
  EXPECT_EQ(EscapeText("plain name-1"), "plain name-1");
  EXPECT_EQ(EscapeText("a\nb"), "a\\x0ab");
  EXPECT_EQ(EscapeText("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(EscapeText("back\\slash"), "back\\\\slash");
  EXPECT_EQ(EscapeText(std::string(300, 'x'), 10), std::string(10, 'x') + "...");
  EXPECT_EQ(EscapeText(std::string("\xff\x00", 2)), "\\xff\\x00");
}

TEST(AllFinite, RejectsNaNAndInfinityInEveryDtype) {
  HostTensor t;
  t.dtype = TensorDType::kF32;
  t.shape = {2};
  float v[2] = {1.0f, -2.5f};
  t.data.assign(reinterpret_cast<uint8_t*>(v), reinterpret_cast<uint8_t*>(v) + 8);
  EXPECT_TRUE(AllFinite(t));
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    v[1] = bad;
    t.data.assign(reinterpret_cast<uint8_t*>(v), reinterpret_cast<uint8_t*>(v) + 8);
    EXPECT_FALSE(AllFinite(t)) << bad;
  }
  for (auto [dtype, nan, finite] : {std::tuple<TensorDType, uint16_t, uint16_t>{TensorDType::kBF16, 0x7fc0, 0x3f80},
                                    {TensorDType::kBF16, 0xff80, 0xbf80},
                                    {TensorDType::kF16, 0x7e00, 0x3c00},
                                    {TensorDType::kF16, 0xfc00, 0x7bff}}) {
    HostTensor h;
    h.dtype = dtype;
    h.shape = {1};
    h.data.resize(2);
    std::memcpy(h.data.data(), &finite, 2);
    EXPECT_TRUE(AllFinite(h));
    std::memcpy(h.data.data(), &nan, 2);
    EXPECT_FALSE(AllFinite(h));
  }
}

}  // namespace
}  // namespace strata
