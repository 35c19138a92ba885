// Element types of the attention kernels and their host-side conversions. The kernels take bf16
// or fp16 inputs and accumulate in fp32; host code (references, tests) stores both as raw 16-bit
// patterns and converts here, so no CUDA header is needed on the CPU side.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace fdc::kernels {

// kFP32 describes fp32 tensors elsewhere in fdcsim; the attention kernels refuse it.
enum class DType { kBF16, kFP16, kFP32 };

inline std::string to_string(DType t) {
  switch (t) {
    case DType::kBF16: return "bf16";
    case DType::kFP16: return "fp16";
    case DType::kFP32: return "fp32";
  }
  return "unknown dtype " + std::to_string(static_cast<int>(t));
}
inline int dtype_bytes(DType t) { return t == DType::kFP32 ? 4 : 2; }

// float -> bf16 bits, round to nearest even (NaN kept quiet).
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f = 0.f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// float -> IEEE binary16 bits, round to nearest even, with subnormals and overflow to inf.
inline uint16_t float_to_fp16_bits(float f) {
  uint32_t x = 0;
  std::memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {  // subnormal or zero in fp16
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

inline float fp16_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  uint32_t u = 0;
  if (e == 0) {
    if (m == 0) {
      u = sign;
    } else {  // subnormal: normalise
      e = 127 - 15 + 1;
      while ((m & 0x400u) == 0) {
        m <<= 1;
        --e;
      }
      m &= 0x3ffu;
      u = sign | (e << 23) | (m << 13);
    }
  } else if (e == 31) {
    u = sign | 0x7f800000u | (m << 13);
  } else {
    u = sign | ((e + 127 - 15) << 23) | (m << 13);
  }
  float f = 0.f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// 16-bit types only (bf16 / fp16).
inline uint16_t float_to_bits(DType t, float f) {
  return t == DType::kBF16 ? float_to_bf16_bits(f) : float_to_fp16_bits(f);
}
inline float bits_to_float(DType t, uint16_t b) {
  return t == DType::kBF16 ? bf16_bits_to_float(b) : fp16_bits_to_float(b);
}
// Rounds f to the nearest value representable in t (what the GPU will see).
inline float round_to(DType t, float f) { return t == DType::kFP32 ? f : bits_to_float(t, float_to_bits(t, f)); }

}  // namespace fdc::kernels
