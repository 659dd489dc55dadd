// Tests of the `least_squares` node: the forward against an independent dense solve, gradients against finite
// differences (random and awkward inputs, every parameter setting), the specialised paths against the generic
// (declarative) ones, singular problems, the factor cache, bad input and the reference library's answers.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "tests/compare.h"
#include "tests/reference/fixtures.h"
#include "tests/reference/plain_differences.h"

namespace ddn {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Tensor Gaussian(Shape shape, Rng* rng, double scale = 1.0) {
  Tensor t(shape);
  for (auto& v : t.values()) v = scale * rng->Normal();
  return t;
}

Tensor Uniform(Shape shape, Rng* rng, double lo, double hi) {
  Tensor t(shape);
  for (auto& v : t.values()) v = rng->Uniform(lo, hi);
  return t;
}

// The minimiser by a QR solve of the stacked system [√W A  √W 1; √β I  0] z = [√W b; 0] (no normal equations).
Eigen::VectorXd DenseSolve(const double* A, const double* b, const double* w, int64_t T, int64_t C, double beta,
                           bool bias) {
  const int64_t n = C + (bias ? 1 : 0);
  Eigen::MatrixXd M = Eigen::MatrixXd::Zero(T + C, n);
  Eigen::VectorXd rhs = Eigen::VectorXd::Zero(T + C);
  for (int64_t t = 0; t < T; ++t) {
    const double s = w ? std::sqrt(w[t]) : 1.0;
    for (int64_t k = 0; k < C; ++k) M(t, k) = s * A[t * C + k];
    if (bias) M(t, C) = s;
    rhs[t] = s * b[t];
  }
  for (int64_t k = 0; k < C; ++k) M(T + k, k) = std::sqrt(beta);
  return M.colPivHouseholderQr().solve(rhs);
}

TEST(LeastSquares, IsRegisteredWithTheDesignedSpec) {
  const NodeSpec& spec = GetNodeSpec("least_squares");
  ASSERT_EQ(spec.inputs.size(), 3u);
  EXPECT_EQ(spec.inputs[0].name, "A");
  EXPECT_EQ(spec.inputs[0].dims, (std::vector<std::string>{"T", "C"}));
  EXPECT_EQ(spec.inputs[1].name, "b");
  EXPECT_EQ(spec.inputs[2].name, "w");
  EXPECT_TRUE(spec.inputs[2].optional);
  EXPECT_TRUE(spec.inputs[2].differentiable);
  ASSERT_EQ(spec.outputs.size(), 2u);
  EXPECT_EQ(spec.outputs[0].name, "x");
  EXPECT_EQ(spec.outputs[1].name, "bias");
  EXPECT_TRUE(spec.outputs[1].dims.empty());
}

TEST(LeastSquares, ForwardMatchesADenseQrSolve) {
  Rng rng(1);
  for (bool bias : {true, false}) {
    for (double beta : {1e-3, 0.0, 2.5}) {
      for (bool weighted : {true, false}) {
        const auto node = MakeNode("least_squares", {{"beta", FormatDouble(beta)}, {"bias", bias ? "true" : "false"}});
        const int64_t B = 3, T = 9, C = 4;
        TensorMap in{{"A", Gaussian({B, T, C}, &rng)}, {"b", Gaussian({B, T}, &rng)}};
        if (weighted) in["w"] = Uniform({B, T}, &rng, 0.1, 2.0);
        const ForwardResult r = Forward(*node, in);
        for (int64_t e = 0; e < B; ++e) {
          const Eigen::VectorXd z = DenseSolve(in["A"].problem(e), in["b"].problem(e),
                                               weighted ? in["w"].problem(e) : nullptr, T, C, beta, bias);
          for (int64_t k = 0; k < C; ++k) EXPECT_NEAR(r.outputs.at("x").problem(e)[k], z[k], 1e-12);
          EXPECT_NEAR(r.outputs.at("bias")[e], bias ? z[C] : 0.0, 1e-12);
          EXPECT_TRUE(r.status[e].ok());
          EXPECT_LT(r.status[e].residual, 1e-14);
        }
      }
    }
  }
}

// PyTorch's gradcheck (one step h = 1e-6, no extrapolation) at the check cases, nearly collinear features and more
// features than observations included: it needs the forward exact to rounding, which the refinement in extended
// precision gives (the plain Cholesky solution is blurred by κ(G)·u ~ 1e-12 there and fails it).
TEST(LeastSquares, ForwardIsSmoothEnoughForPlainCentralDifferences) {
  for (uint64_t seed : {1u, 2u}) {
    const auto node = MakeNode("least_squares", {});
    EXPECT_LE(testing::ExpectPlainDifferencesMatch(*node, seed), 1.0) << "seed " << seed;
  }
}

TEST(LeastSquares, GradientsMatchFiniteDifferences) {
  for (const char* bias : {"true", "false"}) {
    for (const char* beta : {"1e-3", "0", "0.5"}) {
      const auto node = MakeNode("least_squares", {{"beta", beta}, {"bias", bias}});
      const CheckReport report = CheckGradients(*node);
      EXPECT_TRUE(report.passed) << "bias " << bias << " beta " << beta << "\n" << report.ToString();
      for (const auto& e : report.entries) EXPECT_EQ(e.flags, 0u) << e.case_name;
    }
  }
}

// The specialised Cholesky forward and closed-form backward against the generic Ceres forward and implicit
// backward of the declarative form.
TEST(LeastSquares, SpecialisedPathsMatchTheGenericEngine) {
  RunOptions generic;
  generic.generic = true;
  for (const char* bias : {"true", "false"}) {
    const auto node = MakeNode("least_squares", {{"bias", bias}, {"beta", "0.01"}});
    for (const CheckCase& c : node->CheckCases(5)) {
      ForwardResult a = Forward(*node, c.inputs);
      ForwardResult g = Forward(*node, c.inputs, generic);
      EXPECT_LT(MaxAbsDiff(a.outputs["x"], g.outputs["x"]), 1e-9) << c.name;
      EXPECT_LT(MaxAbsDiff(a.outputs["bias"], g.outputs["bias"]), 1e-9) << c.name;
      Rng rng(7);
      const TensorMap v{{"x", Gaussian(a.outputs["x"].shape(), &rng)},
                        {"bias", Gaussian(a.outputs["bias"].shape(), &rng)}};
      const TensorMap da = Backward(*node, c.inputs, a.outputs, v, &a.status);
      const TensorMap dg = Backward(*node, c.inputs, a.outputs, v, &g.status, generic);
      for (const auto& [name, t] : da) {
        EXPECT_LT(MaxAbsDiff(t, dg.at(name)), 1e-8 * std::max(1.0, MaxAbs(t))) << c.name << " " << name;
      }
    }
  }
}

TEST(LeastSquares, WithoutBiasTheBiasIsZeroAndGetsNoGradient) {
  Rng rng(3);
  const auto node = MakeNode("least_squares", {{"bias", "false"}});
  const TensorMap in{{"A", Gaussian({2, 8, 3}, &rng)}, {"b", Gaussian({2, 8}, &rng)}};
  ForwardResult r = Forward(*node, in);
  EXPECT_EQ(r.outputs["bias"][0], 0.0);
  EXPECT_EQ(r.outputs["bias"][1], 0.0);
  // dL/dbias is ignored: the gradient with and without it is the same.
  Tensor vx = Gaussian({2, 3}, &rng);
  const TensorMap g1 = Backward(*node, in, r.outputs, {{"x", vx}}, &r.status);
  const TensorMap g2 = Backward(*node, in, r.outputs, {{"x", vx}, {"bias", Tensor({2}, {5.0, -3.0})}}, &r.status);
  EXPECT_EQ(MaxAbsDiff(g1.at("A"), g2.at("A")), 0.0);
  EXPECT_EQ(MaxAbsDiff(g1.at("b"), g2.at("b")), 0.0);
}

// With all weights 1 the weighted and unweighted problems coincide, and so do their gradients for A and b.
TEST(LeastSquares, UnitWeightsEqualNoWeights) {
  Rng rng(4);
  const auto node = MakeNode("least_squares");
  TensorMap in{{"A", Gaussian({3, 10, 4}, &rng)}, {"b", Gaussian({3, 10}, &rng)}};
  TensorMap weighted = in;
  weighted["w"] = Tensor({3, 10}, 1.0);
  ForwardResult a = Forward(*node, in), b = Forward(*node, weighted);
  EXPECT_LT(MaxAbsDiff(a.outputs["x"], b.outputs["x"]), 1e-13);
  EXPECT_LT(MaxAbsDiff(a.outputs["bias"], b.outputs["bias"]), 1e-13);
  const TensorMap v{{"x", Gaussian({3, 4}, &rng)}, {"bias", Gaussian({3}, &rng)}};
  const TensorMap ga = Backward(*node, in, a.outputs, v, &a.status);
  const TensorMap gb = Backward(*node, weighted, b.outputs, v, &b.status);
  EXPECT_LT(MaxAbsDiff(ga.at("A"), gb.at("A")), 1e-12);
  EXPECT_LT(MaxAbsDiff(ga.at("b"), gb.at("b")), 1e-12);
}

// β = 0 with fewer observations than unknowns: a subspace of minimisers. The node returns the minimum-norm one,
// says non_unique, and its gradient (minimum-norm, non_regular) is finite.
TEST(LeastSquares, SingularProblemsGiveTheMinimumNormSolutionAndFlags) {
  Rng rng(5);
  const auto node = MakeNode("least_squares", {{"beta", "0"}});
  const int64_t T = 3, C = 5;
  const TensorMap in{{"A", Gaussian({1, T, C}, &rng)}, {"b", Gaussian({1, T}, &rng)}};
  ForwardResult r = Forward(*node, in);
  EXPECT_TRUE(r.status[0].flags & kNonUnique) << r.status[0].note;
  // Minimum-norm solution of [A 1] z = b.
  Eigen::MatrixXd M(T, C + 1);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t k = 0; k < C; ++k) M(t, k) = in.at("A")[t * C + k];
    M(t, C) = 1.0;
  }
  const Eigen::VectorXd z =
      M.completeOrthogonalDecomposition().solve(Eigen::Map<const Eigen::VectorXd>(in.at("b").data(), T));
  for (int64_t k = 0; k < C; ++k) EXPECT_NEAR(r.outputs["x"][k], z[k], 1e-10);
  EXPECT_NEAR(r.outputs["bias"][0], z[C], 1e-10);
  const TensorMap g = Backward(*node, in, r.outputs, {{"x", Tensor({1, C}, 1.0)}}, &r.status);
  EXPECT_TRUE(r.status[0].flags & kNonRegular);
  for (const auto& [name, t] : g)
    for (double v : t.values()) EXPECT_TRUE(std::isfinite(v)) << name;

  // All weights zero with a bias: x = 0 (β > 0), the bias undetermined → 0.
  const auto ridge = MakeNode("least_squares");
  ForwardResult z0 = Forward(*ridge, {{"A", in.at("A")}, {"b", in.at("b")}, {"w", Tensor({1, T}, 0.0)}});
  EXPECT_TRUE(z0.status[0].flags & kNonUnique);
  EXPECT_EQ(MaxAbs(z0.outputs["x"]), 0.0);
  EXPECT_EQ(z0.outputs["bias"][0], 0.0);
}

// The backward reuses the forward's Cholesky factor only for the very problem it was computed for: after the
// same batch index has been solved for other inputs, or the inputs were edited, it recomputes.
TEST(LeastSquares, FactorCacheNeverServesAnotherProblem) {
  Rng rng(6);
  const auto node = MakeNode("least_squares");
  const auto fresh = MakeNode("least_squares");
  const TensorMap in1{
      {"A", Gaussian({2, 7, 3}, &rng)}, {"b", Gaussian({2, 7}, &rng)}, {"w", Uniform({2, 7}, &rng, 0.5, 1.5)}};
  const TensorMap in2{
      {"A", Gaussian({2, 7, 3}, &rng)}, {"b", Gaussian({2, 7}, &rng)}, {"w", Uniform({2, 7}, &rng, 0.5, 1.5)}};
  ForwardResult r1 = Forward(*node, in1);
  ForwardResult r2 = Forward(*node, in2);  // overwrites the slots of r1
  const TensorMap v{{"x", Gaussian({2, 3}, &rng)}, {"bias", Gaussian({2}, &rng)}};
  const TensorMap g1 = Backward(*node, in1, r1.outputs, v, &r1.status);
  ForwardResult f1 = Forward(*fresh, in1);
  const TensorMap want = Backward(*fresh, in1, f1.outputs, v, &f1.status);
  for (const auto& [name, t] : g1) EXPECT_LT(MaxAbsDiff(t, want.at(name)), 1e-14) << name;
  // Inputs edited after the forward: the backward is that of the edited inputs (with the given outputs).
  TensorMap edited = in2;
  edited["A"][0] += 0.5;
  const TensorMap g2 = Backward(*node, edited, r2.outputs, v, &r2.status);
  const TensorMap want2 = Backward(*fresh, edited, r2.outputs, v, &r2.status);
  for (const auto& [name, t] : g2) EXPECT_LT(MaxAbsDiff(t, want2.at(name)), 1e-14) << name;
}

TEST(LeastSquares, BadInputIsRefused) {
  const auto node = MakeNode("least_squares");
  const Tensor A({1, 3, 2}, {1, 2, 3, 4, 5, 6});
  EXPECT_THROW(Forward(*node, {{"A", A}, {"b", Tensor({1, 2}, {1, 2})}}), InvalidInput);
  EXPECT_THROW(MakeNode("least_squares", {{"beta", "-1"}}), InvalidInput);
  EXPECT_THROW(MakeNode("least_squares", {{"bias", "maybe"}}), InvalidInput);
  // A weight so negative that the objective is unbounded below.
  try {
    Forward(*node, {{"A", A}, {"b", Tensor({1, 3}, {1, 2, 3})}, {"w", Tensor({1, 3}, {1, -10, 1})}});
    ADD_FAILURE() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("unbounded below"), std::string::npos) << e.what();
  }
  // A slightly negative weight that keeps the objective convex is a valid problem.
  const ForwardResult r =
      Forward(*node, {{"A", A}, {"b", Tensor({1, 3}, {1, 2, 3})}, {"w", Tensor({1, 3}, {1, -1e-3, 1})}});
  EXPECT_TRUE(r.status[0].ok());
}

// The reference library's WeightedLeastSquaresFcn on random inputs (its (B, C, T) layout transposed): it solves
// the normal equations by LU and is accurate to ~1e-13 here; agree to 1e-10.
TEST(LeastSquares, AgreesWithTheReferenceLibrary) {
  const auto cases = testing::LoadCases(DDN_LINALG_CASES, "least_squares");
  ASSERT_FALSE(cases.empty()) << DDN_LINALG_CASES;
  for (const auto& c : cases) {
    const auto node = MakeNode("least_squares", testing::CaseParams(c));
    const TensorMap in = testing::TensorsFromJson(c["inputs"]);
    ForwardResult r = Forward(*node, in);
    const TensorMap want_y = testing::TensorsFromJson(c["want"]["outputs"]);
    for (const auto& [name, t] : want_y) {
      EXPECT_LT(MaxAbsDiff(r.outputs.at(name), t), 1e-10 * std::max(1.0, MaxAbs(t))) << c["label"] << " " << name;
    }
    const TensorMap g = Backward(*node, in, r.outputs, testing::TensorsFromJson(c["grad_outputs"]), &r.status);
    for (const auto& [name, t] : testing::TensorsFromJson(c["want"]["grad_inputs"])) {
      EXPECT_LT(MaxAbsDiff(g.at(name), t), 1e-10 * std::max(1.0, MaxAbs(t))) << c["label"] << " " << name;
    }
  }
}

}  // namespace
}  // namespace ddn
