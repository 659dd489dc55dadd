// ddn/fast_exp.h: exp(x) for x ≤ 0 as straight-line code, so that loops calling it vectorise.
//
// A call to libm's exp inside a loop keeps the loop scalar; this one is a handful of multiply–adds and bit
// operations that GCC turns into vector code (4 wide in the AVX2 copy of a kernel, ddn/simd.h). Used where many
// exponentials of non-positive arguments are summed or stored: the robust penalties (welsch), the Gibbs kernels
// of optimal transport.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ddn {

// exp(x) for x ≤ 0, written so that loops over points vectorise (no libm call): Cody–Waite reduction
// x = n·ln2 + r, |r| ≤ ln2/2, a degree-12 Taylor polynomial for e^r (truncation < 2e-16 relative) and 2^n
// assembled in the exponent bits. Within a few ulps of std::exp; x < −708 gives ≈ 2^−1022 instead of the
// subnormal or zero result.
//
// ExpNonPositiveParts returns the pieces, e^r = 1 + r·q(r) and 2^n as `scale`, so exp(x) = (q·r + 1)·scale; a
// caller that also needs 1 − e^x near x = 0 (n = 0) gets it as −r·q without cancellation (nodes/pooling).
struct ExpParts {
  double n, r, q, scale;
};
inline ExpParts ExpNonPositiveParts(double x) {
  x = std::max(x, -708.0);
  constexpr double kLog2e = 1.4426950408889634, kShift = 6755399441055744.0;  // 1.5·2^52: round to integer
  constexpr double kLn2Hi = 0.693145751953125, kLn2Lo = 1.4286068203094172321e-06;
  const double n = (x * kLog2e + kShift) - kShift;
  const double r = (x - n * kLn2Hi) - n * kLn2Lo;
  double p = 1.0 / 479001600.0;  // 1/12!
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  const double q = p * r + 1.0;
  // 2^n: the integer n + 1023 in the low mantissa bits of (n + 1023 + 2^52), shifted into the exponent field.
  const double biased = n + 1023.0 + 4503599627370496.0;
  uint64_t bits;
  std::memcpy(&bits, &biased, sizeof bits);
  bits <<= 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return {n, r, q, scale};
}

inline double ExpNonPositive(double x) {
  const ExpParts parts = ExpNonPositiveParts(x);
  return (parts.q * parts.r + 1.0) * parts.scale;
}

typedef float Float8 __attribute__((vector_size(32)));
typedef int32_t Int8 __attribute__((vector_size(32)));

namespace fast_exp_internal {

// 2^n from biased = n + 127 + 2^23 (n + 127 in the low mantissa bits), shifted into the exponent field.
[[gnu::always_inline]] inline void Pow2FromBiased(float* v) {
  uint32_t bits;
  std::memcpy(&bits, v, sizeof bits);
  bits <<= 23;
  std::memcpy(v, &bits, sizeof bits);
}
[[gnu::always_inline]] inline void Pow2FromBiased(Float8* v) {
  Int8 bits = (Int8)*v;  // a vector cast reinterprets the bits
  bits <<= 23;
  *v = (Float8)bits;
}

// The body of ExpNonPositiveFloat for F = float or Float8 (lane by lane), in place.
template <typename F>
[[gnu::always_inline]] inline void ExpNonPositiveFloatInPlace(F* v) {
  const F lowest = F{} - 87.0f, x = *v < lowest ? lowest : *v;
  constexpr float kLog2e = 1.44269504f, kShift = 12582912.0f;  // 1.5·2^23: round to integer
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const F n = (x * kLog2e + kShift) - kShift;
  const F r = (x - n * kLn2Hi) - n * kLn2Lo;
  F p = F{} + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  F scale = n + 127.0f + 8388608.0f;
  Pow2FromBiased(&scale);
  *v = p * scale;
}

}  // namespace fast_exp_internal

// exp(x) for x ≤ 0 in single precision, for sums that only rank (twice the lanes of the double version and half
// its polynomial): the same reduction with |r| ≤ ln2/2 and a degree-6 Taylor polynomial (truncation < 1.3e-7
// relative, about one ulp of float); x < −87 gives ≈ 2^−126.
inline float ExpNonPositiveFloat(float x) {
  fast_exp_internal::ExpNonPositiveFloatInPlace(&x);
  return x;
}

// ExpNonPositiveFloat on eight floats at once, in place (GCC's vector extension: two SSE halves in a baseline
// build, one AVX register in an AVX2 copy): the same operations lane by lane, for kernels that keep their sums in
// registers instead of arrays the vectoriser would go through memory for (nodes/pooling). Taken by reference: a
// 32-byte vector passed by value has a different ABI with and without AVX.
[[gnu::always_inline]] inline void ExpNonPositiveFloat8(Float8& x) {
  fast_exp_internal::ExpNonPositiveFloatInPlace(&x);
}

}  // namespace ddn
