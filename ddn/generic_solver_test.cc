// The generic solver on its own, through hand-written oracles (explicit derivatives, no automatic
// differentiation): convex and non-convex problems, saddles and maxima it must leave, singular and degenerate
// minima, equality and inequality constraints, infeasibility, scale invariance, and the options' checks.
#include "ddn/generic_solver.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <functional>
#include <string>

#include "ddn/error.h"
#include "ddn/generic_kkt.h"

namespace ddn {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

// An oracle from dense closures: f, ∇f, ∇²f, ∇²_yx f in y (and x fixed inside the closures), c, ∂c/∂y, ∂c/∂x
// and the constraints' Hessians.
struct TestProblem : public DerivativeOracle {
  int m = 1, n = 0, p = 0, q = 0;
  std::function<double(const VectorXd&)> f;
  std::function<VectorXd(const VectorXd&)> grad;
  std::function<MatrixXd(const VectorXd&)> hess;
  std::function<MatrixXd(const VectorXd&)> mixed;  // m × n
  std::function<VectorXd(const VectorXd&)> c;
  std::function<MatrixXd(const VectorXd&)> jac;           // (p+q) × m
  std::function<MatrixXd(const VectorXd&)> jac_x;         // (p+q) × n
  std::function<MatrixXd(const VectorXd&, int)> c_hess;   // ∇²_yy c_i
  std::function<MatrixXd(const VectorXd&, int)> c_mixed;  // ∇²_yx c_i

  int num_variables() const override { return m; }
  int num_parameters() const override { return n; }
  int num_equalities() const override { return p; }
  int num_inequalities() const override { return q; }
  double Value(const double* y) const override { return f(Eigen::Map<const VectorXd>(y, m)); }
  double Derivatives(const double* y, double* g, std::vector<SparseEntry>* H, std::vector<SparseEntry>* B,
                     double* magnitude) const override {
    const VectorXd yy = Eigen::Map<const VectorXd>(y, m);
    const VectorXd gg = grad(yy);
    for (int k = 0; k < m; ++k) g[k] = gg[k];
    if (magnitude)
      for (int k = 0; k < m; ++k) magnitude[k] += std::abs(gg[k]);
    if (H) Lower(hess(yy), H);
    if (B && mixed) Full(mixed(yy), B);
    return f(yy);
  }
  void Constraints(const double* y, double* out) const override {
    const VectorXd v = c(Eigen::Map<const VectorXd>(y, m));
    for (int i = 0; i < p + q; ++i) out[i] = v[i];
  }
  void ConstraintJacobian(const double* y, double* out, std::vector<SparseEntry>* jy,
                          std::vector<SparseEntry>* jx) const override {
    const VectorXd yy = Eigen::Map<const VectorXd>(y, m);
    Constraints(y, out);
    Full(jac(yy), jy);
    if (jx && jac_x) Full(jac_x(yy), jx);
  }
  void ConstraintCurvature(const double* y, const double* w, std::vector<SparseEntry>* H,
                           std::vector<SparseEntry>* B) const override {
    const VectorXd yy = Eigen::Map<const VectorXd>(y, m);
    MatrixXd S = MatrixXd::Zero(m, m), M = MatrixXd::Zero(m, n);
    for (int i = 0; i < p + q; ++i) {
      if (w[i] == 0) continue;
      if (c_hess) S += w[i] * c_hess(yy, i);
      if (c_mixed) M += w[i] * c_mixed(yy, i);
    }
    Lower(S, H);
    if (B) Full(M, B);
  }
  static void Lower(const MatrixXd& A, std::vector<SparseEntry>* out) {
    for (int i = 0; i < A.rows(); ++i)
      for (int j = 0; j <= i; ++j)
        if (A(i, j) != 0) out->push_back({i, j, A(i, j)});
  }
  static void Full(const MatrixXd& A, std::vector<SparseEntry>* out) {
    for (int i = 0; i < A.rows(); ++i)
      for (int j = 0; j < A.cols(); ++j)
        if (A(i, j) != 0) out->push_back({i, j, A(i, j)});
  }
};

VectorXd Solve(const TestProblem& P, VectorXd y0, ProblemStatus* s, const GenericSolverOptions& o = {}) {
  SolveGeneric(P, o, y0.data(), s);
  return y0;
}

// f = ½ yᵀQy − xᵀy with x the parameters: y = Q⁻¹x, vᵀDy = (Q⁻¹v)ᵀ.
TestProblem Quadratic(const MatrixXd& Q, const VectorXd& x) {
  TestProblem P;
  P.m = static_cast<int>(Q.rows());
  P.n = P.m;
  P.f = [Q, x](const VectorXd& y) { return 0.5 * y.dot(Q * y) - x.dot(y); };
  P.grad = [Q, x](const VectorXd& y) -> VectorXd { return Q * y - x; };
  P.hess = [Q](const VectorXd&) -> MatrixXd { return Q; };
  P.mixed = [Q](const VectorXd&) -> MatrixXd { return -MatrixXd::Identity(Q.rows(), Q.rows()); };
  return P;
}

TEST(GenericSolver, QuadraticAndItsGradient) {
  MatrixXd Q(3, 3);
  Q << 4, 1, 0, 1, 3, 0.5, 0, 0.5, 2;
  const VectorXd x = VectorXd::LinSpaced(3, -1, 2);
  const TestProblem P = Quadratic(Q, x);
  ProblemStatus s;
  const VectorXd y = Solve(P, VectorXd::Zero(3), &s);
  const VectorXd want = Q.ldlt().solve(x);
  EXPECT_LE((y - want).cwiseAbs().maxCoeff(), 1e-15 * want.cwiseAbs().maxCoeff() * 10);
  EXPECT_EQ(s.flags, 0u) << s.note;
  EXPECT_LE(s.residual, 1e-12);
  const VectorXd v = VectorXd::LinSpaced(3, 1, 3);
  VectorXd dx = VectorXd::Zero(3);
  ProblemStatus sb;
  GenericVjp(P, {}, y.data(), v.data(), dx.data(), &sb);
  EXPECT_LE((dx - Q.ldlt().solve(v)).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_EQ(sb.flags, 0u);
}

TEST(GenericSolver, RosenbrockFromTheClassicStart) {
  TestProblem P;
  P.m = 2;
  P.f = [](const VectorXd& y) { return 100 * std::pow(y[1] - y[0] * y[0], 2) + std::pow(1 - y[0], 2); };
  P.grad = [](const VectorXd& y) -> VectorXd {
    VectorXd g(2);
    g << -400 * y[0] * (y[1] - y[0] * y[0]) - 2 * (1 - y[0]), 200 * (y[1] - y[0] * y[0]);
    return g;
  };
  P.hess = [](const VectorXd& y) -> MatrixXd {
    MatrixXd H(2, 2);
    H << 1200 * y[0] * y[0] - 400 * y[1] + 2, -400 * y[0], -400 * y[0], 200;
    return H;
  };
  ProblemStatus s;
  const VectorXd y = Solve(P, (VectorXd(2) << -1.2, 1.0).finished(), &s);
  EXPECT_NEAR(y[0], 1.0, 1e-14);
  EXPECT_NEAR(y[1], 1.0, 1e-14);
  EXPECT_EQ(s.flags, 0u) << s.note;
}

// f = y0² − y1² + y1⁴ started exactly at its saddle (0, 0) (∇f = 0): the solver must leave it along y1.
TEST(GenericSolver, EscapesASaddleStartedExactlyOnIt) {
  TestProblem P;
  P.m = 2;
  P.f = [](const VectorXd& y) { return y[0] * y[0] - y[1] * y[1] + std::pow(y[1], 4); };
  P.grad = [](const VectorXd& y) -> VectorXd {
    return (VectorXd(2) << 2 * y[0], -2 * y[1] + 4 * std::pow(y[1], 3)).finished();
  };
  P.hess = [](const VectorXd& y) -> MatrixXd { return (MatrixXd(2, 2) << 2, 0, 0, -2 + 12 * y[1] * y[1]).finished(); };
  ProblemStatus s;
  const VectorXd y = Solve(P, VectorXd::Zero(2), &s);
  EXPECT_NEAR(std::abs(y[1]), std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(y[0], 0.0, 1e-14);
  // A verified local minimum; the escape proved the problem non-convex, so no global certificate.
  EXPECT_EQ(s.flags, kNotCertified) << s.note;
}

// A quadratic on the unit sphere, min ½yᵀDy s.t. ‖y‖² = 1, started at the maximiser (the eigenvector of the
// largest eigenvalue, a KKT point): the answer is the eigenvector of the smallest one.
TEST(GenericSolver, LeavesTheMaximumOfAQuadraticOnTheSphere) {
  const VectorXd d = (VectorXd(3) << 0.5, 1.0, 2.0).finished();
  TestProblem P;
  P.m = 3;
  P.p = 1;
  P.f = [d](const VectorXd& y) { return 0.5 * y.dot(d.asDiagonal() * y); };
  P.grad = [d](const VectorXd& y) -> VectorXd { return d.asDiagonal() * y; };
  P.hess = [d](const VectorXd&) -> MatrixXd { return d.asDiagonal(); };
  P.c = [](const VectorXd& y) -> VectorXd { return (VectorXd(1) << y.squaredNorm() - 1).finished(); };
  P.jac = [](const VectorXd& y) -> MatrixXd { return 2 * y.transpose(); };
  P.c_hess = [](const VectorXd&, int) -> MatrixXd { return 2 * MatrixXd::Identity(3, 3); };
  ProblemStatus s;
  const VectorXd y = Solve(P, (VectorXd(3) << 0, 0, 1).finished(), &s);
  EXPECT_NEAR(std::abs(y[0]), 1.0, 1e-14);
  EXPECT_NEAR(P.f(y), 0.25, 1e-14);
  EXPECT_EQ(s.flags, kNotCertified) << s.note;
}

// Σ (y − x)⁴ (one term): a degenerate minimum, H → 0. The residual must reflect y's accuracy.
TEST(GenericSolver, DegenerateMinimumConvergesAndItsResidualIsHonest) {
  TestProblem P;
  P.m = 1;
  const double x = 1.7;
  P.f = [x](const VectorXd& y) { return std::pow(y[0] - x, 4); };
  P.grad = [x](const VectorXd& y) -> VectorXd { return VectorXd::Constant(1, 4 * std::pow(y[0] - x, 3)); };
  P.hess = [x](const VectorXd& y) -> MatrixXd { return MatrixXd::Constant(1, 1, 12 * std::pow(y[0] - x, 2)); };
  ProblemStatus s;
  const VectorXd y = Solve(P, VectorXd::Zero(1), &s);
  EXPECT_LE(std::abs(y[0] - x), 1e-13 * x) << "residual " << s.residual;
  EXPECT_GE(std::abs(y[0] - x), 0.0);
  // Whatever it reports, the reported residual bounds the error.
  EXPECT_LE(std::abs(y[0] - x) / x, std::max(s.residual * 10, 1e-15));
  // Stopping it early gives a residual that says so (and a flag).
  GenericSolverOptions early;
  early.max_newton_iterations = 20;
  ProblemStatus s2;
  VectorXd y2 = VectorXd::Zero(1);
  try {
    SolveGeneric(P, early, y2.data(), &s2);
    EXPECT_GE(s2.residual, 0.3 * std::abs(y2[0] - x) / x);
    EXPECT_TRUE(s2.flags & kUnverified) << s2.note;
  } catch (const NumericalFailure&) {
    // Far from converged: a failure is the other honest answer.
  }
}

// Σ_k (e^{y_k} − b_k y_k), minimised at y = log b: Newton converges quadratically. Every pass over the
// objective must move y: none at a point already evaluated (a simplified step just above the stopping step is
// taken, not thrown away for a full step at the same point), and none only to measure a step below rounding at
// the answer (the solve stops when quadratic convergence predicts the next step far below the stopping step).
// The answer is log b to the last bits all the same, and the residual says so.
TEST(GenericSolver, QuadraticConvergenceWastesNoPassOverTheObjective) {
  struct Recording : TestProblem {
    mutable std::vector<VectorXd> points;
    double Derivatives(const double* y, double* g, std::vector<SparseEntry>* H, std::vector<SparseEntry>* B,
                       double* magnitude) const override {
      points.push_back(Eigen::Map<const VectorXd>(y, m));
      return TestProblem::Derivatives(y, g, H, B, magnitude);
    }
  };
  const VectorXd b = (VectorXd(3) << 0.5, 3.0, 40.0).finished();
  for (const VectorXd& y0 : {(VectorXd(3) << -0.4, 1.3, 3.5).finished(), (VectorXd(3) << 0.0, 0.0, 0.0).finished(),
                             (VectorXd(3) << -0.7, 1.1, 3.7).finished()}) {
    Recording P;
    P.m = 3;
    P.f = [b](const VectorXd& y) { return y.array().exp().sum() - b.dot(y); };
    P.grad = [b](const VectorXd& y) -> VectorXd { return y.array().exp().matrix() - b; };
    P.hess = [](const VectorXd& y) -> MatrixXd { return y.array().exp().matrix().asDiagonal(); };
    ProblemStatus s;
    const VectorXd y = Solve(P, y0, &s);
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(y[k], std::log(b[k]), 4e-16 * std::max(1.0, std::abs(std::log(b[k]))))
          << k << " from " << y0.transpose();
    }
    EXPECT_EQ(s.flags, 0u) << s.note;
    EXPECT_LE(s.residual, 1e-15);
    ASSERT_FALSE(P.points.empty());
    for (size_t i = 0; i < P.points.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        EXPECT_NE(P.points[i], P.points[j]) << "passes " << j << " and " << i << " at one point";
    EXPECT_NE(P.points.back(), y) << "the last pass only measured the answer (" << P.points.size() << " passes)";
  }
}

// ½(y0 + y1 − x)²: a line of minimisers.
TEST(GenericSolver, AValleyOfMinimisersIsNonUnique) {
  TestProblem P;
  P.m = 2;
  P.n = 1;
  const double x = 3.0;
  P.f = [x](const VectorXd& y) { return 0.5 * std::pow(y[0] + y[1] - x, 2); };
  P.grad = [x](const VectorXd& y) -> VectorXd { return VectorXd::Constant(2, y[0] + y[1] - x); };
  P.hess = [](const VectorXd&) -> MatrixXd { return MatrixXd::Ones(2, 2); };
  P.mixed = [](const VectorXd&) -> MatrixXd { return -MatrixXd::Ones(2, 1); };
  ProblemStatus s;
  const VectorXd y = Solve(P, VectorXd::Zero(2), &s);
  EXPECT_NEAR(y[0], 1.5, 1e-14);
  EXPECT_NEAR(y[1], 1.5, 1e-14);
  EXPECT_EQ(s.flags, kNonUnique) << s.note;
  VectorXd dx = VectorXd::Zero(1);
  const VectorXd v = (VectorXd(2) << 1.0, 3.0).finished();
  GenericVjp(P, {}, y.data(), v.data(), dx.data(), &s);
  EXPECT_NEAR(dx[0], 2.0, 1e-13);  // minimum-norm: (v0 + v1)/2
  EXPECT_TRUE(s.flags & kNonRegular);
}

// Projection onto the box [−1, 1]³ with one coordinate inside, one clamped, one exactly at the bound.
TEST(GenericSolver, BoxConstraintsActiveInactiveAndDegenerate) {
  const VectorXd x = (VectorXd(3) << 0.3, 2.0, 1.0).finished();
  TestProblem P = Quadratic(MatrixXd::Identity(3, 3), x);
  P.q = 6;
  P.c = [](const VectorXd& y) -> VectorXd {
    VectorXd g(6);
    g << y.array() - 1, -1 - y.array();
    return g;
  };
  P.jac = [](const VectorXd&) -> MatrixXd {
    MatrixXd J(6, 3);
    J << MatrixXd::Identity(3, 3), -MatrixXd::Identity(3, 3);
    return J;
  };
  ProblemStatus s;
  const VectorXd y = Solve(P, VectorXd::Zero(3), &s);
  EXPECT_NEAR(y[0], 0.3, 1e-15);
  EXPECT_EQ(y[1], 1.0);
  EXPECT_NEAR(y[2], 1.0, 1e-15);
  EXPECT_TRUE(s.flags & kDegenerate) << s.note;
  VectorXd dx = VectorXd::Zero(3);
  const VectorXd v = VectorXd::Ones(3);
  ProblemStatus sb;
  GenericVjp(P, {}, y.data(), v.data(), dx.data(), &sb);
  EXPECT_NEAR(dx[0], 1.0, 1e-14);
  EXPECT_NEAR(dx[1], 0.0, 1e-14);
}

TEST(GenericSolver, InfeasibleConstraintsAreANumericalFailure) {
  TestProblem P = Quadratic(MatrixXd::Identity(1, 1), VectorXd::Zero(1));
  P.q = 2;
  P.c = [](const VectorXd& y) -> VectorXd { return (VectorXd(2) << y[0] + 1, 1 - y[0]).finished(); };
  P.jac = [](const VectorXd&) -> MatrixXd { return (MatrixXd(2, 1) << 1, -1).finished(); };
  ProblemStatus s;
  try {
    Solve(P, VectorXd::Zero(1), &s);
    FAIL() << "expected NumericalFailure";
  } catch (const NumericalFailure& e) {
    EXPECT_NE(std::string(e.what()).find("infeasible"), std::string::npos) << e.what();
  }
}

// f = w/2 ‖y − x‖² s.t. Σ y = b: the answer, flags and gradients are the same for every scale of f and of the
// constraint (w from 1e-8 to 1e8, the constraint times 1e-8 to 1e8, both through the options).
TEST(GenericSolver, ObjectiveAndConstraintScaleDoNotChangeTheAnswer) {
  const int m = 4;
  const VectorXd x = (VectorXd(m) << 0.3, -1.2, 2.5, 0.1).finished();
  const double b = 1.0;
  TestProblem P = Quadratic(MatrixXd::Identity(m, m), x);
  P.p = 1;
  P.c = [b](const VectorXd& y) -> VectorXd { return VectorXd::Constant(1, y.sum() - b); };
  P.jac = [](const VectorXd&) -> MatrixXd { return MatrixXd::Ones(1, m); };
  P.jac_x = [](const VectorXd&) -> MatrixXd { return MatrixXd::Zero(1, m); };
  const VectorXd want = x.array() - (x.sum() - b) / m;
  const VectorXd v = (VectorXd(m) << 1, 2, -1, 0.5).finished();
  const VectorXd dx_want = v.array() - v.sum() / m;  // the projection onto {Σ = 0}
  for (double fs : {1e-8, 1e-4, 1.0, 3e5, 1e8}) {
    for (double cs : {1e-8, 1e-3, 1.0, 1e4, 1e8}) {
      GenericSolverOptions o;
      o.objective_scale = fs;
      o.constraint_scale = cs;
      ProblemStatus s;
      const VectorXd y = Solve(P, VectorXd::Zero(m), &s, o);
      EXPECT_LE((y - want).cwiseAbs().maxCoeff(), 1e-14) << "f × " << fs << ", c × " << cs;
      EXPECT_EQ(s.flags, 0u) << "f × " << fs << ", c × " << cs << ": " << s.note;
      VectorXd dx = VectorXd::Zero(m);
      GenericVjp(P, o, y.data(), v.data(), dx.data(), &s);
      EXPECT_LE((dx - dx_want).cwiseAbs().maxCoeff(), 1e-13) << "f × " << fs << ", c × " << cs;
      EXPECT_EQ(s.flags, 0u) << s.note;
    }
  }
}

// ---- the KKT factorisation on its own ----------------------------------------------------------------------------

// One KKT system: H (m × m, symmetric, given by its lower entries), the constraint rows W of A.
struct KktCase {
  enum Path { kDense, kSchur, kSparse };
  Path path = kSparse;  // the factorisation the case is built to go to
  int m = 0;
  internal::Entries H;
  internal::SpRow A;
  std::vector<int> W;

  MatrixXd Dense() const {
    const int w = static_cast<int>(W.size());
    MatrixXd K = MatrixXd::Zero(m + w, m + w);
    for (const auto& e : H) {
      K(e.row, e.col) += e.value;
      if (e.row != e.col) K(e.col, e.row) += e.value;
    }
    for (int j = 0; j < w; ++j) {
      for (internal::SpRow::InnerIterator it(A, W[j]); it; ++it) {
        K(m + j, it.col()) = it.value();
        K(it.col(), m + j) = it.value();
      }
    }
    return K;
  }
};

// m variables, a symmetric positive definite H (tridiagonal, or diagonal for the Schur-complement path), and
// `w` dense constraint rows, every one in W. `scale` changes the values, not the pattern.
KktCase MakeKktCase(int m, int w, bool tridiagonal, double scale) {
  KktCase c;
  c.m = m;
  c.path = m + w <= 8 ? KktCase::kDense : tridiagonal ? KktCase::kSparse : KktCase::kSchur;
  for (int k = 0; k < m; ++k) {
    c.H.push_back({k, k, scale * (4.0 + 0.25 * k)});
    if (tridiagonal && k > 0) c.H.push_back({k, k - 1, -scale * (1.0 + 0.01 * k)});
  }
  std::vector<Eigen::Triplet<double>> t;
  for (int i = 0; i < w; ++i) {
    for (int k = 0; k < m; ++k) t.emplace_back(i, k, std::cos(1.0 + 3.0 * i + 0.7 * k) + (k == i ? 2.0 : 0.0));
    c.W.push_back(i);
  }
  c.A.resize(w, m);
  c.A.setFromTriplets(t.begin(), t.end());
  return c;
}

// The solver keeps one Kkt per Newton loop while its working set, and so the size and pattern of K, changes. A
// large system goes to the sparse LDLᵀ (its pattern analysed and saved), a small one to the dense or the Schur
// path (which return before any analysis), then the large pattern comes back: the factorisation must not take
// the analysed pattern as that of its regularised copy, which by then holds the small matrix (fix 9f96fea: a
// copy of the large matrix's values into the small one's storage, then a factorisation of a matrix of the
// wrong size).
TEST(GenericKkt, OneObjectAlternatesSparseDenseAndSchurSystems) {
  const GenericSolverOptions options;
  const KktCase large = MakeKktCase(40, 3, /*tridiagonal=*/true, 1.0);   // sparse LDLᵀ
  const KktCase large2 = MakeKktCase(40, 3, /*tridiagonal=*/true, 2.5);  // same pattern, other values
  const KktCase tiny = MakeKktCase(5, 1, /*tridiagonal=*/true, 1.0);     // dense (6 ≤ kTinySystem rows)
  const KktCase schur = MakeKktCase(30, 2, /*tridiagonal=*/false, 1.0);  // diagonal H: Schur complement
  const KktCase other = MakeKktCase(24, 2, /*tridiagonal=*/true, 1.0);   // sparse, another pattern
  internal::Kkt kkt;
  const std::vector<const KktCase*> sequence = {&large, &tiny,   &large2, &schur, &large, &other,
                                                &tiny,  &large2, &schur,  &other, &large};
  for (size_t k = 0; k < sequence.size(); ++k) {
    const KktCase& c = *sequence[k];
    ASSERT_TRUE(kkt.Factorize(c.m, c.H, c.A, c.W, VectorXd(), 0.0, options)) << "system " << k;
    const int n = c.m + static_cast<int>(c.W.size());
    ASSERT_EQ(kkt.size(), n) << "system " << k;
    EXPECT_EQ(kkt.dense(), c.path == KktCase::kDense) << "system " << k;
    EXPECT_EQ(kkt.schur(), c.path == KktCase::kSchur) << "system " << k;
    // Inertia of a KKT matrix with H positive definite and A_W of full row rank: m positive, w negative.
    EXPECT_EQ(kkt.inertia().positive, c.m) << "system " << k;
    EXPECT_EQ(kkt.inertia().negative, static_cast<int>(c.W.size())) << "system " << k;
    EXPECT_EQ(kkt.inertia().zero, 0) << "system " << k;
    const VectorXd b = VectorXd::LinSpaced(n, -1.0, 2.0) + VectorXd::Constant(n, 0.1 * static_cast<double>(k));
    const VectorXd z = kkt.Solve(b);
    const MatrixXd K = c.Dense();
    const VectorXd want = K.fullPivLu().solve(b);
    EXPECT_LE((z - want).cwiseAbs().maxCoeff(), 1e-12 * want.cwiseAbs().maxCoeff()) << "system " << k;
    EXPECT_LE((K * z - b).cwiseAbs().maxCoeff(), 1e-12 * b.cwiseAbs().maxCoeff()) << "system " << k;
  }
}

TEST(GenericSolverOptions, ValidatedAndSetFromText) {
  GenericSolverOptions o;
  EXPECT_NO_THROW(o.Validate());
  o.SetOption("max_newton_iterations", "50");
  EXPECT_EQ(o.max_newton_iterations, 50);
  o.SetOption("rcond", "1e-12");
  EXPECT_EQ(o.rcond, 1e-12);
  EXPECT_THROW(o.SetOption("no_such_option", "1"), InvalidInput);
  EXPECT_THROW(o.SetOption("rcond", "abc"), InvalidInput);
  EXPECT_THROW(o.SetOption("rcond", "nan"), InvalidInput);
  EXPECT_THROW(o.SetOption("max_newton_iterations", "0"), InvalidInput);
  EXPECT_THROW(o.SetOption("max_newton_iterations", "1.5"), InvalidInput);
  EXPECT_THROW(o.SetOption("objective_scale", "-1"), InvalidInput);
  EXPECT_THROW(o.SetOption("failure_residual", "1e-20"), InvalidInput);
  try {
    o.SetOption("tolerance", "1");
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("converged_residual"), std::string::npos) << "lists the known keys";
  }
  GenericSolverOptions bad;
  bad.dense_limit = -1;
  EXPECT_THROW(bad.Validate(), InvalidInput);
  EXPECT_EQ(o.Describe().size(), 13u);
}

}  // namespace
}  // namespace ddn
