// Example nodes that exercise each path of the generic engine (ddn/declarative.h):
//
//   pseudo_huber_mean   unconstrained, a sum of terms          y = argmin_y Σ_i w_i φ(y − x_i; α)
//   sphere_projection   equality constrained                   y = argmin ½‖y − x‖²  s.t. ‖y‖² = r²
//   plane_projection    a linear equality with inputs in it    y = argmin ½‖y − x‖²  s.t. a·y = b
//   ball_projection     nonlinear inequality (active/inactive) y = argmin ½‖y − x‖²  s.t. ‖y‖² ≤ r²
//   box_projection      linear inequalities                    y = argmin ½‖y − x‖²  s.t. lo ≤ y ≤ hi
//   sum_fit             singular Hessian (non-regular)         y = argmin ½(y₀ + y₁ − x)²
//
// None has a specialised solver: they are what a user gets from writing the objective alone, and the
// tests (examples_test.cc) hold them against closed forms and finite differences.
#include <cmath>

#include <ceres/sphere_manifold.h>

#include "ddn/declarative.h"
#include "ddn/random.h"

namespace ddn::examples {

// ---- pseudo_huber_mean --------------------------------------------------------------------------
class PseudoHuberMean : public DeclarativeNode<PseudoHuberMean> {
 public:
  static NodeSpec Spec() {
    return {"pseudo_huber_mean",
            "weighted pseudo-Huber mean y = argmin Σ_i w_i α²(√(1 + ((y − x_i)/α)²) − 1) (generic engine)",
            {{"alpha", ParamType::kFloat, "1", "scale α > 0 of the pseudo-Huber penalty"}},
            {{"x", {"N"}, "points"}, {"w", {"N"}, "non-negative weights (default 1)", true, true}},
            {{"y", {}, "the robust mean"}}};
  }
  explicit PseudoHuberMean(const Params& p) : alpha_(p.RequirePositive("alpha")) {}

  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    using std::sqrt;
    const T alpha = Constant<T>(alpha_);
    const T z = (y[0] - in[0][0]) / alpha;
    const T phi = alpha * alpha * (sqrt(Constant<T>(1.0) + z * z) - Constant<T>(1.0));
    return in.has(1) ? in[1][0] * phi : phi;
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    double sum = 0;
    for (int64_t i = 0; i < p.InputSize(0); ++i) sum += p.inputs[0][i];
    y[0] = sum / p.InputSize(0);
  }
  void Validate(const ProblemData& p) const override {
    if (!p.inputs[1]) return;
    double total = 0;
    for (int64_t i = 0; i < p.InputSize(1); ++i) {
      if (p.inputs[1][i] < 0) throw InvalidInput("input 'w' must be >= 0");
      total += p.inputs[1][i];
    }
    if (total <= 0) throw InvalidInput("input 'w' must not be all zero");
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  double alpha_;
};
DDN_REGISTER_NODE(PseudoHuberMean);

// ---- projections: ½‖y − x‖² (EuclideanProjectionNode) plus each node's constraints ------------------
template <class Derived>
using ProjectionBase = EuclideanProjectionNode<Derived>;

class SphereProjection : public ProjectionBase<SphereProjection> {
 public:
  static NodeSpec Spec() {
    return {"sphere_projection",
            "Euclidean projection onto the sphere ‖y‖ = r (equality constraint, generic engine)",
            {{"radius", ParamType::kFloat, "1", "sphere radius r > 0"},
             {"manifold", ParamType::kBool, "true", "solve on ceres::SphereManifold (false: augmented Lagrangian)"}},
            {{"x", {"D"}, "point to project"}},
            {{"y", {"D"}, "closest point of the sphere"}}};
  }
  explicit SphereProjection(const Params& p)
      : radius_(p.RequirePositive("radius")), use_manifold_(p.GetBool("manifold")) {}
  // Start on the sphere, at x's direction turned by an angle of ~0.3 rad so that the solve has work to do — but
  // by less, down to none, when ‖x‖ is tiny against r: then f varies over the sphere by only ~‖x‖·r, below the
  // rounding of its gradient (y − x rounds to y once ‖x‖ < ε·r), and no solver could find the direction of x
  // from f's derivatives. The start is relative to ‖x‖, so it does not depend on x's scale; x = 0 starts at r·e₁.
  void InitialGuess(const ProblemData& p, double* y) const {
    const int64_t d = p.InputSize(0);
    double xmax = 0;
    for (int64_t k = 0; k < d; ++k) xmax = std::max(xmax, std::abs(p.inputs[0][k]));
    const double turn = 0.3 * std::min(1.0, xmax / (1e-6 * radius_));
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) {
      y[k] = xmax > 0 ? p.inputs[0][k] / xmax + (k == 0 ? turn : 0.0) : (k == 0 ? 1.0 : 0.0);
      norm += y[k] * y[k];
    }
    norm = std::sqrt(norm);
    if (norm == 0) {  // x/‖x‖∞ + 0.3 e₁ = 0: start at r·e₂ (D ≥ 2) or r
      y[0] = 0;
      y[d > 1 ? 1 : 0] = 1;
      norm = 1;
    }
    for (int64_t k = 0; k < d; ++k) y[k] *= radius_ / norm;
  }
  // x = 0 exactly is the only non-unique case. For 0 < ‖x‖ ≲ ε·r the engine sees the same derivatives as for
  // x = 0 (a sphere of minimisers to double precision) and says non_unique; the answer, r·x/‖x‖ from the start
  // above, is unique, but its curvature cannot be verified: say that instead.
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    GenericSolve(p, s);
    bool zero = true;
    for (int64_t k = 0; k < p.InputSize(0); ++k) zero = zero && p.inputs[0][k] == 0;
    if (zero) {
      s->Set(kNonUnique, "x = 0: every point of the sphere is a closest point");
    } else if (s->flags & kNonUnique) {
      s->flags &= ~static_cast<uint32_t>(kNonUnique);
      s->note.clear();
      s->Set(kUnverified,
             "‖x‖ is below the rounding of the objective's gradient: y = r·x/‖x‖ from the start, its "
             "second-order condition not verifiable in double precision");
    }
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override;
  // ‖y‖ = r is a Ceres manifold: L-BFGS runs on it (the augmented Lagrangian is used when manifold=false). The
  // sphere of ℝ¹ is two points, not a manifold Ceres can search (SphereManifold needs D ≥ 2): no manifold there.
  ceres::Manifold* MakeManifold(const ProblemData& p) const {
    const int d = static_cast<int>(p.InputSize(0));
    return use_manifold_ && d >= 2 ? new ceres::SphereManifold<ceres::DYNAMIC>(d) : nullptr;
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    T sum = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) sum += y[k] * y[k];
    h[0] = sum - Constant<T>(radius_ * radius_);
  }

 private:
  double radius_;
  bool use_manifold_;
};
DDN_REGISTER_NODE(SphereProjection);

// The constraint is linear in y but bilinear in (a, y): kLinearConstraints skips only its y-y curvature (zero);
// the mixed derivatives that give a's gradient are exact.
class PlaneProjection : public ProjectionBase<PlaneProjection> {
 public:
  static NodeSpec Spec() {
    return {"plane_projection",
            "Euclidean projection onto the plane a·y = b, normal a and offset b inputs (linear equality, generic "
            "engine)",
            {},
            {{"x", {"D"}, "point to project"}, {"a", {"D"}, "normal of the plane (nonzero)"}, {"b", {}, "offset"}},
            {{"y", {"D"}, "closest point of the plane"}}};
  }
  explicit PlaneProjection(const Params&) {}
  static constexpr bool kLinearConstraints = true;
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    T dot = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) dot += in[1][k] * y[k];
    h[0] = dot - in[2][0];
  }
  void Validate(const ProblemData& p) const override {
    double norm = 0;
    for (int64_t k = 0; k < p.InputSize(1); ++k) norm += p.inputs[1][k] * p.inputs[1][k];
    if (norm == 0) throw InvalidInput("input 'a' (the plane's normal) is 0");
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override;
};
DDN_REGISTER_NODE(PlaneProjection);

class BallProjection : public ProjectionBase<BallProjection> {
 public:
  static NodeSpec Spec() {
    return {"ball_projection",
            "Euclidean projection onto the ball ‖y‖ ≤ r (nonlinear inequality, generic engine)",
            {{"radius", ParamType::kFloat, "1", "ball radius r > 0"}},
            {{"x", {"D"}, "point to project"}},
            {{"y", {"D"}, "closest point of the ball"}}};
  }
  explicit BallProjection(const Params& p) : radius_(p.RequirePositive("radius")) {}
  int NumInequalities(const ProblemData&) const { return 1; }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    T sum = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) sum += y[k] * y[k];
    g[0] = sum - Constant<T>(radius_ * radius_);
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  double radius_;
};
DDN_REGISTER_NODE(BallProjection);

class BoxProjection : public ProjectionBase<BoxProjection> {
 public:
  static NodeSpec Spec() {
    return {"box_projection",
            "Euclidean projection onto the box lo ≤ y ≤ hi (linear inequalities, generic engine)",
            {{"lo", ParamType::kFloat, "-1", "lower bound"}, {"hi", ParamType::kFloat, "1", "upper bound (> lo)"}},
            {{"x", {"D"}, "point to project"}},
            {{"y", {"D"}, "closest point of the box"}}};
  }
  explicit BoxProjection(const Params& p) : lo_(p.GetDouble("lo")), hi_(p.GetDouble("hi")) {
    if (!(hi_ > lo_))
      throw InvalidInput("node 'box_projection' needs hi > lo, got lo = " + FormatDouble(lo_) +
                         ", hi = " + FormatDouble(hi_));
  }
  static constexpr bool kLinearConstraints = true;
  int NumInequalities(const ProblemData& p) const { return static_cast<int>(2 * p.Dim("D")); }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    const int64_t d = in.size(0);
    for (int64_t k = 0; k < d; ++k) {
      g[k] = y[k] - Constant<T>(hi_);
      g[d + k] = Constant<T>(lo_) - y[k];
    }
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  double lo_, hi_;
};
DDN_REGISTER_NODE(BoxProjection);

// ---- sum_fit: a flat valley of minimisers --------------------------------------------------------
class SumFit : public DeclarativeNode<SumFit> {
 public:
  static NodeSpec Spec() {
    return {"sum_fit",
            "y = argmin ½(y₀ + y₁ − x)²: a line of minimisers, singular Hessian; the minimum-norm one is "
            "returned and differentiated (generic engine, non-regular path)",
            {},
            {{"x", {}, "target of the sum"}},
            {{"y", {"2"}, "minimum-norm minimiser (x/2, x/2)"}}};
  }
  explicit SumFit(const Params&) {}
  template <typename T>
  T Objective(const Args<T>& in, const T* y) const {
    const T r = y[0] + y[1] - in[0][0];
    return Constant<T>(0.5) * r * r;
  }
};
DDN_REGISTER_NODE(SumFit);

// ---- awkward check cases ----------------------------------------------------------------------------
std::vector<CheckCase> BallProjection::CheckCases(uint64_t seed) const {
  std::vector<CheckCase> cases = Node::CheckCases(seed);
  // Inside (inactive) and outside (active) points, one per batch element.
  CheckCase mixed{"inside_and_outside", {}};
  mixed.inputs["x"] = Tensor({2, 3}, {0.1 * radius_, -0.2 * radius_, 0.3 * radius_, 2 * radius_, radius_, -radius_});
  cases.push_back(mixed);
  // Just inside and just outside the boundary (‖x‖ = r(1 ∓ 1e-3)): differentiable, but a wrong active-set
  // tolerance would misclassify them.
  const double in = radius_ * (1 - 1e-3) / std::sqrt(3.0), out = radius_ * (1 + 1e-3) / std::sqrt(3.0);
  cases.push_back({"near_boundary", {{"x", Tensor({2, 3}, {in, -in, in, out, out, -out})}}});
  return cases;
}

std::vector<CheckCase> BoxProjection::CheckCases(uint64_t seed) const {
  std::vector<CheckCase> cases = Node::CheckCases(seed);
  const double span = hi_ - lo_;
  CheckCase mixed{"inside_and_outside", {}};
  mixed.inputs["x"] = Tensor({1, 4}, {lo_ - 0.3 * span, lo_ + 0.25 * span, hi_ - 0.1 * span, hi_ + 2 * span});
  cases.push_back(mixed);
  const double e = 1e-3 * span;
  cases.push_back({"near_bounds", {{"x", Tensor({1, 4}, {lo_ - e, lo_ + e, hi_ - e, hi_ + e})}}});
  return cases;
}

std::vector<CheckCase> PseudoHuberMean::CheckCases(uint64_t seed) const {
  std::vector<CheckCase> cases = Node::CheckCases(seed);
  Rng rng(seed);
  // Weights, a tie, a far outlier; points spread over 300 α (a near-singular Hessian, Σ φ'' ~ 1e-6·N); a cluster
  // far from the origin (offset 1e6 α: the step must follow the points' scale, not the origin's).
  CheckCase weighted{"weighted_tie_outlier", {}};
  weighted.inputs["x"] = Tensor({2, 5}, {0.1, 0.1, -0.4, 0.7, 40.0, 1.0, 1.2, 1.2, 0.9, -30.0});
  weighted.inputs["w"] = Tensor({2, 5}, {1.0, 0.5, 2.0, 1.0, 1.0, 0.3, 1.0, 1.0, 2.0, 0.5});
  for (auto& v : weighted.inputs["x"].values()) v *= alpha_;
  cases.push_back(weighted);
  CheckCase spread{"spread_near_singular", {}};
  spread.inputs["x"] = Tensor({1, 4}, {-300.0, -100.0, 200.0, 500.0});
  for (auto& v : spread.inputs["x"].values()) v *= alpha_;
  cases.push_back(spread);
  CheckCase far{"far_from_origin", {}};
  far.inputs["x"] = Tensor({1, 6});
  for (auto& v : far.inputs["x"].values()) v = alpha_ * (1e6 + rng.Normal());
  // The points' spread (α), not their distance from 0, is the scale of the problem; a step of 1e-3 α keeps the
  // difference quotient above the rounding of y ≈ 1e6 α (1e-10 α).
  far.step_scale["x"] = 10 * alpha_;
  cases.push_back(far);
  return cases;
}

std::vector<CheckCase> SphereProjection::CheckCases(uint64_t seed) const {
  std::vector<CheckCase> cases = Node::CheckCases(seed);
  // Near the centre (‖x‖ = 1e-3 r: dy/dx ~ 1e3), far away (1e3 r), on the sphere (y = x).
  const double r = radius_, n = std::sqrt(14.0);
  cases.push_back({"near_centre", {{"x", Tensor({1, 3}, {1e-3 * r / n, -2e-3 * r / n, 3e-3 * r / n})}}});
  cases.push_back({"far", {{"x", Tensor({1, 3}, {1e3 * r / n, 2e3 * r / n, -3e3 * r / n})}}});
  cases.push_back({"on_the_sphere", {{"x", Tensor({1, 3}, {r / n, 2 * r / n, -3 * r / n})}}});
  return cases;
}

std::vector<CheckCase> PlaneProjection::CheckCases(uint64_t seed) const {
  std::vector<CheckCase> cases = Node::CheckCases(seed);
  // x on the plane (y = x); a normal whose entries span six orders of magnitude.
  cases.push_back(
      {"on_the_plane",
       {{"x", Tensor({1, 3}, {1.0, 2.0, 3.0})}, {"a", Tensor({1, 3}, {1.0, -1.0, 0.5})}, {"b", Tensor({1}, {0.5})}}});
  cases.push_back(
      {"steep_normal",
       {{"x", Tensor({1, 3}, {0.3, -0.7, 1.1})}, {"a", Tensor({1, 3}, {1e-3, 1.0, 1e3})}, {"b", Tensor({1}, {2.0})}}});
  return cases;
}

}  // namespace ddn::examples
