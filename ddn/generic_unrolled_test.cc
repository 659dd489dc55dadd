// The generic engine's unrolled and truncated:K gradient modes (generic_unrolled.h): the reverse mode of the Newton
// replay against central finite differences of the same fixed-branch map (including the first, far-from-converged
// steps, inertia-corrected and damped ones), unrolled against implicit on converged solves, the gradient check in
// both modes, and refusals.
#include "ddn/generic_unrolled.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/declarative.h"
#include "ddn/error.h"

namespace ddn {
namespace {

// y ∈ ℝ^D = argmin Σ_i ρ(y − x_i): a pseudo-Huber vector mean with an asymmetric exponential term (convex; rich
// third derivatives), or (cauchy = true) the non-convex log(1 + ‖r‖²) started at the first point, where the
// Hessian is indefinite (inertia-corrected, damped steps).
class TestMean : public DeclarativeNode<TestMean> {
 public:
  static NodeSpec Spec() {
    return {"unrolled_test_mean",
            "test node",
            {{"cauchy", ParamType::kBool, "false", "log(1 + |r|^2) instead of pseudo-Huber + exp"}},
            {{"x", {"N", "D"}, "points"}, {"w", {"N"}, "weights", true, true}},
            {{"y", {"D"}, "mean"}}};
  }
  explicit TestMean(const Params& p) : cauchy_(p.GetBool("cauchy")) {}
  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    using std::exp;
    using std::log;
    using std::sqrt;
    T s = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) s += (y[k] - in[0][k]) * (y[k] - in[0][k]);
    T phi = cauchy_ ? log(Constant<T>(1.0) + s)
                    : sqrt(Constant<T>(1.0) + s) + Constant<T>(0.2) * exp(Constant<T>(0.5) * (y[0] - in[0][0]));
    return in.has(1) ? in[1][0] * phi : phi;
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    const int64_t d = p.OutputSize(0);
    for (int64_t k = 0; k < d; ++k) y[k] = cauchy_ ? p.inputs[0][k] + 0.7 : 3.0;  // away from the answer
  }

 private:
  bool cauchy_;
};

// A constrained node: the modes are refused.
class TestProjection : public EuclideanProjectionNode<TestProjection> {
 public:
  static NodeSpec Spec() {
    return {"unrolled_test_projection", "test node", {}, {{"x", {"D"}, "point"}}, {{"y", {"D"}, "projection"}}};
  }
  explicit TestProjection(const Params&) {}
  int NumInequalities(const ProblemData&) const { return 1; }
  template <typename T>
  void Inequalities(const Args<T>&, const T* y, T* g) const {
    g[0] = Constant<T>(-1.0);
    for (int k = 0; k < 3; ++k) g[0] += y[k] * y[k];
  }
};

Params MeanParams(bool cauchy) {
  return Params("unrolled_test_mean", TestMean::Spec().params, {{"cauchy", cauchy ? "true" : "false"}});
}

std::vector<double> Points(uint64_t seed, int64_t n, int64_t d) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> x(n * d);
  for (double& v : x) v = normal(rng);
  return x;
}

// One problem of TestMean as the engine's oracle sees it (x, w owned here; perturb them in place).
struct OracleProblem {
  TestMean node;
  int64_t n, d;
  std::vector<double> x, w, y;
  Dims dims;
  ProblemData p;
  std::unique_ptr<internal::NodeOracle<TestMean>> oracle;
  GenericNewtonTape tape;

  OracleProblem(bool cauchy, uint64_t seed, int64_t n_, int64_t d_, bool weighted)
      : node(MeanParams(cauchy)), n(n_), d(d_) {
    x = Points(seed, n, d);
    if (weighted) {
      std::mt19937_64 rng(seed + 100);
      std::uniform_real_distribution<double> uw(0.3, 2.0);
      w.resize(n);
      for (double& v : w) v = uw(rng);
    }
    y.assign(d, 0.0);
    dims = {{"N", n}, {"D", d}};
    p.dims = &dims;
    p.inputs = {x.data(), weighted ? w.data() : nullptr};
    p.input_shapes = {Shape{n, d}, Shape{n}};
    p.outputs = {y.data()};
    p.output_shapes = {Shape{d}};
    oracle = std::make_unique<internal::NodeOracle<TestMean>>(node, p);
    ProblemStatus status;
    node.GenericSolve(p, &status);
    std::vector<double> y0(d);
    node.InitialGuess(p, y0.data());
    RecordGenericNewton(*oracle, node.generic_options(), y0.data(), y.data(), &tape);
  }
};

// Relative error of the VJP through steps first … end−1 of the tape cut to `end` against central differences of
// that map (y_first fixed) in x and w, for a random v.
double MapError(OracleProblem* P, int first, int end, uint64_t seed) {
  GenericNewtonTape tape = P->tape;
  tape.alpha.resize(end);
  tape.tau.resize(end);
  tape.iterates.resize((end + 1) * P->d);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(P->d);
  for (double& e : v) e = normal(rng);
  const int n = P->oracle->num_parameters();
  std::vector<double> dx(n, 0.0);
  GenericUnrolledVjp(*P->oracle, tape, end - first, v.data(), dx.data());
  const std::vector<double> y_first(tape.iterates.begin() + first * P->d, tape.iterates.begin() + (first + 1) * P->d);
  auto loss = [&] {
    std::vector<double> y(P->d);
    ReplayGenericNewtonSteps(*P->oracle, tape, first, y_first.data(), y.data());
    double l = 0;
    for (int64_t k = 0; k < P->d; ++k) l += v[k] * y[k];
    return l;
  };
  // Parameters in the oracle's order: x, then w.
  std::vector<double*> params;
  for (double& e : P->x) params.push_back(&e);
  for (double& e : P->w) params.push_back(&e);
  EXPECT_EQ(static_cast<int>(params.size()), n);
  double err = 0, scale = 0;
  for (int j = 0; j < n; ++j) {
    const double h = 1e-5, keep = *params[j];
    *params[j] = keep + h;
    const double lp = loss();
    *params[j] = keep - h;
    const double lm = loss();
    *params[j] = keep;
    const double fd = (lp - lm) / (2 * h);
    err = std::max(err, std::abs(fd - dx[j]));
    scale = std::max(scale, std::abs(fd));
  }
  return err / scale;
}

TEST(GenericUnrolled, ReplayEndsAtTheAnswerWithDampedAndShiftedSteps) {
  bool shifted = false, damped = false;
  for (bool cauchy : {false, true}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      OracleProblem P(cauchy, seed, 8, 3, seed % 2 == 0);
      EXPECT_TRUE(P.tape.converged);
      EXPECT_GE(P.tape.steps(), 3);
      for (int t = 0; t < P.tape.steps(); ++t) {
        shifted |= P.tape.tau[t] > 0;
        damped |= P.tape.alpha[t] < 1;
      }
      for (int64_t k = 0; k < 3; ++k) EXPECT_NEAR(P.tape.iterates[P.tape.steps() * 3 + k], P.y[k], 1e-10);
    }
  }
  EXPECT_TRUE(shifted) << "no inertia-corrected step exercised";
  EXPECT_TRUE(damped) << "no damped step exercised";
}

TEST(GenericUnrolled, AdjointMatchesFiniteDifferencesOfTheStepMap) {
  int checked = 0;
  for (bool cauchy : {false, true}) {
    for (bool weighted : {false, true}) {
      for (uint64_t seed : {4u, 5u}) {
        OracleProblem P(cauchy, seed, 6, 3, weighted);
        const int T = P.tape.steps();
        for (int end = 1; end <= T; ++end) {
          // From the start, and the window of the last two steps of the cut tape.
          EXPECT_LT(MapError(&P, 0, end, seed + end), 1e-6)
              << "cauchy=" << cauchy << " weighted=" << weighted << " seed=" << seed << " steps 0.." << end;
          if (end >= 2) {
            EXPECT_LT(MapError(&P, end - 2, end, seed + 3 * end), 1e-6)
                << "cauchy=" << cauchy << " weighted=" << weighted << " seed=" << seed << " steps " << end - 2
                << ".." << end;
          }
          checked += 2;
        }
      }
    }
  }
  EXPECT_GT(checked, 40);
}

// Node-level: unrolled and truncated:2 agree with implicit on converged solves; truncated:1 differs less than the
// start's distance would suggest; the gradient check passes in every mode.
TEST(GenericUnrolled, UnrolledAgreesWithImplicitOnConvergedSolves) {
  for (bool cauchy : {false, true}) {
    TestMean node(MeanParams(cauchy));
    const int64_t B = 3, N = 10, D = 3;
    Tensor x(Shape{B, N, D}), w(Shape{B, N}), v(Shape{B, D});
    const std::vector<double> pts = Points(9, B * N, D);
    std::copy(pts.begin(), pts.end(), x.values().begin());
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> uw(0.3, 2.0);
    for (double& e : w.values()) e = uw(rng);
    for (double& e : v.values()) e = uw(rng) - 1.0;
    const TensorMap in{{"x", x}, {"w", w}};
    const ForwardResult fwd = Forward(node, in);
    std::vector<ProblemStatus> st;
    RunOptions implicit_run, unrolled_run, truncated_run;
    unrolled_run.backward = GradientMode::Parse("unrolled");
    truncated_run.backward = GradientMode::Parse("truncated:2");
    const TensorMap g0 = Backward(node, in, fwd.outputs, {{"y", v}}, &st, implicit_run);
    const TensorMap g1 = Backward(node, in, fwd.outputs, {{"y", v}}, &st, unrolled_run);
    const TensorMap g2 = Backward(node, in, fwd.outputs, {{"y", v}}, &st, truncated_run);
    for (const char* name : {"x", "w"}) {
      const auto& a = g0.at(name).values();
      double scale = 0, e1 = 0, e2 = 0;
      for (size_t j = 0; j < a.size(); ++j) {
        scale = std::max(scale, std::abs(a[j]));
        e1 = std::max(e1, std::abs(g1.at(name).values()[j] - a[j]));
        e2 = std::max(e2, std::abs(g2.at(name).values()[j] - a[j]));
      }
      EXPECT_LT(e1 / scale, 1e-9) << "cauchy=" << cauchy << " " << name << " unrolled vs implicit";
      EXPECT_LT(e2 / scale, 1e-9) << "cauchy=" << cauchy << " " << name << " truncated:2 vs implicit";
    }
  }
}

TEST(GenericUnrolled, GradientCheckPassesInEveryMode) {
  TestMean node(MeanParams(false));
  EXPECT_TRUE(node.HasIterativeForward());
  for (const char* mode : {"unrolled", "truncated:1", "truncated:4"}) {
    CheckOptions options;
    options.run.backward = GradientMode::Parse(mode);
    const CheckReport report = CheckGradients(node, options);
    EXPECT_TRUE(report.passed) << mode << "\n" << report.ToString();
  }
}

TEST(GenericUnrolled, ConstrainedNodesAreRefused) {
  TestProjection node(Params{});
  EXPECT_FALSE(node.HasIterativeForward());
  Tensor x(Shape{1, 3}), v(Shape{1, 3});
  const double xs[3] = {2.0, 0.5, -1.0};
  std::copy(xs, xs + 3, x.values().begin());
  v.values()[0] = 1.0;
  const ForwardResult fwd = Forward(node, {{"x", x}});
  std::vector<ProblemStatus> st;
  RunOptions run;
  run.backward = GradientMode::Parse("unrolled");
  EXPECT_THROW(Backward(node, {{"x", x}}, fwd.outputs, {{"y", v}}, &st, run), InvalidInput);
  run.generic = true;
  try {
    Backward(node, {{"x", x}}, fwd.outputs, {{"y", v}}, &st, run);
    ADD_FAILURE() << "constrained generic unrolled accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("has constraints"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace ddn
