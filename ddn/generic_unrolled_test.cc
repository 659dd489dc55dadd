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

// Constrained test nodes: y = argmin f(x, y) subject to one of
//   plane    a·y = b                 a linear equality with inputs in it
//   sphere   ‖y‖² = r²               a nonlinear equality
//   ball     ‖y‖² ≤ r²               a nonlinear inequality, active or not
//   box      −r ≤ y_k ≤ e^b          linear inequalities, some active, some not
//   twin     a·y = b, 2(a·y − b) = 0 dependent constraint gradients (the modes refuse)
// with f = ½‖y − x‖² (a projection) or, smooth, ½‖y − x‖² + Σ_k √(1 + (y_k − x_k)²) + 0.2 e^{(y₀ − x₀)/2} (rich
// third derivatives). The start is x, x + 0.5 (shifted) or −x + 0.5 e₀ (opposite: on the sphere a point where the
// Lagrangian's Hessian is negative definite, which the active-set replay gives up on).
class TestConstrained : public DeclarativeNode<TestConstrained> {
 public:
  static NodeSpec Spec() {
    return {"unrolled_test_constrained",
            "test node",
            {{"kind", ParamType::kChoice, "plane", "constraint", {"plane", "sphere", "ball", "box", "twin"}},
             {"smooth", ParamType::kBool, "false", "add the non-quadratic terms"},
             {"start", ParamType::kChoice, "x", "initial guess", {"x", "shifted", "opposite"}}},
            {{"x", {"D"}, "point"},
             {"a", {"D"}, "plane normal"},
             {"b", {}, "offset / log upper bound"},
             {"r", {}, "radius / lower bound", true, false, true}},
            {{"y", {"D"}, "solution"}}};
  }
  explicit TestConstrained(const Params& p)
      : kind_(p.GetString("kind")), smooth_(p.GetBool("smooth")), start_(p.GetString("start")) {}
  template <typename T>
  T Objective(const Args<T>& in, const T* y) const {
    using std::exp;
    using std::sqrt;
    T f = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) {
      const T r = y[k] - in[0][k];
      f += Constant<T>(0.5) * r * r;
      if (smooth_) f += sqrt(Constant<T>(1.0) + r * r);
    }
    if (smooth_) f += Constant<T>(0.2) * exp(Constant<T>(0.5) * (y[0] - in[0][0]));
    return f;
  }
  int NumEqualities(const ProblemData&) const { return kind_ == "twin" ? 2 : (kind_ == "plane" || kind_ == "sphere"); }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    T s = Constant<T>(0.0);
    if (kind_ == "sphere") {
      for (int64_t k = 0; k < in.size(0); ++k) s += y[k] * y[k];
      h[0] = s - in[3][0] * in[3][0];
    } else if (kind_ == "plane" || kind_ == "twin") {
      for (int64_t k = 0; k < in.size(0); ++k) s += in[1][k] * y[k];
      h[0] = s - in[2][0];
      if (kind_ == "twin") h[1] = Constant<T>(2.0) * h[0];
    }
  }
  int NumInequalities(const ProblemData& p) const {
    return kind_ == "ball" ? 1 : kind_ == "box" ? static_cast<int>(2 * p.Dim("D")) : 0;
  }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    using std::exp;
    const int64_t d = in.size(0);
    if (kind_ == "ball") {
      T s = Constant<T>(0.0);
      for (int64_t k = 0; k < d; ++k) s += y[k] * y[k];
      g[0] = s - in[3][0] * in[3][0];
    } else if (kind_ == "box") {
      const T hi = exp(in[2][0]);
      for (int64_t k = 0; k < d; ++k) {
        g[k] = y[k] - hi;
        g[d + k] = -in[3][0] - y[k];
      }
    }
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    for (int64_t k = 0; k < p.InputSize(0); ++k) {
      const double x = p.inputs[0][k];
      y[k] = start_ == "x" ? x : start_ == "shifted" ? x + 0.5 : -x + (k == 0 ? 0.5 : 0.0);
    }
  }

 private:
  std::string kind_;
  bool smooth_;
  std::string start_;
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

// One problem as the engine's oracle sees it: the inputs are owned here (perturbed in place by the
// finite-difference tests), the forward solved and the replay recorded.
template <class NodeT>
struct OracleProblem {
  const NodeT& node;
  std::vector<std::vector<double>> in;  // empty: an omitted optional input
  Dims dims;
  int64_t m;
  std::vector<double> y;
  ProblemData p;
  std::unique_ptr<internal::NodeOracle<NodeT>> oracle;
  GenericNewtonTape tape;

  OracleProblem(const NodeT& n, std::vector<std::vector<double>> inputs, std::vector<Shape> shapes, Dims d, int64_t m_)
      : node(n), in(std::move(inputs)), dims(std::move(d)), m(m_), y(m_, 0.0) {
    p.dims = &dims;
    for (auto& v : in) p.inputs.push_back(v.empty() ? nullptr : v.data());
    p.input_shapes = std::move(shapes);
    p.outputs = {y.data()};
    p.output_shapes = {Shape{m}};
    oracle = std::make_unique<internal::NodeOracle<NodeT>>(node, p);
    ProblemStatus status;
    node.GenericSolve(p, &status);
    std::vector<double> y0(m);
    node.InitialGuess(p, y0.data());
    RecordGenericNewton(*oracle, node.generic_options(), y0.data(), y.data(), &tape);
  }
  // The differentiable parameters in the oracle's order (inputs in order, each flattened).
  std::vector<double*> Parameters() {
    std::vector<double*> params;
    for (auto& v : in)
      for (double& e : v) params.push_back(&e);
    return params;
  }
};

OracleProblem<TestMean>* MeanProblem(const TestMean& node, uint64_t seed, int64_t n, int64_t d, bool weighted) {
  std::vector<double> w;
  if (weighted) {
    std::mt19937_64 rng(seed + 100);
    std::uniform_real_distribution<double> uw(0.3, 2.0);
    w.resize(n);
    for (double& v : w) v = uw(rng);
  }
  return new OracleProblem<TestMean>(node, {Points(seed, n, d), w}, {Shape{n, d}, Shape{n}}, {{"N", n}, {"D", d}}, d);
}

// Relative error of the VJP through steps first … end−1 of the tape cut to `end` against central differences of
// that map (u_first fixed) in every parameter, for a random v. A fresh oracle per evaluation: the oracle caches its
// constraint recording by y, not by x.
template <class NodeT>
double MapError(OracleProblem<NodeT>* P, int first, int end, uint64_t seed) {
  const int64_t m = P->m;
  GenericNewtonTape tape = P->tape;
  tape.alpha.resize(end);
  tape.tau.resize(end);
  tape.working.resize(end);
  tape.keep.resize(end);
  tape.iterates.resize((end + 1) * m);
  tape.multipliers.resize((end + 1) * tape.nc);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(m);
  for (double& e : v) e = normal(rng);
  const int n = P->oracle->num_parameters();
  std::vector<double> dx(n, 0.0);
  GenericUnrolledVjp(*P->oracle, tape, end - first, v.data(), dx.data());
  auto loss = [&] {
    const internal::NodeOracle<NodeT> fresh(P->node, P->p);
    std::vector<double> y(m);
    ReplayGenericNewtonSteps(fresh, tape, first, y.data());
    double l = 0;
    for (int64_t k = 0; k < m; ++k) l += v[k] * y[k];
    return l;
  };
  const std::vector<double*> params = P->Parameters();
  EXPECT_EQ(static_cast<int>(params.size()), n);
  double err = 0, scale = 0;
  for (int j = 0; j < n; ++j) {
    // Central differences at h and h/2, Richardson-extrapolated (error O(h⁴)): the inertia-corrected steps of a
    // long replay make the map curved enough that plain central differences at 1e-5 are off by ~1e-4.
    const double h = 1e-5, keep = *params[j];
    double d[2];
    for (int level = 0; level < 2; ++level) {
      const double hl = level == 0 ? h : 0.5 * h;
      *params[j] = keep + hl;
      const double lp = loss();
      *params[j] = keep - hl;
      const double lm = loss();
      *params[j] = keep;
      d[level] = (lp - lm) / (2 * hl);
    }
    const double fd = (4 * d[1] - d[0]) / 3;
    err = std::max(err, std::abs(fd - dx[j]));
    scale = std::max(scale, std::abs(fd));
  }
  return err / scale;
}

TEST(GenericUnrolled, ReplayEndsAtTheAnswerWithDampedAndShiftedSteps) {
  bool shifted = false, damped = false;
  for (bool cauchy : {false, true}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      const TestMean node(MeanParams(cauchy));
      std::unique_ptr<OracleProblem<TestMean>> holder(MeanProblem(node, seed, 8, 3, seed % 2 == 0));
      OracleProblem<TestMean>& P = *holder;
      EXPECT_TRUE(P.tape.converged);
      EXPECT_EQ(P.tape.replay, GenericNewtonTape::kNewton);
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
        const TestMean node(MeanParams(cauchy));
        std::unique_ptr<OracleProblem<TestMean>> holder(MeanProblem(node, seed, 6, 3, weighted));
        OracleProblem<TestMean>& P = *holder;
        const int T = P.tape.steps();
        for (int end = 1; end <= T; ++end) {
          // From the start, and the window of the last two steps of the cut tape.
          EXPECT_LT(MapError(&P, 0, end, seed + end), 1e-6)
              << "cauchy=" << cauchy << " weighted=" << weighted << " seed=" << seed << " steps 0.." << end;
          if (end >= 2) {
            EXPECT_LT(MapError(&P, end - 2, end, seed + 3 * end), 1e-6)
                << "cauchy=" << cauchy << " weighted=" << weighted << " seed=" << seed << " steps " << end - 2 << ".."
                << end;
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

Params ConstrainedParams(const std::string& kind, bool smooth, const std::string& start) {
  return Params("unrolled_test_constrained", TestConstrained::Spec().params,
                {{"kind", kind}, {"smooth", smooth ? "true" : "false"}, {"start", start}});
}

// One problem of TestConstrained: x (D), a, b, r.
OracleProblem<TestConstrained>* ConstrainedProblem(const TestConstrained& node, std::vector<double> x,
                                                   std::vector<double> a, double b, double r) {
  const int64_t d = static_cast<int64_t>(x.size());
  return new OracleProblem<TestConstrained>(node, {std::move(x), std::move(a), {b}, {r}},
                                            {Shape{d}, Shape{d}, Shape{}, Shape{}}, {{"D", d}}, d);
}

struct ConstrainedSample {
  const char* name;
  const char* kind;
  bool smooth;
  const char* start;
  std::vector<double> x, a;
  double b, r;
  GenericNewtonTape::Replay replay;  // the replay expected to end at the answer
  int active;                        // inequalities active at the answer (−1: not checked)
};

// Samples: every kind, both objectives, the three starts, inequalities active and inactive, points on the
// boundary (a zero multiplier: weakly active).
std::vector<ConstrainedSample> ConstrainedSamples() {
  using R = GenericNewtonTape;
  const double on = 1.3 / std::sqrt(3.0);  // ‖(on, −on, on)‖ = 1.3
  return {
      {"plane", "plane", false, "x", {0.3, -0.7, 1.1}, {0.5, 1.0, -2.0}, 0.8, 1.0, R::kActiveSet, -1},
      {"plane_smooth", "plane", true, "shifted", {0.3, -0.7, 1.1}, {0.5, 1.0, -2.0}, 0.8, 1.0, R::kActiveSet, -1},
      {"sphere", "sphere", false, "shifted", {0.9, -1.4, 0.6}, {}, 0.0, 1.2, R::kActiveSet, -1},
      {"sphere_smooth", "sphere", true, "shifted", {0.2, 0.5, -0.3}, {}, 0.0, 1.5, R::kFixedSet, -1},
      {"sphere_opposite", "sphere", false, "opposite", {0.3, -0.2, 0.4}, {}, 0.0, 1.1, R::kFixedSet, -1},
      {"sphere_opposite_smooth", "sphere", true, "opposite", {0.3, -0.2, 0.4}, {}, 0.0, 1.1, R::kFixedSet, -1},
      {"ball_outside", "ball", false, "x", {1.5, -0.8, 0.9}, {}, 0.0, 1.1, R::kActiveSet, 1},
      {"ball_outside_smooth", "ball", true, "shifted", {1.5, -0.8, 0.9}, {}, 0.0, 1.1, R::kActiveSet, 1},
      {"ball_inside_smooth", "ball", true, "shifted", {0.2, -0.1, 0.3}, {}, 0.0, 1.4, R::kActiveSet, 0},
      {"ball_boundary", "ball", false, "x", {on, -on, on}, {}, 0.0, 1.3, R::kFixedSet, 1},
      {"box", "box", false, "x", {1.9, -0.3, -1.7, 0.2}, {}, std::log(1.2), 0.8, R::kActiveSet, 2},
      {"box_smooth", "box", true, "shifted", {1.9, -0.3, -1.7, 0.2}, {}, std::log(1.2), 0.8, R::kActiveSet, -1},
      {"box_boundary", "box", false, "x", {1.2, -0.3, -0.8, 0.2}, {}, std::log(1.2), 0.8, R::kActiveSet, 2},
      // Bounds violated at the start (x + 0.5) but not at the answer: their multipliers turn negative, are cleared
      // and the constraints leave the working set.
      {"box_drop", "box", true, "shifted", {1.0, -0.3, -1.1, 0.2}, {}, std::log(1.2), 0.8, R::kActiveSet, -1},
  };
}

TEST(GenericUnrolledConstrained, ReplayEndsAtTheAnswer) {
  bool shifted = false, damped = false, cleared = false;
  for (const ConstrainedSample& c : ConstrainedSamples()) {
    const TestConstrained node(ConstrainedParams(c.kind, c.smooth, c.start));
    std::unique_ptr<OracleProblem<TestConstrained>> P(ConstrainedProblem(node, c.x, c.a.empty() ? c.x : c.a, c.b, c.r));
    const GenericNewtonTape& tape = P->tape;
    EXPECT_TRUE(tape.converged) << c.name;
    EXPECT_EQ(tape.replay, c.replay) << c.name << ": " << tape.ReplayName();
    const int T = tape.steps();
    EXPECT_GE(T, 1) << c.name;
    for (int64_t k = 0; k < P->m; ++k) EXPECT_NEAR(tape.iterates[T * P->m + k], P->y[k], 1e-10) << c.name;
    if (c.active >= 0) {
      int inequalities = 0;
      for (int i : tape.working[T - 1]) inequalities += i >= P->oracle->num_equalities();
      EXPECT_EQ(inequalities, c.active) << c.name;
    }
    for (int t = 0; t < T; ++t) {
      shifted |= tape.tau[t] > 0;
      damped |= tape.alpha[t] < 1;
      for (char k : tape.keep[t]) cleared |= !k;
    }
  }
  EXPECT_TRUE(shifted) << "no inertia-corrected step exercised";
  EXPECT_TRUE(damped) << "no damped step exercised";
  EXPECT_TRUE(cleared) << "no cleared multiplier exercised";
}

TEST(GenericUnrolledConstrained, AdjointMatchesFiniteDifferencesOfTheStepMap) {
  int checked = 0;
  for (const ConstrainedSample& c : ConstrainedSamples()) {
    const TestConstrained node(ConstrainedParams(c.kind, c.smooth, c.start));
    std::unique_ptr<OracleProblem<TestConstrained>> P(ConstrainedProblem(node, c.x, c.a.empty() ? c.x : c.a, c.b, c.r));
    const int T = P->tape.steps();
    for (int end = 1; end <= T; ++end) {
      EXPECT_LT(MapError(P.get(), 0, end, 7 + end), 1e-6) << c.name << " steps 0.." << end;
      if (end >= 2) {
        EXPECT_LT(MapError(P.get(), end - 2, end, 11 + end), 1e-6) << c.name << " steps " << end - 2 << ".." << end;
      }
      checked += 1 + (end >= 2);
    }
  }
  EXPECT_GT(checked, 40);
}

// Node level: unrolled and truncated:2 agree with implicit on converged solves (every sample, as a batch).
TEST(GenericUnrolledConstrained, UnrolledAgreesWithImplicitOnConvergedSolves) {
  for (const ConstrainedSample& c : ConstrainedSamples()) {
    const TestConstrained node(ConstrainedParams(c.kind, c.smooth, c.start));
    const int64_t d = static_cast<int64_t>(c.x.size());
    Tensor x(Shape{1, d}, c.x), a(Shape{1, d}, c.a.empty() ? c.x : c.a), b(Shape{1}, {c.b}), r(Shape{1}, {c.r}),
        v(Shape{1, d});
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal;
    for (double& e : v.values()) e = normal(rng);
    const TensorMap in{{"x", x}, {"a", a}, {"b", b}, {"r", r}};
    const ForwardResult fwd = Forward(node, in);
    std::vector<ProblemStatus> st;
    RunOptions implicit_run, unrolled_run, truncated_run;
    unrolled_run.backward = GradientMode::Parse("unrolled");
    truncated_run.backward = GradientMode::Parse("truncated:2");
    const TensorMap g0 = Backward(node, in, fwd.outputs, {{"y", v}}, &st, implicit_run);
    const TensorMap g1 = Backward(node, in, fwd.outputs, {{"y", v}}, &st, unrolled_run);
    const TensorMap g2 = Backward(node, in, fwd.outputs, {{"y", v}}, &st, truncated_run);
    double scale = 0, e1 = 0, e2 = 0;
    for (const char* name : {"x", "a", "b", "r"}) {
      const auto& g = g0.at(name).values();
      for (size_t j = 0; j < g.size(); ++j) {
        scale = std::max(scale, std::abs(g[j]));
        e1 = std::max(e1, std::abs(g1.at(name).values()[j] - g[j]));
        e2 = std::max(e2, std::abs(g2.at(name).values()[j] - g[j]));
      }
    }
    EXPECT_GT(scale, 0) << c.name;
    EXPECT_LT(e1 / scale, 1e-9) << c.name << " unrolled vs implicit";
    EXPECT_LT(e2 / scale, 1e-9) << c.name << " truncated:2 vs implicit";
  }
}

TEST(GenericUnrolledConstrained, GradientCheckPassesInEveryMode) {
  for (const char* kind : {"plane", "sphere", "ball", "box"}) {
    const TestConstrained node(ConstrainedParams(kind, true, "shifted"));
    EXPECT_TRUE(node.HasIterativeForward());
    for (const char* mode : {"unrolled", "truncated:1"}) {
      CheckOptions options;
      options.run.backward = GradientMode::Parse(mode);
      const CheckReport report = CheckGradients(node, options);
      EXPECT_TRUE(report.passed) << kind << " " << mode << "\n" << report.ToString();
    }
  }
}

// Dependent active constraint gradients: the implicit backward gives a minimum-norm gradient; the replay's KKT
// matrix is singular on the working set, and the modes refuse with one line.
TEST(GenericUnrolledConstrained, DependentConstraintsAreRefused) {
  const TestConstrained node(ConstrainedParams("twin", false, "x"));
  Tensor x(Shape{1, 3}, {0.3, -0.7, 1.1}), a(Shape{1, 3}, {0.5, 1.0, -2.0}), b(Shape{1}, {0.8}), r(Shape{1}, {1.0}),
      v(Shape{1, 3}, {1.0, 0.0, 0.0});
  const TensorMap in{{"x", x}, {"a", a}, {"b", b}, {"r", r}};
  const ForwardResult fwd = Forward(node, in);
  std::vector<ProblemStatus> st;
  RunOptions run;
  run.backward = GradientMode::Parse("unrolled");
  try {
    Backward(node, in, fwd.outputs, {{"y", v}}, &st, run);
    ADD_FAILURE() << "dependent constraints accepted";
  } catch (const NumericalFailure& e) {
    EXPECT_NE(std::string(e.what()).find("use implicit"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}
}  // namespace
}  // namespace ddn
