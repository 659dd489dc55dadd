// The scalar-generic dialect (scalar.h) with double, Jet and nested Jet: constants carry zero
// derivatives at every level, Value() reaches the double underneath, and a small objective written in
// the dialect has exact first and second derivatives.
#include "ddn/scalar.h"

#include <ceres/jet.h>
#include <gtest/gtest.h>

#include <cmath>

namespace ddn {
namespace {

using J1 = ceres::Jet<double, 2>;
using J2 = ceres::Jet<J1, 2>;

// f(a, b) = √(1 + a²) · exp(−b/2) + 3ab, in the dialect.
template <typename T>
T Objective(const T& a, const T& b) {
  using std::exp;
  using std::sqrt;
  return sqrt(Constant<T>(1.0) + a * a) * exp(-b / Constant<T>(2.0)) + Constant<T>(3.0) * a * b;
}

TEST(Scalar, SameObjectiveWithDoubleJetAndNestedJet) {
  const double a = 0.7, b = -0.4;
  const double f = Objective(a, b);
  // First derivatives.
  const J1 r1 = Objective(J1(a, 0), J1(b, 1));
  EXPECT_DOUBLE_EQ(r1.a, f);
  const double s = std::sqrt(1 + a * a), e = std::exp(-b / 2);
  EXPECT_NEAR(r1.v[0], a / s * e + 3 * b, 1e-15);
  EXPECT_NEAR(r1.v[1], -0.5 * s * e + 3 * a, 1e-15);
  // Second derivatives: outer seed a, inner seed b → ∂²f/∂a∂b.
  J2 va(J1(a, 0));
  va.v[0] = J1(1.0);
  J2 vb(J1(b, 1));
  const J2 r2 = Objective(va, vb);
  EXPECT_DOUBLE_EQ(Value(r2), f);
  EXPECT_NEAR(r2.v[0].v[1], -0.5 * a / s * e + 3, 1e-14);
  // Constants have zero derivatives at every level.
  const J2 c = Constant<J2>(2.5);
  EXPECT_EQ(c.a.a, 2.5);
  EXPECT_EQ(c.a.v.norm(), 0.0);
  EXPECT_EQ(c.v[0].a, 0.0);
  EXPECT_EQ(Value(c), 2.5);
}

}  // namespace
}  // namespace ddn
