// The wire codec: tensors round-trip, and anything a hostile or buggy peer
// could send is refused with a reason.
#include "protocol/tensor_codec.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

HostTensor Sample() {
  HostTensor t;
  t.dtype = TensorDType::kBF16;
  t.shape = {3, 4};
  t.data.resize(24);
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<uint8_t>(i * 7);
  return t;
}

TEST(TensorCodecTest, RoundTrips) {
  capnp::MallocMessageBuilder message;
  auto builder = message.initRoot<wire::Tensor>();
  EncodeTensor(Sample(), builder);
  HostTensor back;
  std::string error;
  ASSERT_TRUE(DecodeTensor(builder.asReader(), &back, &error)) << error;
  EXPECT_EQ(back.dtype, TensorDType::kBF16);
  EXPECT_EQ(back.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(back.data, Sample().data);
}

TEST(TensorCodecTest, RefusesSizeMismatch) {
  capnp::MallocMessageBuilder message;
  auto builder = message.initRoot<wire::Tensor>();
  HostTensor t = Sample();
  t.data.resize(20);
  EncodeTensor(t, builder);
  HostTensor back;
  std::string error;
  EXPECT_FALSE(DecodeTensor(builder.asReader(), &back, &error));
  EXPECT_NE(error.find("20 bytes but dtype bf16 x shape needs 24"), std::string::npos) << error;
}

TEST(TensorCodecTest, RefusesBadShapes) {
  std::string error;
  HostTensor back;
  {
    capnp::MallocMessageBuilder message;
    auto b = message.initRoot<wire::Tensor>();
    b.initShape(0);
    EXPECT_FALSE(DecodeTensor(b.asReader(), &back, &error));
    EXPECT_NE(error.find("rank 0"), std::string::npos);
  }
  {
    capnp::MallocMessageBuilder message;
    auto b = message.initRoot<wire::Tensor>();
    auto shape = b.initShape(2);
    shape.set(0, uint64_t{1} << 40);
    shape.set(1, uint64_t{1} << 40);
    EXPECT_FALSE(DecodeTensor(b.asReader(), &back, &error));
    EXPECT_NE(error.find("too large"), std::string::npos) << error;
  }
  {
    capnp::MallocMessageBuilder message;
    auto b = message.initRoot<wire::Tensor>();
    auto shape = b.initShape(1);
    shape.set(0, 0);
    EXPECT_FALSE(DecodeTensor(b.asReader(), &back, &error));
  }
  {
    capnp::MallocMessageBuilder message;
    auto b = message.initRoot<wire::Tensor>();
    b.setDtype(static_cast<wire::DType>(77));
    b.initShape(1).set(0, 1);
    EXPECT_FALSE(DecodeTensor(b.asReader(), &back, &error));
    EXPECT_NE(error.find("unknown dtype 77"), std::string::npos);
  }
}

TEST(TensorCodecTest, ParsesDtypeNames) {
  TensorDType d;
  EXPECT_TRUE(ParseTensorDType("bf16", &d));
  EXPECT_EQ(d, TensorDType::kBF16);
  EXPECT_TRUE(ParseTensorDType("f32", &d));
  EXPECT_FALSE(ParseTensorDType("int8", &d));
  EXPECT_EQ(ElementSize(TensorDType::kF32), 4u);
}

}  // namespace
}  // namespace strata
