#include "node/engine/weight_format.h"

namespace strata {

const char* WeightTypeName(WeightType type) {
  switch (type) {
    case WeightType::kF32: return "f32";
    case WeightType::kBF16: return "bf16";
    case WeightType::kQ8_0: return "q8_0";
    case WeightType::kQ4_0: return "q4_0";
    case WeightType::kQ4_K: return "q4_k";
    case WeightType::kQ5_K: return "q5_k";
    case WeightType::kQ6_K: return "q6_k";
  }
  return "?";
}

bool ParseWeightType(const std::string& text, WeightType* out) {
  for (int t = 0; t < kWeightTypes; ++t) {
    if (text == WeightTypeName(static_cast<WeightType>(t))) {
      *out = static_cast<WeightType>(t);
      return true;
    }
  }
  return false;
}

int64_t BlockElements(WeightType type) {
  switch (type) {
    case WeightType::kF32: case WeightType::kBF16: return 1;
    case WeightType::kQ8_0: case WeightType::kQ4_0: return kQK8_0;
    case WeightType::kQ4_K: case WeightType::kQ5_K: case WeightType::kQ6_K: return kQKK;
  }
  return 1;
}

size_t BlockBytes(WeightType type) {
  switch (type) {
    case WeightType::kF32: return 4;
    case WeightType::kBF16: return 2;
    case WeightType::kQ8_0: return sizeof(BlockQ8_0);
    case WeightType::kQ4_0: return sizeof(BlockQ4_0);
    case WeightType::kQ4_K: return sizeof(BlockQ4_K);
    case WeightType::kQ5_K: return sizeof(BlockQ5_K);
    case WeightType::kQ6_K: return sizeof(BlockQ6_K);
  }
  return 0;
}

bool IsQuantized(WeightType type) { return BlockElements(type) > 1; }

size_t RowBytes(WeightType type, int64_t cols) {
  return static_cast<size_t>(cols / BlockElements(type)) * BlockBytes(type);
}

}  // namespace strata
