// Regression tests for the generic engine's defects found by writing nodes from the README (issue 10's numbered
// list) and by the attack on the CLI (issue 18, the two sphere_projection items). Each test failed on the engine
// before its rewrite; the nodes that reproduce them are defined here, registered only in this test program.
#include <gtest/gtest.h>

#include <cmath>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/declarative.h"
#include "ddn/error.h"
#include "ddn/random.h"
#include "tests/compare.h"

namespace ddn {
namespace {

// ---- nodes written as a user would -----------------------------------------------------------------------------

// y = argmin (w/2) Σ_i ‖y − x_i‖² s.t. c·(Σ_k y_k − b) = 0: a constrained mean with a weight w and a constraint
// scale c as parameters. y = x̄ − (Σ_k x̄_k − b)/D; dy/db = 1/D; dy_k/dx_ij = (δ_kj − 1/D)/N.
class ConstrainedMean : public DeclarativeNode<ConstrainedMean> {
 public:
  static NodeSpec Spec() {
    return {"test_constrained_mean",
            "weighted mean of points on the plane Σ y = b",
            {{"w", ParamType::kFloat, "1", "weight of the objective"},
             {"c", ParamType::kFloat, "1", "scale of the constraint"}},
            {{"x", {"N", "D"}, "points"}, {"b", {}, "offset"}},
            {{"y", {"D"}, "the constrained mean"}}};
  }
  explicit ConstrainedMean(const Params& p) : w_(p.RequirePositive("w")), c_(p.RequirePositive("c")) {}
  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    T s = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) {
      const T r = y[k] - in[0][k];
      s += r * r;
    }
    return Constant<T>(0.5 * w_) * s;
  }
  static constexpr bool kLinearConstraints = true;
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    T s = Constant<T>(0.0);
    for (int64_t k = 0; k < in.Dim("D"); ++k) s += y[k];
    h[0] = Constant<T>(c_) * (s - in[1][0]);
  }

 private:
  double w_, c_;
};
DDN_REGISTER_NODE(ConstrainedMean);

// Projection onto the capped simplex {Σ y = 1, 0 ≤ y ≤ 1}.
class CappedSimplex : public EuclideanProjectionNode<CappedSimplex> {
 public:
  static NodeSpec Spec() {
    return {"test_capped_simplex",
            "projection onto {Σ y = 1, 0 ≤ y ≤ 1}",
            {},
            {{"x", {"D"}, "point"}},
            {{"y", {"D"}, "projection"}}};
  }
  explicit CappedSimplex(const Params&) {}
  static constexpr bool kLinearConstraints = true;
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    T s = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) s += y[k];
    h[0] = s - Constant<T>(1.0);
  }
  int NumInequalities(const ProblemData& p) const { return static_cast<int>(2 * p.InputSize(0)); }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    const int64_t d = in.size(0);
    for (int64_t k = 0; k < d; ++k) {
      g[k] = -y[k];
      g[d + k] = y[k] - Constant<T>(1.0);
    }
  }
};
DDN_REGISTER_NODE(CappedSimplex);

// min ½ yᵀ diag(0.5, 1) y on the unit circle, started at the maximiser (0, 1).
class SphereQuadratic : public DeclarativeNode<SphereQuadratic> {
 public:
  static NodeSpec Spec() {
    return {"test_sphere_quadratic", "½ yᵀDy on the unit circle", {}, {{"x", {}, "unused"}}, {{"y", {"2"}, "y"}}};
  }
  explicit SphereQuadratic(const Params&) {}
  template <typename T>
  T Objective(const Args<T>&, const T* y) const {
    return Constant<T>(0.25) * y[0] * y[0] + Constant<T>(0.5) * y[1] * y[1];
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>&, const T* y, T* h) const {
    h[0] = y[0] * y[0] + y[1] * y[1] - Constant<T>(1.0);
  }
  void InitialGuess(const ProblemData&, double* y) const {
    y[0] = 0;
    y[1] = 1;
  }
};
DDN_REGISTER_NODE(SphereQuadratic);

// Σ_i (y − x_i)⁴: a degenerate minimum (H → 0).
class Quartic : public DeclarativeNode<Quartic> {
 public:
  static NodeSpec Spec() { return {"test_quartic", "Σ (y − x_i)⁴", {}, {{"x", {"N"}, "points"}}, {{"y", {}, "y"}}}; }
  explicit Quartic(const Params&) {}
  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    const T r = y[0] - in[0][0];
    return r * r * r * r;
  }
};
DDN_REGISTER_NODE(Quartic);

// ---- helpers -------------------------------------------------------------------------------------------------------
RunOptions Generic() {
  RunOptions o;
  o.generic = true;
  return o;
}

// ---- 1. kLinearConstraints: a constraint linear in y but bilinear in (a, y) ----------------------------------------
TEST(EngineRegression, LinearConstraintWithInputsHasExactGradients) {
  auto node = MakeNode("plane_projection");
  const Tensor x({1, 3}, {0.5, -1.0, 2.0}), a({1, 3}, {1.0, 2.0, -0.5}), b({1}, {0.7});
  const TensorMap in{{"x", x}, {"a", a}, {"b", b}};
  ForwardResult fwd = Forward(*node, in);
  // Closed form: y = x − a t, t = (a·x − b)/‖a‖².
  const double aa = 1 + 4 + 0.25, t = (0.5 - 2.0 - 1.0 - 0.7) / aa;
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(fwd.outputs.at("y")[k], x[k] - a[k] * t, 1e-15);
  EXPECT_EQ(fwd.status[0].flags, 0u) << fwd.status[0].note;
  // vᵀDy: dy/dx = I − aaᵀ/‖a‖², dy/db = a/‖a‖², dy_i/da_j = −δ_ij t − a_i (x_j − 2 a_j t)/‖a‖².
  const Tensor v({1, 3}, {0.3, -1.1, 0.8});
  const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", v}}, &fwd.status);
  const double va = v[0] * a[0] + v[1] * a[1] + v[2] * a[2];
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(g.at("x")[j], v[j] - va * a[j] / aa, 1e-14);
    EXPECT_NEAR(g.at("a")[j], -v[j] * t - va * (x[j] - 2 * a[j] * t) / aa, 1e-14) << "a's gradient, j = " << j;
  }
  EXPECT_NEAR(g.at("b")[0], va / aa, 1e-14);
  CheckReport report;
  CheckGradients(*node, CheckCase{"plane", in}, CheckOptions{}, &report);
  EXPECT_TRUE(report.passed) << report.ToString();
}

// ---- 2. scale: objective × w, constraint × c, a mean over 1e5 points -----------------------------------------------
TEST(EngineRegression, ObjectiveAndConstraintScaleLeaveAnswerFlagsAndGradient) {
  const int64_t n = 5, d = 3;
  Rng rng(3);
  Tensor x({1, n, d});
  for (auto& e : x.values()) e = rng.Normal();
  const Tensor b({1}, {0.4});
  const Tensor v({1, d}, {1.0, -2.0, 0.5});
  std::vector<double> mean(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) mean[k] += x[i * d + k] / n;
  const double shift = (mean[0] + mean[1] + mean[2] - b[0]) / d;
  const double vmean = (v[0] + v[1] + v[2]) / d;
  for (const char* w : {"1e-8", "1", "3e5", "1e8"}) {
    for (const char* c : {"1e-8", "1e-6", "1", "1e8"}) {
      auto node = MakeNode("test_constrained_mean", {{"w", w}, {"c", c}});
      const TensorMap in{{"x", x}, {"b", b}};
      ForwardResult fwd = Forward(*node, in);
      for (int64_t k = 0; k < d; ++k) EXPECT_NEAR(fwd.outputs.at("y")[k], mean[k] - shift, 1e-14) << w << " " << c;
      EXPECT_EQ(fwd.status[0].flags, 0u) << "w " << w << " c " << c << ": " << fwd.status[0].note;
      const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", v}}, &fwd.status);
      EXPECT_EQ(fwd.status[0].flags, 0u) << "w " << w << " c " << c << ": " << fwd.status[0].note;
      EXPECT_NEAR(g.at("b")[0], vmean, 1e-13) << "w " << w << " c " << c;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < d; ++k) EXPECT_NEAR(g.at("x")[i * d + k], (v[k] - vmean) / n, 1e-13) << w << " " << c;
    }
  }
  // A mean over 1e5 points with one constraint (the objective's scale grows with N).
  const int64_t big = 100000;
  Tensor xb({1, big, d});
  for (auto& e : xb.values()) e = rng.Normal();
  auto node = MakeNode("test_constrained_mean");
  ForwardResult fwd = Forward(*node, {{"x", xb}, {"b", b}});
  EXPECT_EQ(fwd.status[0].flags, 0u) << fwd.status[0].note;
  const TensorMap g = Backward(*node, {{"x", xb}, {"b", b}}, fwd.outputs, {{"y", v}}, &fwd.status);
  EXPECT_NEAR(g.at("b")[0], vmean, 1e-12);
}

TEST(EngineRegression, TinyAndHugeRadiiAreSolvedToRelativeAccuracy) {
  // ball_projection radius 1e-5 with x outside: ‖y‖ = r.
  for (const char* radius : {"1e-5", "1e-8", "1e5"}) {
    auto ball = MakeNode("ball_projection", {{"radius", radius}});
    const double r = std::stod(radius);
    const Tensor x({1, 3}, {r, -2 * r, 0.5 * r});
    ForwardResult fwd = Forward(*ball, {{"x", x}});
    const Tensor& y = fwd.outputs.at("y");
    const double norm = std::sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]);
    EXPECT_NEAR(norm / r, 1.0, 1e-14) << radius;
    EXPECT_EQ(fwd.status[0].flags, 0u) << fwd.status[0].note;
  }
  // project --generic l2_ball / l2_sphere at small radii against the closed forms; l2_ball with x inside.
  for (const char* shape : {"l2_ball", "l2_sphere"}) {
    for (const char* radius : {"1e-3", "1e-5", "1e-8"}) {
      auto node = MakeNode("project", {{"shape", shape}, {"radius", radius}});
      const double r = std::stod(radius);
      const Tensor x({2, 3}, {1.0, -2.0, 0.5, 0.1 * r, -0.2 * r, 0.3 * r});
      const ForwardResult exact = Forward(*node, {{"x", x}});
      const ForwardResult generic = Forward(*node, {{"x", x}}, Generic());
      EXPECT_LE(MaxAbsDiff(exact.outputs.at("y"), generic.outputs.at("y")), 1e-14 * r) << shape << " " << radius;
      for (const auto& s : generic.status) EXPECT_EQ(s.flags, 0u) << shape << " " << radius << ": " << s.note;
    }
  }
}

// ---- 3. the active set: no snapping of clearly interior points; a snap says degenerate ------------------------------
TEST(EngineRegression, CappedSimplexKeepsAnInteriorCoordinateAndItsGradient) {
  auto node = MakeNode("test_capped_simplex");
  const Tensor x({1, 3}, {1000.0, 999.0 + 1e-7, -5.0});
  ForwardResult fwd = Forward(*node, {{"x", x}});
  const Tensor& y = fwd.outputs.at("y");
  // τ = 999 + 5e-8: y = (1 − 5e-8, 5e-8, 0) up to the rounding of x (1e-13 absolute at 1000).
  EXPECT_NEAR(y[1], 5e-8, 1e-12);
  EXPECT_NEAR(y[0], 1 - 5e-8, 1e-12);
  EXPECT_NEAR(y[2], 0.0, 1e-12);
  EXPECT_EQ(fwd.status[0].flags, 0u) << fwd.status[0].note;
  const TensorMap g = Backward(*node, {{"x", x}}, fwd.outputs, {{"y", Tensor({1, 3}, {1.0, 0.0, 0.0})}}, &fwd.status);
  EXPECT_NEAR(g.at("x")[0], 0.5, 1e-12);
  EXPECT_NEAR(g.at("x")[1], -0.5, 1e-12);
  EXPECT_NEAR(g.at("x")[2], 0.0, 1e-12);
  // y₁ at its bound with a zero multiplier: the forward says degenerate.
  ForwardResult at = Forward(*node, {{"x", Tensor({1, 3}, {1000.0, 999.0, -5.0})}});
  EXPECT_NEAR(at.outputs.at("y")[0], 1.0, 1e-12);
  EXPECT_TRUE(at.status[0].flags & kDegenerate) << at.status[0].note;
}

// ---- 4. second-order condition: maxima and saddles are left, never returned as ok --------------------------------
TEST(EngineRegression, QuadraticOnTheSphereReturnsTheMinimum) {
  auto node = MakeNode("test_sphere_quadratic");
  const TensorMap in{{"x", Tensor({1}, {0.0})}};
  ForwardResult fwd = Forward(*node, in);
  const Tensor& y = fwd.outputs.at("y");
  EXPECT_NEAR(std::abs(y[0]), 1.0, 1e-14);
  EXPECT_NEAR(y[1], 0.0, 1e-14);
  EXPECT_NEAR(0.25 * y[0] * y[0] + 0.5 * y[1] * y[1], 0.25, 1e-14);
  EXPECT_EQ(fwd.status[0].flags, kNotCertified) << fwd.status[0].note;
}

TEST(EngineRegression, GenericWelschLeavesTheMaximumBetweenTwoPoints) {
  auto node = MakeNode("robust_pool", {{"penalty", "welsch"}});
  const TensorMap in{{"x", Tensor({1, 2}, {-2.0, 2.1})}};
  const ForwardResult fwd = Forward(*node, in, Generic());
  const double y = fwd.outputs.at("y")[0];
  // The two local minima sit next to the points; the start (the mean) is the maximum between them.
  EXPECT_GT(std::abs(y - 0.05), 1.5) << y;
  auto f = [](double t) { return 2 - std::exp(-0.5 * (t + 2) * (t + 2)) - std::exp(-0.5 * (t - 2.1) * (t - 2.1)); };
  EXPECT_LT(f(y), f(0.05) - 0.5);
  EXPECT_GT(fwd.status[0].iterations, 0);
  EXPECT_TRUE(fwd.status[0].flags & kNotCertified) << fwd.status[0].note;
  EXPECT_FALSE(fwd.status[0].flags & kUnverified) << fwd.status[0].note;
}

// ---- 5. a degenerate minimum: the residual tells y's accuracy ------------------------------------------------------
TEST(EngineRegression, DegenerateMinimumResidualReflectsTheError) {
  auto node = MakeNode("test_quartic");
  for (double x : {1.7, -3e4, 2e-6}) {
    const ForwardResult fwd = Forward(*node, {{"x", Tensor({1, 1}, {x})}});
    const double y = fwd.outputs.at("y")[0];
    const double error = std::abs(y - x) / std::abs(x);
    if (fwd.status[0].ok()) {
      EXPECT_LE(error, std::max(10 * fwd.status[0].residual, 1e-15)) << x;
      EXPECT_LE(error, 1e-12) << x;
    }
  }
}

// ---- 6. flags of singular problems: all-outlier Huber, identical elements, sum_fit ----------------------------------
TEST(EngineRegression, FlatProblemsAreFlaggedAlikeAndHaveZeroGradients) {
  auto node = MakeNode("robust_pool", {{"penalty", "huber"}});
  // Two points 10 apart with α = 1: f is flat between them (every point beyond α). Two identical elements.
  const TensorMap in{{"x", Tensor({2, 2}, {0.0, 10.0, 0.0, 10.0})}};
  ForwardResult fwd = Forward(*node, in, Generic());
  EXPECT_EQ(fwd.outputs.at("y")[0], fwd.outputs.at("y")[1]);
  EXPECT_EQ(fwd.status[0].flags, fwd.status[1].flags);
  EXPECT_TRUE(fwd.status[0].flags & kNonUnique) << fwd.status[0].note;
  const TensorMap g = Backward(*node, in, fwd.outputs, {{"y", Tensor({2}, {1.0, -1.0})}}, &fwd.status, Generic());
  for (double e : g.at("x").values()) EXPECT_EQ(e, 0.0);
  EXPECT_EQ(fwd.status[0].flags, fwd.status[1].flags);
  EXPECT_TRUE(fwd.status[0].flags & kNonRegular) << fwd.status[0].note;

  auto sum_fit = MakeNode("sum_fit");
  const ForwardResult s = Forward(*sum_fit, {{"x", Tensor({2}, {3.0, 3.0})}});
  EXPECT_EQ(s.status[0].flags, kNonUnique) << s.status[0].note;
  EXPECT_EQ(s.status[1].flags, kNonUnique) << s.status[1].note;
}

// ---- 8. ddn check steps follow the problem's scale ------------------------------------------------------------------
TEST(EngineRegression, GradientCheckAtTinyRadiusPasses) {
  for (const char* radius : {"1e-5", "1e5"}) {
    auto node = MakeNode("project", {{"radius", radius}});
    const CheckReport report = CheckGradients(*node);
    EXPECT_TRUE(report.passed) << radius << "\n" << report.ToString();
    CheckOptions generic;
    generic.run.generic = true;
    const CheckReport g = CheckGradients(*node, generic);
    EXPECT_TRUE(g.passed) << radius << " (generic)\n" << g.ToString();
  }
}

// ---- issue 18: sphere_projection in ℝ¹ and of tiny x ----------------------------------------------------------------
TEST(EngineRegression, SphereProjectionInOneDimensionIsTwoPoints) {
  for (const char* manifold : {"true", "false"}) {
    auto node = MakeNode("sphere_projection", {{"radius", "2"}, {"manifold", manifold}});
    ForwardResult fwd = Forward(*node, {{"x", Tensor({3, 1}, {0.5, -3.0, 1e-30})}});
    EXPECT_EQ(fwd.outputs.at("y").ToVector(), (std::vector<double>{2.0, -2.0, 2.0}));
    const TensorMap g = Backward(*node, {{"x", Tensor({3, 1}, {0.5, -3.0, 1e-30})}}, fwd.outputs,
                                 {{"y", Tensor({3, 1}, {1.0, 1.0, 1.0})}}, &fwd.status);
    for (double e : g.at("x").values()) EXPECT_LE(std::abs(e), 1e-15);
  }
}

TEST(EngineRegression, SphereProjectionOfATinyPointKeepsItsDirection) {
  for (double scale : {1e-10, 1e-20, 1e-300}) {
    auto node = MakeNode("sphere_projection");
    const Tensor x({1, 3}, {scale, -2 * scale, 3 * scale});
    const ForwardResult fwd = Forward(*node, {{"x", x}});
    const double n = std::sqrt(14.0);
    const std::vector<double> want{1 / n, -2 / n, 3 / n};
    for (int k = 0; k < 3; ++k) {
      // The answer's accuracy is limited by the problem's conditioning (‖x‖/r); the status says how much.
      EXPECT_NEAR(fwd.outputs.at("y")[k], want[k], std::max(1e-14, 2 * fwd.status[0].residual)) << scale;
    }
    EXPECT_FALSE(fwd.status[0].flags & kNonUnique) << scale << ": " << fwd.status[0].note;
    EXPECT_LE(fwd.status[0].residual, 1e-5) << scale;
  }
}

}  // namespace
}  // namespace ddn
