#include "storage/quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "storage/dtype.h"

namespace strata {
namespace {

// std::nearbyint's result (to nearest, ties to even), without its call:
// baseline x86-64 has no roundss, so nearbyintf is a libm call that saves
// and restores the FP environment, once per element of every activation
// row a quantized matmul reads. Below 2^22, adding and taking away
// 1.5 x 2^23 rounds a float exactly so (the sum's unit is 1); above, v is
// left to nearbyint.
int Round(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 x 2^23
  if (std::fabs(v) < 4194304.0f) {       // 2^22
    return static_cast<int>((v + kMagic) - kMagic);  // (no -ffast-math here: not reassociated)
  }
  return static_cast<int>(std::nearbyint(v));
}
int Clamp(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

float AbsMax(const float* x, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// The element of largest magnitude, with its sign.
float SignedMax(const float* x, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
  }
  return m;
}

void QuantizeQ8_0(const float* x, BlockQ8_0* b) {
  const float d = AbsMax(x, kQK8_0) / 127.0f;
  b->d = FloatToF16(d);
  const float dq = F16ToFloat(b->d);
  const float id = dq != 0 ? 1.0f / dq : 0.0f;
  for (int i = 0; i < kQK8_0; ++i) b->qs[i] = static_cast<int8_t>(Clamp(Round(x[i] * id), -127, 127));
}

void QuantizeQ4_0(const float* x, BlockQ4_0* b) {
  const float d = SignedMax(x, kQK8_0) / -8.0f;  // the extreme maps to -8 exactly
  b->d = FloatToF16(d);
  const float dq = F16ToFloat(b->d);
  const float id = dq != 0 ? 1.0f / dq : 0.0f;
  for (int i = 0; i < kQK8_0 / 2; ++i) {
    const int lo = Clamp(Round(x[i] * id) + 8, 0, 15), hi = Clamp(Round(x[i + 16] * id) + 8, 0, 15);
    b->qs[i] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

// The fifth bits of a Q5_0/Q5_1 block, element j at bit j.
uint32_t HighBits(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

// Level j (0..15 or 0..31) of a 32-element block with nibbles qs and fifth bits qh (0 for none).
int Level32(const uint8_t* qs, uint32_t qh, int j) {
  const int nibble = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
  return nibble | static_cast<int>(((qh >> j) & 1) << 4);
}

// Levels q[32] into nibbles qs[16] and fifth bits (when `levels` is 31).
void Pack32(const int* q, uint8_t* qs, uint8_t* qh) {
  uint32_t high = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
    high |= static_cast<uint32_t>(q[j] >> 4) << j;
    high |= static_cast<uint32_t>(q[j + 16] >> 4) << (j + 16);
  }
  if (qh != nullptr) std::memcpy(qh, &high, 4);
}

// Q4_1 / Q5_1: x ~ d * q + m with q in [0, levels].
void QuantizeWithMin32(const float* x, int levels, uint16_t* d_out, uint16_t* m_out, uint8_t* qs, uint8_t* qh) {
  const float lo = *std::min_element(x, x + kQK8_0), hi = *std::max_element(x, x + kQK8_0);
  *d_out = FloatToF16((hi - lo) / levels);
  *m_out = FloatToF16(lo);
  const float d = F16ToFloat(*d_out), m = F16ToFloat(*m_out);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  int q[kQK8_0];
  for (int j = 0; j < kQK8_0; ++j) q[j] = Clamp(Round((x[j] - m) * id), 0, levels);
  Pack32(q, qs, qh);
}

void QuantizeQ5_0(const float* x, BlockQ5_0* b) {
  const float d = SignedMax(x, kQK8_0) / -16.0f;  // the extreme maps to -16 exactly
  b->d = FloatToF16(d);
  const float dq = F16ToFloat(b->d);
  const float id = dq != 0 ? 1.0f / dq : 0.0f;
  int q[kQK8_0];
  for (int j = 0; j < kQK8_0; ++j) q[j] = Clamp(Round(x[j] * id) + 16, 0, 31);
  Pack32(q, b->qs, b->qh);
}

// Scales and mins of 8 sub-blocks of 32 with `levels` quantization steps
// (15 for Q4_K, 31 for Q5_K), packed to 6 bits each; q[256] the levels.
void QuantizeKWithMins(const float* x, int levels, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales, uint8_t* q) {
  float scale[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    const float* s = x + 32 * j;
    float lo = std::min(0.0f, *std::min_element(s, s + 32)), hi = *std::max_element(s, s + 32);
    scale[j] = (hi - lo) / levels;
    mn[j] = -lo;
  }
  const float max_scale = *std::max_element(scale, scale + 8), max_min = *std::max_element(mn, mn + 8);
  *d_out = FloatToF16(max_scale / 63.0f);
  *dmin_out = FloatToF16(max_min / 63.0f);
  const float d = F16ToFloat(*d_out), dmin = F16ToFloat(*dmin_out);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(d > 0 ? Clamp(Round(scale[j] / d), 0, 63) : 0);
    m[j] = static_cast<uint8_t>(dmin > 0 ? Clamp(Round(mn[j] / dmin), 0, 63) : 0);
  }
  std::memset(scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = sc[j];
      scales[j + 4] = m[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      scales[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
  for (int j = 0; j < 8; ++j) {
    const float step = d * sc[j], offset = dmin * m[j];
    for (int i = 0; i < 32; ++i) {
      q[32 * j + i] = static_cast<uint8_t>(step > 0 ? Clamp(Round((x[32 * j + i] + offset) / step), 0, levels) : 0);
    }
  }
}

void QuantizeQ4_K(const float* x, BlockQ4_K* b) {
  uint8_t q[kQKK];
  QuantizeKWithMins(x, 15, &b->d, &b->dmin, b->scales, q);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) b->qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

void QuantizeQ5_K(const float* x, BlockQ5_K* b) {
  uint8_t q[kQKK];
  QuantizeKWithMins(x, 31, &b->d, &b->dmin, b->scales, q);
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t lo = q[64 * c + l], hi = q[64 * c + 32 + l];
      b->qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      b->qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
  }
}

void QuantizeQ6_K(const float* x, BlockQ6_K* b) {
  float scale[16];
  float max_scale = 0;
  for (int j = 0; j < 16; ++j) {
    scale[j] = SignedMax(x + 16 * j, 16) / -32.0f;  // the extreme maps to -32
    max_scale = std::max(max_scale, std::fabs(scale[j]));
  }
  b->d = FloatToF16(max_scale / 127.0f);
  const float d = F16ToFloat(b->d);
  uint8_t q[kQKK];
  for (int j = 0; j < 16; ++j) {
    b->scales[j] = static_cast<int8_t>(d > 0 ? Clamp(Round(scale[j] / d), -127, 127) : 0);
    const float step = d * b->scales[j];
    for (int i = 0; i < 16; ++i) q[16 * j + i] = static_cast<uint8_t>(step != 0 ? Clamp(Round(x[16 * j + i] / step) + 32, 0, 63) : 32);
  }
  for (int n = 0; n < 2; ++n) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = q[128 * n + l], q2 = q[128 * n + 32 + l], q3 = q[128 * n + 64 + l], q4 = q[128 * n + 96 + l];
      b->ql[64 * n + l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      b->ql[64 * n + 32 + l] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      b->qh[32 * n + l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

void DequantizeQ4_K(const BlockQ4_K& b, float* out) {
  const float d = F16ToFloat(b.d), dmin = F16ToFloat(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    Q4KScaleMin(b.scales, j, &sc, &m);
    const int c = j / 2, shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) out[32 * j + l] = d * sc * ((b.qs[32 * c + l] >> shift) & 0xF) - dmin * m;
  }
}

void DequantizeQ5_K(const BlockQ5_K& b, float* out) {
  const float d = F16ToFloat(b.d), dmin = F16ToFloat(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    Q4KScaleMin(b.scales, j, &sc, &m);
    const int c = j / 2, shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      const int q = ((b.qs[32 * c + l] >> shift) & 0xF) | (((b.qh[l] >> j) & 1) << 4);
      out[32 * j + l] = d * sc * q - dmin * m;
    }
  }
}

void DequantizeQ6_K(const BlockQ6_K& b, float* out) {
  const float d = F16ToFloat(b.d);
  for (int e = 0; e < kQKK; ++e) {
    const int n = e / 128, part = (e % 128) / 32, l = e % 32;
    const uint8_t low = b.ql[64 * n + 32 * (part % 2) + l];
    const int q = ((part < 2 ? low : low >> 4) & 0xF) | (((b.qh[32 * n + l] >> (2 * part)) & 3) << 4);
    out[e] = d * b.scales[e / 16] * (q - 32);
  }
}

}  // namespace

void DequantizeRow(DType type, const uint8_t* row, int64_t cols, float* out) {
  const int64_t nb = cols / DTypeBlockElements(type);
  for (int64_t i = 0; i < nb; ++i) {
    switch (type) {
      case DType::kF32: std::memcpy(out + i, row + 4 * i, 4); break;
      case DType::kF16: {
        uint16_t v;
        std::memcpy(&v, row + 2 * i, 2);
        out[i] = F16ToFloat(v);
        break;
      }
      case DType::kBF16: {
        uint16_t v;
        std::memcpy(&v, row + 2 * i, 2);
        out[i] = Bf16ToFloat(v);
        break;
      }
      case DType::kQ8_0: {
        const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + i;
        for (int k = 0; k < kQK8_0; ++k) out[kQK8_0 * i + k] = F16ToFloat(b->d) * b->qs[k];
        break;
      }
      case DType::kQ4_0: {
        const auto* b = reinterpret_cast<const BlockQ4_0*>(row) + i;
        for (int k = 0; k < 16; ++k) {
          out[kQK8_0 * i + k] = F16ToFloat(b->d) * ((b->qs[k] & 0xF) - 8);
          out[kQK8_0 * i + k + 16] = F16ToFloat(b->d) * ((b->qs[k] >> 4) - 8);
        }
        break;
      }
      case DType::kQ4_1: {
        const auto* b = reinterpret_cast<const BlockQ4_1*>(row) + i;
        for (int k = 0; k < kQK8_0; ++k) out[kQK8_0 * i + k] = F16ToFloat(b->d) * Level32(b->qs, 0, k) + F16ToFloat(b->m);
        break;
      }
      case DType::kQ5_0: {
        const auto* b = reinterpret_cast<const BlockQ5_0*>(row) + i;
        for (int k = 0; k < kQK8_0; ++k) out[kQK8_0 * i + k] = F16ToFloat(b->d) * (Level32(b->qs, HighBits(b->qh), k) - 16);
        break;
      }
      case DType::kQ5_1: {
        const auto* b = reinterpret_cast<const BlockQ5_1*>(row) + i;
        for (int k = 0; k < kQK8_0; ++k) {
          out[kQK8_0 * i + k] = F16ToFloat(b->d) * Level32(b->qs, HighBits(b->qh), k) + F16ToFloat(b->m);
        }
        break;
      }
      case DType::kQ4_K: DequantizeQ4_K(reinterpret_cast<const BlockQ4_K*>(row)[i], out + kQKK * i); break;
      case DType::kQ5_K: DequantizeQ5_K(reinterpret_cast<const BlockQ5_K*>(row)[i], out + kQKK * i); break;
      case DType::kQ6_K: DequantizeQ6_K(reinterpret_cast<const BlockQ6_K*>(row)[i], out + kQKK * i); break;
      default: break;  // not a weight format
    }
  }
}

void QuantizeRow(DType type, const float* x, int64_t cols, uint8_t* out) {
  const int64_t nb = cols / DTypeBlockElements(type), be = DTypeBlockElements(type);
  for (int64_t i = 0; i < nb; ++i) {
    switch (type) {
      case DType::kF32: std::memcpy(out + 4 * i, x + i, 4); break;
      case DType::kF16: {
        const uint16_t v = FloatToF16(x[i]);
        std::memcpy(out + 2 * i, &v, 2);
        break;
      }
      case DType::kBF16: {
        const uint16_t v = FloatToBf16(x[i]);
        std::memcpy(out + 2 * i, &v, 2);
        break;
      }
      case DType::kQ8_0: QuantizeQ8_0(x + be * i, reinterpret_cast<BlockQ8_0*>(out) + i); break;
      case DType::kQ4_0: QuantizeQ4_0(x + be * i, reinterpret_cast<BlockQ4_0*>(out) + i); break;
      case DType::kQ4_1: {
        auto* b = reinterpret_cast<BlockQ4_1*>(out) + i;
        QuantizeWithMin32(x + be * i, 15, &b->d, &b->m, b->qs, nullptr);
        break;
      }
      case DType::kQ5_0: QuantizeQ5_0(x + be * i, reinterpret_cast<BlockQ5_0*>(out) + i); break;
      case DType::kQ5_1: {
        auto* b = reinterpret_cast<BlockQ5_1*>(out) + i;
        QuantizeWithMin32(x + be * i, 31, &b->d, &b->m, b->qs, b->qh);
        break;
      }
      case DType::kQ4_K: QuantizeQ4_K(x + be * i, reinterpret_cast<BlockQ4_K*>(out) + i); break;
      case DType::kQ5_K: QuantizeQ5_K(x + be * i, reinterpret_cast<BlockQ5_K*>(out) + i); break;
      case DType::kQ6_K: QuantizeQ6_K(x + be * i, reinterpret_cast<BlockQ6_K*>(out) + i); break;
      default: break;  // not a weight format
    }
  }
}

void QuantizeActQ8_0(const float* x, int64_t cols, ActQ8_0* out) {
  for (int64_t i = 0; i < cols / kQK8_0; ++i) {
    const float* s = x + kQK8_0 * i;
    const float amax = AbsMax(s, kQK8_0);
    out[i].d = amax / 127.0f;
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    out[i].sum = 0;
    for (int k = 0; k < kQK8_0; ++k) {
      out[i].qs[k] = static_cast<int8_t>(Clamp(Round(s[k] * id), -127, 127));
      out[i].sum += out[i].qs[k];
    }
  }
}

void QuantizeActQ8_K(const float* x, int64_t cols, ActQ8_K* out) {
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    const float* s = x + kQKK * i;
    const float amax = AbsMax(s, kQKK);
    out[i].d = amax / 127.0f;
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    for (int g = 0; g < kQKK / 16; ++g) {
      int sum = 0;
      for (int k = 16 * g; k < 16 * g + 16; ++k) {
        out[i].qs[k] = static_cast<int8_t>(Clamp(Round(s[k] * id), -127, 127));
        sum += out[i].qs[k];
      }
      out[i].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

}  // namespace strata
