// ddn/scalar.h: the scalar-generic dialect that objectives and constraints are written in.
//
// An objective is written once, as a template over the scalar type T, and ddn evaluates it with
//   T = double                                   (values; the forward solve's cost),
//   T = ceres::Jet<double, K>                    (first derivatives: gradients, constraint Jacobians),
//   T = ceres::Jet<ceres::Jet<double, M>, K>     (exact second derivatives: H and B of docs/design.md §1).
// Nested Jets break on mixed arithmetic with double (`x * 2.0`, `T(2.0)`, `1.0 / x`), on Eigen
// reductions over nested-Jet matrices and on ceres/rotation.h. So, in objectives:
//
//   - write constants as Constant<T>(2.0), never as bare doubles mixed with T;
//   - call math functions unqualified after `using std::sqrt; using std::exp; ...` (ADL finds the Jet
//     overloads), and use abs, not fabs;
//   - use hand-written loops, not Eigen expressions over T;
//   - compare values with Value(t) (the double underneath) when branching, e.g. on |z| ≤ α.
//
// Every ddn::DeclarativeNode instantiates its objective and constraints with all three types in its own
// translation unit (the generic solve and backward are virtual members), so an objective that breaks
// the dialect is a compile error for the built-in nodes and for yours alike, never a user's bug report.
//
// |t|^p with a real p at t = 0 has NaN derivatives through pow (pow(0, p − 1)·log 0): use AbsPow below.
#pragma once

#include <ceres/jet_fwd.h>

#include <cmath>
#include <type_traits>

namespace ddn {

namespace internal {
template <typename T>
struct ScalarTraits {
  static T Make(double c) { return T(c); }
  static double Value(const T& t) { return t; }
};
template <typename U, int N>
struct ScalarTraits<ceres::Jet<U, N>> {
  static ceres::Jet<U, N> Make(double c) { return ceres::Jet<U, N>(ScalarTraits<U>::Make(c)); }
  static double Value(const ceres::Jet<U, N>& t) { return ScalarTraits<U>::Value(t.a); }
};
}  // namespace internal

// The constant c as a T (a Jet with zero derivatives, nested as deep as T is).
template <typename T>
inline T Constant(double c) {
  return internal::ScalarTraits<T>::Make(c);
}

// The double value underneath a T (for branching; never for arithmetic that must be differentiated).
template <typename T>
inline double Value(const T& t) {
  return internal::ScalarTraits<T>::Value(t);
}

// |t|^p for p = 2 or p > 2, safe at t = 0 for every scalar type: pow(abs(t), p) is not (Ceres' pow of a nested
// Jet at 0 produces 0·log 0 = NaN in the second derivatives). Away from 0 it is pow(|t|, p); at t = 0 the value
// and gradient vanish and the second derivative is 2 for p = 2 and 0 for p > 2. For p < 2 the second derivative
// is unbounded at 0, so objectives built on |t|^p should require p ≥ 2 (or keep t away from 0).
template <typename T>
inline T AbsPow(const T& t, double p) {
  using std::abs;
  using std::pow;
  if (Value(t) != 0) return pow(abs(t), p);
  // The p = 2 branch is for the Jets' second derivative only; for a plain double t·t = +0 = Constant(0) at
  // t = ±0, so the branch is left out there: the same value, and it avoids an internal compiler error of GCC 12
  // with AMD Zen tuning (-march=native on Zen, -march/-mtune=znver1..3). A loop summing AbsPow<double>(y[i], p)
  // is unswitched on p == 2, pow(|t|, p) becomes pow(t, 2.0) in that copy, and the widening_mul pass, which with
  // Zen tuning defers FMAs that would form a chain in a loop (param avoid-fma-max-bits), folds that pow call into
  // an FMA and deletes it without unlinking its memory (errno) definition: the next dce pass segfaults.
  if constexpr (!std::is_arithmetic_v<T>) {
    if (p == 2) return t * t;
  }
  return Constant<T>(0.0);
}

}  // namespace ddn
