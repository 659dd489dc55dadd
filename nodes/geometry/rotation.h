// nodes/geometry/rotation.h: angle-axis rotations in the scalar-generic dialect of ddn/scalar.h.
//
// A rotation is an angle-axis vector r ∈ R³: the rotation by the angle θ = ‖r‖ about the axis r/θ. Its matrix is
// Rodrigues' formula written without the axis (so that r = 0 is an ordinary point),
//
//   R(r) = I + a(θ²) [r]× + b(θ²) [r]×²,    a = sin θ / θ,   b = (1 − cos θ) / θ² = 2 sin²(θ/2) / θ²,
//
// with [r]× the cross-product matrix ([r]× p = r × p). a and b are functions of θ² = rᵀr: for θ² < 1/4 they are
// evaluated by their Taylor series in θ² (through (θ²)⁸: the first omitted term and its first two derivatives in
// θ² are below 10⁻¹⁹), otherwise from sin and cos of θ = √θ², b in the half-angle form that does not cancel. The
// switch sits where the closed forms' derivatives have lost little to cancellation (θ = ½: about 1 digit in the
// second derivative), so R and its first and second derivatives are exact to a few ulps at every r, θ = 0
// included, for T = double, ceres::Jet and nested Jets alike (the reference
// library switches to the first-order I + [r]× below θ² = 10⁻⁶, which is exact in value only to O(θ²) and wrong
// in its second derivatives; ceres/rotation.h does the same and does not take nested Jets).
//
// Storage: R is row-major, R[3 i + j] = R_ij; points are (x, y, z). A pose is y = (r, t) ∈ R⁶ acting as
// X = R(r) P + t (world point P to camera point X), the reference library's convention.
#pragma once

#include <cmath>

#include "ddn/scalar.h"

namespace ddn::geometry {

// θ² below which a(θ²) and b(θ²) come from their Taylor series.
constexpr double kRodriguesSeriesBelow = 0.25;

// a(θ²) = sin θ/θ and b(θ²) = (1 − cos θ)/θ², see above.
template <typename T>
void RodriguesCoefficients(const T& theta2, T* a, T* b) {
  using std::sin;
  using std::sqrt;
  if (Value(theta2) < kRodriguesSeriesBelow) {
    // sin θ/θ = Σ_k (−θ²)^k/(2k+1)!,  (1 − cos θ)/θ² = Σ_k (−θ²)^k/(2k+2)!, k = 0…8, by Horner in θ².
    constexpr double ka[9] = {1.0,
                              -1.0 / 6,
                              1.0 / 120,
                              -1.0 / 5040,
                              1.0 / 362880,
                              -1.0 / 39916800,
                              1.0 / 6227020800,
                              -1.0 / 1307674368000,
                              1.0 / 355687428096000};
    constexpr double kb[9] = {1.0 / 2,
                              -1.0 / 24,
                              1.0 / 720,
                              -1.0 / 40320,
                              1.0 / 3628800,
                              -1.0 / 479001600,
                              1.0 / 87178291200,
                              -1.0 / 20922789888000,
                              1.0 / 6402373705728000};
    *a = Constant<T>(ka[8]);
    *b = Constant<T>(kb[8]);
    for (int k = 7; k >= 0; --k) {
      *a = *a * theta2 + Constant<T>(ka[k]);
      *b = *b * theta2 + Constant<T>(kb[k]);
    }
    return;
  }
  const T theta = sqrt(theta2);
  const T half = sin(Constant<T>(0.5) * theta);
  *a = sin(theta) / theta;
  *b = Constant<T>(2.0) * half * half / theta2;
}

// R (row-major 3×3) of the angle-axis vector r.
template <typename T>
void AngleAxisToRotationMatrix(const T* r, T* R) {
  const T theta2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
  T a, b;
  RodriguesCoefficients(theta2, &a, &b);
  // [r]×² = r rᵀ − θ² I.
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) R[3 * i + j] = b * r[i] * r[j];
    R[4 * i] += Constant<T>(1.0) - b * theta2;
  }
  R[1] -= a * r[2];
  R[2] += a * r[1];
  R[3] += a * r[2];
  R[5] -= a * r[0];
  R[6] -= a * r[1];
  R[7] += a * r[0];
}

// out = R(r) p, without forming R: p + a (r × p) + b (r × (r × p)).
template <typename T>
void AngleAxisRotatePoint(const T* r, const T* p, T* out) {
  const T theta2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
  T a, b;
  RodriguesCoefficients(theta2, &a, &b);
  const T c[3] = {r[1] * p[2] - r[2] * p[1], r[2] * p[0] - r[0] * p[2], r[0] * p[1] - r[1] * p[0]};
  const T cc[3] = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
  for (int i = 0; i < 3; ++i) out[i] = p[i] + a * c[i] + b * cc[i];
}

}  // namespace ddn::geometry
