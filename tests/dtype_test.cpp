// Scalar conversions between F32, BF16 and F16, as torch rounds them.
#include "storage/dtype.h"

#include <gtest/gtest.h>

#include <cmath>

namespace strata {
namespace {

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(-2.5f)), -2.5f);
  // 1 + 2^-8 is exactly halfway between two BF16 values: ties go to even.
  EXPECT_EQ(FloatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(NAN))));
}

TEST(DTypeTest, F16RoundTripsRepresentableValues) {
  for (float f : {0.0f, 1.0f, -1.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f}) {
    EXPECT_EQ(F16ToFloat(FloatToF16(f)), f) << f;
  }
  EXPECT_TRUE(std::isinf(F16ToFloat(FloatToF16(1e6f))));
  EXPECT_EQ(FloatToF16(1.0f), 0x3c00);
}

TEST(DTypeTest, SafetensorsNames) {
  DType d;
  EXPECT_TRUE(ParseSafetensorsDType("BF16", &d));
  EXPECT_EQ(d, DType::kBF16);
  EXPECT_EQ(DTypeSize(d), 2u);
  EXPECT_FALSE(ParseSafetensorsDType("bf16", &d));
}

}  // namespace
}  // namespace strata
