// Tests of the implicit-differentiation core (implicit.h) on hand-made blocks: the VJP against the
// explicit Jacobian formula of docs/design.md §1, the KKT signs against a problem solved by hand, and the
// non-regular (singular) paths.
#include "ddn/implicit.h"
#include "ddn/random.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>

namespace ddn {
namespace {

Eigen::MatrixXd RandomMatrix(int r, int c, Rng* rng) {
  Eigen::MatrixXd M(r, c);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < c; ++j) M(i, j) = rng->Normal();
  return M;
}

TEST(ImplicitVjp, UnconstrainedMatchesMinusHinvB) {
  Rng rng(1);
  const int m = 5, n = 7;
  const Eigen::MatrixXd R = RandomMatrix(m, m, &rng);
  ImplicitSystem s{R * R.transpose() + Eigen::MatrixXd::Identity(m, m), RandomMatrix(m, n, &rng), {}, {}};
  s.A.resize(0, m);
  s.C.resize(0, n);
  const Eigen::VectorXd v = RandomMatrix(m, 1, &rng);
  ProblemStatus status;
  const Eigen::VectorXd dx = ImplicitVjp(s, v, &status);
  const Eigen::MatrixXd Dy = -s.H.inverse() * s.B;
  EXPECT_LT((dx - Dy.transpose() * v).norm(), 1e-12 * (1 + dx.norm()));
  EXPECT_TRUE(status.ok());
}

TEST(ImplicitVjp, EqualityConstrainedMatchesPropositionFormula) {
  Rng rng(2);
  const int m = 6, n = 4, p = 2;
  const Eigen::MatrixXd R = RandomMatrix(m, m, &rng);
  ImplicitSystem s{R * R.transpose() + 0.5 * Eigen::MatrixXd::Identity(m, m), RandomMatrix(m, n, &rng),
                   RandomMatrix(p, m, &rng), RandomMatrix(p, n, &rng)};
  const Eigen::MatrixXd Hi = s.H.inverse();
  const Eigen::MatrixXd S = s.A * Hi * s.A.transpose();
  // Dy = H⁻¹Aᵀ(AH⁻¹Aᵀ)⁻¹(AH⁻¹B − C) − H⁻¹B (Gould et al. 2022, Prop. 4.5).
  const Eigen::MatrixXd Dy = Hi * s.A.transpose() * S.inverse() * (s.A * Hi * s.B - s.C) - Hi * s.B;
  const Eigen::VectorXd v = RandomMatrix(m, 1, &rng);
  ProblemStatus status;
  const Eigen::VectorXd dx = ImplicitVjp(s, v, &status);
  EXPECT_LT((dx - Dy.transpose() * v).norm(), 1e-10 * (1 + dx.norm()));
  EXPECT_TRUE(status.ok()) << status.note;
  // Full Jacobian helper agrees too.
  EXPECT_LT((ImplicitJacobian(s, &status) - Dy).norm(), 1e-10 * (1 + Dy.norm()));
}

TEST(ImplicitVjp, ConstrainedWithIndefiniteHessianStillRegular) {
  // H indefinite but positive definite on the null space of A: a regular constrained minimum.
  ImplicitSystem s;
  s.H = Eigen::Vector2d(1.0, -1.0).asDiagonal();
  s.A = Eigen::RowVector2d(0.0, 1.0);
  s.B = Eigen::MatrixXd::Identity(2, 2);
  s.C = Eigen::MatrixXd::Zero(1, 2);
  ProblemStatus status;
  const Eigen::VectorXd dx = ImplicitVjp(s, Eigen::Vector2d(1.0, 1.0), &status);
  // y₂ is pinned by the constraint; y₁ = −x₁: vᵀDy = (−1, 0).
  EXPECT_NEAR(dx[0], -1.0, 1e-14);
  EXPECT_NEAR(dx[1], 0.0, 1e-14);
  EXPECT_TRUE(status.ok()) << status.note;
}

TEST(ImplicitVjp, SingularHessianGivesMinimumNormAndStatus) {
  // H = [[1, 1], [1, 1]] (rank 1), B = −[1, 1]ᵀ: y = (x/2, x/2) is the minimum-norm minimiser of
  // ½(y₀ + y₁ − x)², whose derivative is (½, ½).
  ImplicitSystem s;
  s.H = Eigen::MatrixXd::Ones(2, 2);
  s.B = -Eigen::MatrixXd::Ones(2, 1);
  s.A.resize(0, 2);
  s.C.resize(0, 1);
  ProblemStatus status;
  const Eigen::VectorXd dx = ImplicitVjp(s, Eigen::Vector2d(1.0, 3.0), &status);
  EXPECT_NEAR(dx[0], 2.0, 1e-14);
  EXPECT_TRUE(status.flags & kNonRegular);
  // The zero Hessian gives a zero gradient and the flag, never a NaN.
  s.H.setZero();
  ProblemStatus zero;
  const Eigen::VectorXd d0 = ImplicitVjp(s, Eigen::Vector2d(1.0, 3.0), &zero);
  EXPECT_EQ(d0[0], 0.0);
  EXPECT_TRUE(zero.flags & kNonRegular);
}

TEST(ImplicitVjp, RankDeficientConstraintsAreNonRegular) {
  ImplicitSystem s;
  s.H = Eigen::MatrixXd::Identity(3, 3);
  s.B = Eigen::MatrixXd::Identity(3, 3);
  s.A = Eigen::MatrixXd(2, 3);
  s.A << 1, 1, 0, 2, 2, 0;  // the same constraint twice
  s.C = Eigen::MatrixXd::Zero(2, 3);
  ProblemStatus status;
  const Eigen::VectorXd dx = ImplicitVjp(s, Eigen::Vector3d(1.0, 0.0, 2.0), &status);
  EXPECT_TRUE(status.flags & kNonRegular);
  EXPECT_TRUE(dx.allFinite());
  // Projection onto y₀ + y₁ = const: the component along (1, 1) is removed.
  EXPECT_NEAR(dx[0], -0.5, 1e-12);
  EXPECT_NEAR(dx[1], 0.5, 1e-12);
  EXPECT_NEAR(dx[2], -2.0, 1e-12);
}

TEST(ImplicitVjp, NearSingularHessianIsFlaggedButSolvedWhenAboveThreshold) {
  ImplicitSystem s;
  s.H = Eigen::Vector2d(1.0, 1e-8).asDiagonal();
  s.B = -Eigen::MatrixXd::Identity(2, 2);
  s.A.resize(0, 2);
  s.C.resize(0, 2);
  ProblemStatus status;
  const Eigen::VectorXd dx = ImplicitVjp(s, Eigen::Vector2d(1.0, 1e-8), &status);
  EXPECT_NEAR(dx[1], 1.0, 1e-10);  // 1e-8 / 1e-8: still solved exactly
  EXPECT_TRUE(status.ok());
}

// The rank test is relative: the same problem with f × 1e-8 and the constraints × 1e8 (or the reverse) is regular
// and gives the same gradient (an unscaled rcond test called it singular and dropped the constraint).
TEST(ImplicitVjp, ObjectiveAndConstraintScaleDoNotChangeTheAnswer) {
  Rng rng(9);
  const int m = 4, n = 3, p = 1;
  const Eigen::MatrixXd R = RandomMatrix(m, m, &rng);
  const ImplicitSystem base{R * R.transpose() + Eigen::MatrixXd::Identity(m, m), RandomMatrix(m, n, &rng),
                            RandomMatrix(p, m, &rng), RandomMatrix(p, n, &rng)};
  const Eigen::VectorXd v = RandomMatrix(m, 1, &rng);
  ProblemStatus s0;
  const Eigen::VectorXd dx0 = ImplicitVjp(base, v, &s0);
  ASSERT_TRUE(s0.ok());
  for (double f : {1e-8, 1e8}) {
    for (double c : {1e-8, 1e8}) {
      // H, B scale with f; A, C with c (the multipliers, and μ, absorb the constants).
      const ImplicitSystem scaled{f * base.H, f * base.B, c * base.A, c * base.C};
      ProblemStatus st;
      const Eigen::VectorXd dx = ImplicitVjp(scaled, v, &st);
      EXPECT_TRUE(st.ok()) << f << " " << c << ": " << st.note;
      EXPECT_LT((dx - dx0).norm(), 1e-9 * dx0.norm()) << f << " " << c;
    }
  }
}

}  // namespace
}  // namespace ddn
