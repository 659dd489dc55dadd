// Tests of the generic engine through the example nodes: forward solves against closed forms, the
// implicit backward against closed-form Jacobians and finite differences, awkward points (active and
// inactive constraints, a constraint exactly at its bound, a singular Hessian), and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"

namespace ddn {
namespace {

Tensor Random(Shape shape, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Tensor t(std::move(shape));
  for (auto& v : t.values()) v = scale * rng.Normal();
  return t;
}

void ExpectGradientsPass(const Node& node, double tolerance = 1e-6) {
  CheckOptions options;
  options.tolerance = tolerance;
  const CheckReport report = CheckGradients(node, options);
  EXPECT_TRUE(report.passed) << node.name() << "\n" << report.ToString();
  EXPECT_FALSE(report.entries.empty());
}

// ---- pseudo_huber_mean -------------------------------------------------------------------------------
TEST(PseudoHuberMean, SolvesToMachinePrecisionAndMatchesClosedFormGradient) {
  const double alpha = 0.7;
  auto node = MakeNode("pseudo_huber_mean", {{"alpha", "0.7"}});
  TensorMap in{{"x", Random({3, 9}, 1, 2.0)}, {"w", Tensor({3, 9}, 1.0)}};
  for (int64_t k = 0; k < in["w"].size(); ++k) in["w"][k] = 0.5 + 0.1 * (k % 7);
  const ForwardResult fwd = Forward(*node, in);
  Tensor v({3}, {1.0, -2.0, 0.5});
  std::vector<ProblemStatus> status = fwd.status;
  const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", v}}, &status);
  for (int b = 0; b < 3; ++b) {
    const double y = fwd.outputs.at("y")[b];
    double grad = 0, hess = 0;
    std::vector<double> d1(9), d2(9);
    for (int i = 0; i < 9; ++i) {
      const double z = (y - in["x"].problem(b)[i]) / alpha, w = in["w"].problem(b)[i];
      const double s = std::sqrt(1 + z * z);
      d1[i] = alpha * z / s;    // φ'
      d2[i] = 1 / (s * s * s);  // φ''
      grad += w * d1[i];
      hess += w * d2[i];
    }
    EXPECT_LE(std::abs(grad), 1e-13 * (1 + hess)) << "stationarity of the forward solve";
    EXPECT_LE(fwd.status[b].residual, 1e-12);
    for (int i = 0; i < 9; ++i) {
      const double w = in["w"].problem(b)[i];
      EXPECT_NEAR(g.at("x").problem(b)[i], v[b] * w * d2[i] / hess, 1e-12);  // dy/dx_i = w_i φ''_i / Σ w φ''
      EXPECT_NEAR(g.at("w").problem(b)[i], -v[b] * d1[i] / hess, 1e-12);     // dy/dw_i = −φ'_i / Σ w φ''
    }
  }
}

TEST(PseudoHuberMean, GradientCheckRandomAndNearSingular) {
  auto node = MakeNode("pseudo_huber_mean", {{"alpha", "1"}});
  ExpectGradientsPass(*node);
  // Near-singular H: a tiny α and far-spread points make Σ φ'' small (~1e-6 relative).
  auto sharp = MakeNode("pseudo_huber_mean", {{"alpha", "0.01"}});
  CheckCase spread{"spread", {{"x", Tensor({1, 4}, {-3.0, -1.0, 2.0, 5.0})}}};
  CheckReport report;
  CheckGradients(*sharp, spread, CheckOptions{}, &report);
  EXPECT_TRUE(report.passed) << report.ToString();
}

TEST(PseudoHuberMean, RejectsBadInput) {
  auto node = MakeNode("pseudo_huber_mean");
  EXPECT_THROW(MakeNode("pseudo_huber_mean", {{"alpha", "0"}}), InvalidInput);
  EXPECT_THROW(MakeNode("pseudo_huber_mean", {{"alpha", "-1"}}), InvalidInput);
  EXPECT_THROW(MakeNode("pseudo_huber_mean", {{"beta", "1"}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({2, 0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({0, 3})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 2}, {1.0, NAN})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 2}, {1.0, INFINITY})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({2, 3})}, {"w", Tensor({2, 4}, 1.0)}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({2, 3})}, {"w", Tensor({2, 3}, -1.0)}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({2, 3})}, {"w", Tensor({2, 3}, 0.0)}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({2, 3, 1})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"z", Tensor({2, 3})}}), InvalidInput);
  try {
    Forward(*node, {{"x", Tensor({2, 3})}, {"w", Tensor({2, 4}, 1.0)}});
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
  }
}

TEST(Batch, ResultsIdenticalWhateverTheThreadCount) {
  auto node = MakeNode("pseudo_huber_mean");
  TensorMap in{{"x", Random({16, 12}, 5, 3.0)}};
  RunOptions one, two;
  one.threads = 1;
  two.threads = 2;
  const ForwardResult a = Forward(*node, in, one), b = Forward(*node, in, two);
  EXPECT_EQ(a.outputs.at("y").values(), b.outputs.at("y").values());
  Tensor v = Random({16}, 6);
  std::vector<ProblemStatus> sa = a.status, sb = b.status;
  EXPECT_EQ(Backward(*node, in, a.outputs, {{"y", v}}, &sa, one).at("x").values(),
            Backward(*node, in, b.outputs, {{"y", v}}, &sb, two).at("x").values());
}

TEST(Batch, BackwardRejectsBadRequestsNamingThem) {
  auto node = MakeNode("pseudo_huber_mean");
  const TensorMap in{{"x", Random({3, 4}, 7)}};
  const ForwardResult fwd = Forward(*node, in);
  std::vector<ProblemStatus> st = fwd.status;
  auto message = [&](const TensorMap& inputs, const TensorMap& outputs, const TensorMap& grads) -> std::string {
    try {
      Backward(*node, inputs, outputs, grads, &st);
    } catch (const InvalidInput& e) {
      return e.what();
    }
    return "(accepted)";
  };
  Tensor v = Random({3}, 8);
  EXPECT_NE(message(in, fwd.outputs, {{"y", Random({4}, 8)}}).find("grad_outputs 'y' must have the shape"),
            std::string::npos);
  EXPECT_NE(message(in, {{"y", Random({2}, 9)}}, {{"y", v}}).find("output 'y' given to backward must have shape"),
            std::string::npos);
  EXPECT_NE(message(in, {}, {{"y", v}}).find("backward needs output 'y'"), std::string::npos);
  v[1] = NAN;
  const std::string nan = message(in, fwd.outputs, {{"y", v}});
  EXPECT_NE(nan.find("batch element 1: grad_outputs 'y' contains a non-finite value"), std::string::npos) << nan;
  TensorMap bad = in;
  bad["x"][6] = INFINITY;  // problem 1, index 2
  const std::string inf = message(bad, fwd.outputs, {{"y", Random({3}, 8)}});
  EXPECT_NE(inf.find("batch element 1: input 'x' contains a non-finite value (inf) at index 2"), std::string::npos)
      << inf;
}

// ---- sphere_projection (equality) -----------------------------------------------------------------
class SphereProjectionTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SphereProjectionTest, ClosedFormForwardAndJacobian) {
  const double r = 1.5;
  auto node = MakeNode("sphere_projection", {{"radius", "1.5"}, {"manifold", GetParam()}});
  TensorMap in{{"x", Random({4, 5}, 3)}};
  const ForwardResult fwd = Forward(*node, in);
  for (int b = 0; b < 4; ++b) {
    const double* x = in["x"].problem(b);
    double nx = 0;
    for (int k = 0; k < 5; ++k) nx += x[k] * x[k];
    nx = std::sqrt(nx);
    for (int k = 0; k < 5; ++k) EXPECT_NEAR(fwd.outputs.at("y").problem(b)[k], r * x[k] / nx, 1e-13);
    // vᵀDy with Dy = (r/‖x‖)(I − ŷŷᵀ), ŷ = x/‖x‖.
    const Tensor v = Random({4, 5}, 40 + b);
    std::vector<ProblemStatus> st = fwd.status;
    const Tensor g = Backward(*node, in, fwd.outputs, {{"y", v}}, &st).at("x");
    double vy = 0;
    for (int k = 0; k < 5; ++k) vy += v.problem(b)[k] * x[k] / nx;
    for (int k = 0; k < 5; ++k) {
      EXPECT_NEAR(g.problem(b)[k], r / nx * (v.problem(b)[k] - vy * x[k] / nx), 1e-11);
    }
  }
  ExpectGradientsPass(*node);
}

INSTANTIATE_TEST_SUITE_P(ManifoldAndAugmentedLagrangian, SphereProjectionTest, ::testing::Values("true", "false"));

// x = 0: every point of the sphere is a closest point. The engine returns one (on the sphere) and says so.
TEST(SphereProjection, OriginIsFlaggedNonUnique) {
  for (const char* manifold : {"true", "false"}) {
    auto node = MakeNode("sphere_projection", {{"radius", "2"}, {"manifold", manifold}});
    const TensorMap in{{"x", Tensor({1, 3})}};
    ForwardResult fwd = Forward(*node, in);
    const Tensor& y = fwd.outputs.at("y");
    EXPECT_NEAR(std::sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]), 2.0, 1e-14);
    EXPECT_EQ(fwd.status[0].flags, kNonUnique) << fwd.status[0].note;
    const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", Tensor({1, 3}, {1.0, 2.0, 3.0})}}, &fwd.status);
    for (double e : g.at("x").values()) EXPECT_TRUE(std::isfinite(e));
    EXPECT_TRUE(fwd.status[0].flags & kNonRegular) << fwd.status[0].note;
  }
}

// ---- ball_projection (nonlinear inequality) -------------------------------------------------------
TEST(BallProjection, InsideIsIdentityOutsideIsScaled) {
  auto node = MakeNode("ball_projection", {{"radius", "1"}});
  TensorMap in{{"x", Tensor({2, 3}, {0.1, -0.2, 0.3, 2.0, 1.0, -1.0})}};
  const ForwardResult fwd = Forward(*node, in);
  const Tensor& y = fwd.outputs.at("y");
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(y.problem(0)[k], in["x"].problem(0)[k], 1e-14);
  const double n = std::sqrt(6.0);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(y.problem(1)[k], in["x"].problem(1)[k] / n, 1e-13);
  ExpectGradientsPass(*node);
}

TEST(BallProjection, PointOnTheBoundaryIsDegenerate) {
  auto node = MakeNode("ball_projection", {{"radius", "1"}});
  TensorMap in{{"x", Tensor({1, 2}, {0.6, 0.8})}};
  ForwardResult fwd = Forward(*node, in);
  const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", Tensor({1, 2}, {1.0, 0.0})}}, &fwd.status);
  EXPECT_TRUE(fwd.status[0].flags & kDegenerate) << fwd.status[0].note;
  for (double v : g.at("x").values()) EXPECT_TRUE(std::isfinite(v));
}

// ---- box_projection (linear inequalities) ---------------------------------------------------------
TEST(BoxProjection, ClampsAndDifferentiatesAsTheIndicator) {
  auto node = MakeNode("box_projection", {{"lo", "-0.5"}, {"hi", "1"}});
  TensorMap in{{"x", Tensor({1, 4}, {-2.0, -0.1, 0.7, 3.0})}};
  ForwardResult fwd = Forward(*node, in);
  const std::vector<double> want{-0.5, -0.1, 0.7, 1.0};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(fwd.outputs.at("y")[k], want[k], 1e-14);
  const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", Tensor({1, 4}, {1.0, 2.0, 3.0, 4.0})}}, &fwd.status);
  const std::vector<double> grad{0.0, 2.0, 3.0, 0.0};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(g.at("x")[k], grad[k], 1e-12);
  ExpectGradientsPass(*node);
  EXPECT_THROW(MakeNode("box_projection", {{"lo", "1"}, {"hi", "1"}}), InvalidInput);
}

// ---- sum_fit (singular Hessian) -------------------------------------------------------------------
TEST(SumFit, MinimumNormSolutionAndGradientWithStatus) {
  auto node = MakeNode("sum_fit");
  TensorMap in{{"x", Tensor({2}, {3.0, -1.0})}};
  ForwardResult fwd = Forward(*node, in);
  EXPECT_NEAR(fwd.outputs.at("y").problem(0)[0], 1.5, 1e-12);
  EXPECT_NEAR(fwd.outputs.at("y").problem(0)[1], 1.5, 1e-12);
  const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", Tensor({2, 2}, {1.0, 3.0, -2.0, 0.5})}}, &fwd.status);
  // d(x/2, x/2)/dx = (½, ½): vᵀDy = (v₀ + v₁)/2.
  EXPECT_NEAR(g.at("x")[0], 2.0, 1e-12);
  EXPECT_NEAR(g.at("x")[1], -0.75, 1e-12);
  EXPECT_TRUE(fwd.status[0].flags & kNonRegular) << fwd.status[0].note;
  ExpectGradientsPass(*node);
}

TEST(Registry, UnknownNodeNamesTheKnownOnes) {
  try {
    MakeNode("no_such_node");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("pseudo_huber_mean"), std::string::npos);
  }
}

}  // namespace
}  // namespace ddn

// ---- a test-only node with contradictory constraints --------------------------------------------------
#include "ddn/declarative.h"
#include "ddn/random.h"

namespace ddn {
namespace {

class Contradiction : public DeclarativeNode<Contradiction> {
 public:
  static NodeSpec Spec() {
    return {"test_contradiction", "y ≤ x − 1 and y ≥ x + 1: infeasible", {}, {{"x", {}, "x"}}, {{"y", {}, "y"}}};
  }
  explicit Contradiction(const Params&) {}
  template <typename T>
  T Objective(const Args<T>&, const T* y) const {
    return y[0] * y[0];
  }
  int NumInequalities(const ProblemData&) const { return 2; }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    g[0] = y[0] - in[0][0] + Constant<T>(1.0);
    g[1] = in[0][0] + Constant<T>(1.0) - y[0];
  }
};

TEST(GenericSolve, InfeasibleProblemIsANamedNumericalFailure) {
  Contradiction node{Params("test_contradiction", {}, {})};
  try {
    Forward(node, {{"x", Tensor({2}, {0.0, 3.0})}});
    FAIL() << "expected NumericalFailure";
  } catch (const NumericalFailure& e) {
    EXPECT_NE(std::string(e.what()).find("infeasible"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("batch element 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddn
