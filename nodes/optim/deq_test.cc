// Tests of deq_tanh: convergence, gradient checks, the unrolled adjoint against finite differences of the
// fixed-step map, unrolled against implicit, and failures.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/random.h"
#include "nodes/optim/deq_solver.h"

namespace ddn::optim {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

MatrixXd RandomW(int N, double norm, Rng* rng) {
  MatrixXd W(N, N);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) W(i, j) = rng->Normal();
  return W * (norm / Eigen::JacobiSVD<MatrixXd>(W).singularValues()[0]);
}

VectorXd RandomVector(int N, double scale, Rng* rng) {
  VectorXd x(N);
  for (auto& e : x) e = scale * rng->Normal();
  return x;
}

TEST(DeqSolver, ConvergesToMachinePrecision) {
  Rng rng(1);
  for (double norm : {0.3, 0.9, 0.99}) {
    const MatrixXd W = RandomW(20, norm, &rng);
    const VectorXd x = RandomVector(20, 1.0, &rng);
    const DeqResult r = SolveDeq(W, x, DeqOptions());
    EXPECT_LE(r.residual, 1e-13);
    EXPECT_LE(((W * r.z + x).array().tanh().matrix() - r.z).cwiseAbs().maxCoeff(), 1e-13);
    EXPECT_EQ(r.solver, "anderson");
  }
}

TEST(DeqNode, GradientCheckPasses) {
  for (const char* solver : {"direct", "iterative"}) {
    auto node = MakeNode("deq_tanh", {{"backward_solver", solver}});
    const CheckReport report = CheckGradients(*node);
    EXPECT_TRUE(report.passed) << solver << "\n" << report.ToString();
  }
}

TEST(DeqSolver, UnrolledAdjointMatchesFiniteDifferencesOfTheStepMap) {
  Rng rng(2);
  const int N = 6;
  const MatrixXd W = RandomW(N, 0.9, &rng);
  const VectorXd x = RandomVector(N, 1.0, &rng), v = RandomVector(N, 1.0, &rng);
  DeqOptions o;
  o.max_iterations = 7;
  o.window = 3;
  o.fallbacks = false;
  o.throw_on_failure = false;
  o.tolerance = 1e-300;
  DeqTape tape;
  SolveDeq(W, x, o, &tape);
  ASSERT_EQ(tape.steps.size(), 7u);
  VectorXd xbar;
  MatrixXd Wbar;
  DeqUnrolledVjp(W, tape, 100, v, &xbar, &Wbar);
  auto phi = [&](const MatrixXd& Wp, const VectorXd& xp) { return v.dot(SolveDeq(Wp, xp, o).z); };
  const double h = 1e-4;
  for (int i = 0; i < N; ++i) {
    auto at = [&](double e) {
      VectorXd xp = x;
      xp[i] += e;
      return phi(W, xp);
    };
    const double fd = CentralDifference(at, h);
    EXPECT_NEAR(xbar[i], fd, 1e-8 * (1 + std::abs(fd))) << i;
    for (int j = 0; j < N; ++j) {
      auto atW = [&](double e) {
        MatrixXd Wp = W;
        Wp(i, j) += e;
        return phi(Wp, x);
      };
      const double fdW = CentralDifference(atW, h);
      EXPECT_NEAR(Wbar(i, j), fdW, 1e-8 * (1 + std::abs(fdW))) << i << "," << j;
    }
  }
}

TEST(DeqSolver, UnrolledAgreesWithImplicitOnConvergedSolvesTruncatedDoesNot) {
  Rng rng(3);
  const int N = 12;
  const MatrixXd W = RandomW(N, 0.8, &rng);
  const VectorXd x = RandomVector(N, 1.0, &rng), v = RandomVector(N, 1.0, &rng);
  DeqTape tape;
  const DeqResult r = SolveDeq(W, x, DeqOptions(), &tape);
  VectorXd xi, xu, xt;
  MatrixXd Wi, Wu, Wt;
  ProblemStatus s;
  DeqImplicitVjp(W, x, r.z, v, DeqOptions(), &xi, &Wi, &s);
  DeqUnrolledVjp(W, tape, 1 << 20, v, &xu, &Wu);
  DeqUnrolledVjp(W, tape, 1, v, &xt, &Wt);
  EXPECT_LT((xu - xi).norm() / xi.norm(), 1e-8);
  EXPECT_LT((Wu - Wi).norm() / Wi.norm(), 1e-8);
  EXPECT_GT((xt - xi).norm() / xi.norm(), 1e-3);
}

TEST(DeqNode, NoConvergenceIsANumericalFailureNoContractionAFlag) {
  Rng rng(4);
  auto node = MakeNode("deq_tanh", {{"max_iterations", "2"}});
  const int N = 8;
  Tensor x(Shape{2, N}), W(Shape{2, N, N});
  for (int b = 0; b < 2; ++b) {
    const MatrixXd w = RandomW(N, 0.9, &rng);
    Eigen::Map<Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(W.problem(b), N, N) = w;
    for (int i = 0; i < N; ++i) x.problem(b)[i] = std::cos(i + b);
  }
  try {
    Forward(*node, {{"x", x}, {"W", W}});
    FAIL() << "no error";
  } catch (const NumericalFailure& e) {
    EXPECT_NE(std::string(e.what()).find("no fixed point"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("batch element 0"), std::string::npos) << e.what();
  }
  auto ok = MakeNode("deq_tanh");
  const CheckCase c = ok->CheckCases(1).back();  // ‖W‖₂ = 1.5
  const ForwardResult f = Forward(*ok, c.inputs);
  for (const auto& s : f.status) EXPECT_TRUE(s.flags & kNonUnique) << s.note;
}

TEST(DeqNode, BadParametersAndInputs) {
  EXPECT_THROW(MakeNode("deq_tanh", {{"beta", "1.5"}}), InvalidInput);
  EXPECT_THROW(MakeNode("deq_tanh", {{"window", "0"}}), InvalidInput);
  auto node = MakeNode("deq_tanh");
  Tensor x(Shape{1, 2}, {0, 0}), W(Shape{1, 3, 3});
  EXPECT_THROW(Forward(*node, {{"x", x}, {"W", W}}), InvalidInput);
}

}  // namespace
}  // namespace ddn::optim
