#include "node/engine/weight_format.h"

namespace strata {
namespace {

struct Row { WeightType type; DType dtype; const char* name; };
constexpr Row kTypes[] = {
    {WeightType::kF32, DType::kF32, "f32"},    {WeightType::kBF16, DType::kBF16, "bf16"},
    {WeightType::kQ8_0, DType::kQ8_0, "q8_0"}, {WeightType::kQ4_0, DType::kQ4_0, "q4_0"},
    {WeightType::kQ4_K, DType::kQ4_K, "q4_k"}, {WeightType::kQ5_K, DType::kQ5_K, "q5_k"},
    {WeightType::kQ6_K, DType::kQ6_K, "q6_k"}, {WeightType::kQ4_1, DType::kQ4_1, "q4_1"},
    {WeightType::kQ5_0, DType::kQ5_0, "q5_0"}, {WeightType::kQ5_1, DType::kQ5_1, "q5_1"},
};
static_assert(sizeof kTypes / sizeof kTypes[0] == kWeightTypes, "one row per weight type");

}  // namespace

const char* WeightTypeName(WeightType type) { return kTypes[static_cast<int>(type)].name; }

bool ParseWeightType(const std::string& text, WeightType* out) {
  for (const Row& r : kTypes) {
    if (text == r.name) {
      *out = r.type;
      return true;
    }
  }
  return false;
}

DType StorageDType(WeightType type) { return kTypes[static_cast<int>(type)].dtype; }

bool WeightTypeOf(DType dtype, WeightType* out) {
  for (const Row& r : kTypes) {
    if (r.dtype == dtype) {
      *out = r.type;
      return true;
    }
  }
  return false;
}

int64_t BlockElements(WeightType type) { return DTypeBlockElements(StorageDType(type)); }
size_t BlockBytes(WeightType type) { return DTypeBlockBytes(StorageDType(type)); }
bool IsQuantized(WeightType type) { return BlockElements(type) > 1; }

size_t BlockRowBytes(WeightType type, int64_t cols) {
  return static_cast<size_t>(cols / BlockElements(type)) * BlockBytes(type);
}

}  // namespace strata
