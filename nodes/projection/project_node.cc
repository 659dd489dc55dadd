// The `project` node: y = argmin_y ½‖y − x‖² s.t. y ∈ S(r), S one of the Lp balls and spheres or the
// simplex (docs/design.md §2). Forward and backward are the exact ones of projections.h; the declarative form
// below (objective + constraints) gives the generic Ceres forward and the implicit backward, which the
// tests hold against them.
//
// The constraints, written smoothly (each is the set itself near the answer, so the KKT conditions are
// those of the projection):
//
//   simplex       h = Σ y_i − r = 0,                g_i = −y_i ≤ 0
//   l1_sphere     h = Σ s_i y_i − r = 0,            g_i = −s_i y_i ≤ 0        s = sign(x), sign(0) = +1
//   l1_ball       g₀ = Σ s_i y_i − r ≤ 0,           g_i = −s_i y_i ≤ 0
//   l2_sphere     h = ‖y‖² − r² = 0                 l2_ball   g = ‖y‖² − r² ≤ 0
//   linf_ball     g_i = y_i − r ≤ 0, g_{D+i} = −y_i − r ≤ 0
//   linf_sphere   the linf_ball inequalities, plus h = s_k y_k − r = 0 when x is inside (k = the first
//                 coordinate of largest |x_k|)
//
// The L1 sets are restricted to x's closed orthant, where the projection lies (flipping the sign of a
// coordinate of y towards x's never increases the distance), and there they are polyhedra.
#include <algorithm>
#include <cmath>

#include "ddn/declarative.h"
#include "ddn/finiteness.h"
#include "ddn/random.h"
#include "nodes/projection/projections.h"

namespace ddn {
namespace projection {

// The kernels check x, v, y and dx for NaN/Inf themselves, in their own passes (ddn/finiteness.h): for rows of
// this size the engine's separate checks were a quarter of the node's time.
class ProjectNode : public EuclideanProjectionNode<ProjectNode>, public ChecksOwnFiniteness {
 public:
  static NodeSpec Spec() {
    return {"project",
            "Euclidean projection y = argmin ½‖y − x‖² onto an Lp ball or sphere or the simplex of radius r",
            {{"shape", ParamType::kChoice, "l2_ball",
              "the set: simplex (Σy = r, y ≥ 0), l1/l2/linf sphere (‖y‖ = r) or ball (‖y‖ ≤ r)", ProjectionSetNames()},
             {"radius", ParamType::kFloat, "1", "radius r > 0 (the optional input 'radius' overrides it)"}},
            {{"x", {"D"}, "the points to project"},
             {"radius", {}, "per-problem radius r > 0; overrides the parameter; differentiable", true, true}},
            {{"y", {"D"}, "the nearest point of the set"}}};
  }
  explicit ProjectNode(const Params& p)
      : set_(ParseProjectionSet(p.GetString("shape"))), radius_(p.RequirePositive("radius")) {}

  ProjectionSet set() const { return set_; }

  // ---- specialised forward and backward ----------------------------------------------------------
  bool ChecksFinitenessInKernels() const override { return true; }
  void Validate(const ProblemData& p) const override {
    RequireFiniteInput(*this, p, 1);  // the radius (one value); x is checked by Project
    if (p.inputs[1] && !(p.inputs[1][0] > 0)) {
      throw InvalidInput("node 'project': input 'radius' must be > 0, got " + FormatDouble(p.inputs[1][0]));
    }
  }
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    if (!Project(set_, p.inputs[0], p.InputSize(0), Radius(p), p.outputs[0], s)) RecheckForward(*this, p);
  }
  bool BackwardAssigns() const override { return true; }  // ProjectVjp writes every dx and dr
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    RequireFiniteInput(*this, p, 1);
    const int64_t d = p.InputSize(0);
    double* dx = p.grad_inputs[0];
    thread_local std::vector<double> scratch;
    if (!dx) {
      scratch.resize(d);
      dx = scratch.data();
    }
    double* dr = (p.inputs[1] && p.grad_inputs[1]) ? p.grad_inputs[1] : nullptr;
    // The simplex and L1 sphere products do not read x, and so do not check it (ddn/finiteness.h).
    if (!ProjectVjp(set_, p.inputs[0], p.outputs[0], d, Radius(p), p.grad_outputs[0], dx, dr))
      RecheckBackward(*this, p);
  }

  // ---- declarative form --------------------------------------------------------------------------
  // Objective ½‖y − x‖²: EuclideanProjectionNode (ddn/declarative.h).
  int NumEqualities(const ProblemData& p) const {
    switch (set_) {
      case ProjectionSet::kSimplex:
      case ProjectionSet::kL1Sphere:
      case ProjectionSet::kL2Sphere:
        return 1;
      case ProjectionSet::kLinfSphere:
        return LinfInside(p.inputs[0], p.InputSize(0), Radius(p)) ? 1 : 0;
      default:
        return 0;
    }
  }
  int NumInequalities(const ProblemData& p) const {
    const int d = static_cast<int>(p.InputSize(0));
    switch (set_) {
      case ProjectionSet::kSimplex:
      case ProjectionSet::kL1Sphere:
        return d;
      case ProjectionSet::kL1Ball:
        return d + 1;
      case ProjectionSet::kL2Sphere:
        return 0;
      case ProjectionSet::kL2Ball:
        return 1;
      case ProjectionSet::kLinfSphere:
      case ProjectionSet::kLinfBall:
        return 2 * d;
    }
    return 0;
  }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    const int64_t d = in.size(0);
    const T r = Radius(in);
    T sum = Constant<T>(0.0);
    switch (set_) {
      case ProjectionSet::kSimplex:
        for (int64_t i = 0; i < d; ++i) sum += y[i];
        h[0] = sum - r;
        return;
      case ProjectionSet::kL1Sphere:
        for (int64_t i = 0; i < d; ++i) sum += Value(in[0][i]) < 0 ? -y[i] : y[i];
        h[0] = sum - r;
        return;
      case ProjectionSet::kL2Sphere:
        for (int64_t i = 0; i < d; ++i) sum += y[i] * y[i];
        h[0] = sum - r * r;
        return;
      case ProjectionSet::kLinfSphere: {
        const int64_t k = LinfArgMax(in, d);
        h[0] = (Value(in[0][k]) < 0 ? -y[k] : y[k]) - r;
        return;
      }
      default:
        return;
    }
  }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    const int64_t d = in.size(0);
    const T r = Radius(in);
    switch (set_) {
      case ProjectionSet::kSimplex:
        for (int64_t i = 0; i < d; ++i) g[i] = -y[i];
        return;
      case ProjectionSet::kL1Sphere:
        for (int64_t i = 0; i < d; ++i) g[i] = Value(in[0][i]) < 0 ? y[i] : -y[i];
        return;
      case ProjectionSet::kL1Ball: {
        T sum = Constant<T>(0.0);
        for (int64_t i = 0; i < d; ++i) {
          const bool negative = Value(in[0][i]) < 0;
          sum += negative ? -y[i] : y[i];
          g[i + 1] = negative ? y[i] : -y[i];
        }
        g[0] = sum - r;
        return;
      }
      case ProjectionSet::kL2Ball: {
        T sum = Constant<T>(0.0);
        for (int64_t i = 0; i < d; ++i) sum += y[i] * y[i];
        g[0] = sum - r * r;
        return;
      }
      case ProjectionSet::kLinfSphere:
      case ProjectionSet::kLinfBall: {
        for (int64_t i = 0; i < d; ++i) {
          g[i] = y[i] - r;
          g[d + i] = -y[i] - r;
        }
        if (set_ == ProjectionSet::kLinfSphere && LinfInside(in, d, r)) {
          // The equality fixes y_k = s_k r; its own bound would duplicate that row of A: keep the
          // opposite (inactive) bound twice instead.
          const int64_t k = LinfArgMax(in, d);
          const T opposite = (Value(in[0][k]) < 0 ? y[k] : -y[k]) - r;
          g[k] = opposite;
          g[d + k] = opposite;
        }
        return;
      }
      default:
        return;
    }
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  double Radius(const ProblemData& p) const { return p.inputs[1] ? p.inputs[1][0] : radius_; }
  template <typename T>
  T Radius(const Args<T>& in) const {
    return in.has(1) ? in[1][0] : Constant<T>(radius_);
  }
  static bool LinfInside(const double* x, int64_t d, double r) {
    double m = 0;
    for (int64_t i = 0; i < d; ++i) m = std::max(m, std::abs(x[i]));
    return m < r;
  }
  template <typename T>
  static bool LinfInside(const Args<T>& in, int64_t d, const T& r) {
    double m = 0;
    for (int64_t i = 0; i < d; ++i) m = std::max(m, std::abs(Value(in[0][i])));
    return m < Value(r);
  }
  template <typename T>
  static int64_t LinfArgMax(const Args<T>& in, int64_t d) {
    int64_t k = 0;
    for (int64_t i = 1; i < d; ++i)
      if (std::abs(Value(in[0][i])) > std::abs(Value(in[0][k]))) k = i;
    return k;
  }

  ProjectionSet set_;
  double radius_;
};
DDN_REGISTER_NODE(ProjectNode);

// Distance of x from the nearest point where y(x, r) is not differentiable (support changes, the
// boundary, sign flips, ties), in the units of x; for choosing gradient-check points.
static double KinkDistance(ProjectionSet set, const double* x, int64_t d, double r) {
  double l1 = 0, l2 = 0, top = 0, second = 0, smallest = INFINITY;
  for (int64_t i = 0; i < d; ++i) {
    const double a = std::abs(x[i]);
    l1 += a;
    l2 += a * a;
    smallest = std::min(smallest, a);
    if (a > top) {
      second = top;
      top = a;
    } else {
      second = std::max(second, a);
    }
  }
  l2 = std::sqrt(l2);
  double m = INFINITY;
  auto threshold_gaps = [&](bool use_abs) {
    const double tau = SimplexThreshold(x, d, r, use_abs);
    for (int64_t i = 0; i < d; ++i) m = std::min(m, std::abs((use_abs ? std::abs(x[i]) : x[i]) - tau));
    return tau;
  };
  switch (set) {
    case ProjectionSet::kSimplex:
      threshold_gaps(false);
      return m;
    case ProjectionSet::kL1Sphere:
      if (threshold_gaps(true) < 0) m = std::min(m, smallest);
      return m;
    case ProjectionSet::kL1Ball:
      m = std::abs(l1 - r);
      if (l1 > r) threshold_gaps(true);
      return m;
    case ProjectionSet::kL2Sphere:
      return l2;
    case ProjectionSet::kL2Ball:
      return std::abs(l2 - r);
    case ProjectionSet::kLinfSphere:
      if (top < r) return std::min({r - top, top - second, top});
      [[fallthrough]];
    case ProjectionSet::kLinfBall:
      for (int64_t i = 0; i < d; ++i) m = std::min(m, std::abs(std::abs(x[i]) - r));
      return m;
  }
  return m;
}

// Random points at three scales (inside, around and far outside), points 1e-2 from the boundary on
// either side, near-ties, and a learned radius. Random rows are redrawn until they are at least
// 1e-2·max(1, ‖x‖∞) from any kink (the finite differences must not straddle one). The radius case
// keeps every row outside the balls: inside, ∂y/∂r = 0 exactly and the checker's relative error of a
// zero gradient is finite-difference rounding noise.
std::vector<CheckCase> ProjectNode::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  const int64_t d = 5;
  // Row b of x, drawn Gaussian and rescaled so that its norm in the set's geometry is level·r.
  auto draw = [&](Tensor* x, int64_t b, double level, double r, bool away_from_kinks) {
    double* row = x->problem(b);
    for (int attempt = 0; attempt < 1000; ++attempt) {
      double norm = 0, top = 0;
      for (int64_t i = 0; i < d; ++i) row[i] = rng.Normal();
      switch (set_) {
        case ProjectionSet::kSimplex:
        case ProjectionSet::kL1Sphere:
        case ProjectionSet::kL1Ball:
          for (int64_t i = 0; i < d; ++i) norm += std::abs(row[i]);
          break;
        case ProjectionSet::kL2Sphere:
        case ProjectionSet::kL2Ball:
          for (int64_t i = 0; i < d; ++i) norm += row[i] * row[i];
          norm = std::sqrt(norm);
          break;
        default:
          for (int64_t i = 0; i < d; ++i) norm = std::max(norm, std::abs(row[i]));
      }
      for (int64_t i = 0; i < d; ++i) {
        row[i] *= level * r / norm;
        top = std::max(top, std::abs(row[i]));
      }
      if (!away_from_kinks) return;
      // Away from kinks, and not where ∂y/∂x = 0 (a single support coordinate, every coordinate clamped):
      // the checker's relative error of a zero gradient is rounding noise.
      double y[d], v[d], dx[d] = {0, 0, 0, 0, 0};
      for (int64_t i = 0; i < d; ++i) v[i] = 1.0 + 0.37 * i;
      Project(set_, row, d, r, y, nullptr);
      ProjectVjp(set_, row, y, d, r, v, dx, nullptr);
      double gradient = 0;
      for (int64_t i = 0; i < d; ++i) gradient += std::abs(dx[i]);
      if (KinkDistance(set_, row, d, r) >= 1e-2 * std::max(1.0, top) && gradient > 1e-3) return;
    }
  };
  const double r = radius_;
  std::vector<CheckCase> cases;
  CheckCase random{"random", {}};
  random.inputs["x"] = Tensor({4, d});
  for (int64_t b = 0; b < 4; ++b) draw(&random.inputs["x"], b, std::exp(rng.Normal()), r, true);
  cases.push_back(random);

  CheckCase scales{"inside_and_far", {}};
  scales.inputs["x"] = Tensor({3, d});
  draw(&scales.inputs["x"], 0, 0.3, r, true);
  draw(&scales.inputs["x"], 1, 0.8, r, true);
  draw(&scales.inputs["x"], 2, 6, r, true);
  cases.push_back(scales);

  CheckCase boundary{"near_boundary", {}};
  boundary.inputs["x"] = Tensor({2, d});
  draw(&boundary.inputs["x"], 0, 1.01, r, false);
  draw(&boundary.inputs["x"], 1, 0.99, r, false);
  cases.push_back(boundary);

  // Near-ties: two coordinates of equal magnitude up to 2e-2 (the largest ones, for L∞ and the simplex).
  CheckCase ties{"near_ties", {}};
  ties.inputs["x"] = Tensor({2, d}, {0.5 * r, 0.48 * r, -0.1 * r, 0.2 * r, -0.3 * r,  //
                                     1.5 * r, -1.52 * r, 0.4 * r, -0.2 * r, 1.2 * r});
  if (set_ == ProjectionSet::kSimplex) {
    ties.inputs["x"] = Tensor({2, d}, {0.5, 0.5, 0.48, 0.2, -0.3, 1.0, 1.0, 1.0, 0.98, -2.0});
    for (auto& v : ties.inputs["x"].values()) v *= r;
  }
  cases.push_back(ties);

  CheckCase learned{"radius_input", {}};
  learned.inputs["radius"] = Tensor({3}, {0.5, 1.3, 2.2});
  learned.inputs["x"] = Tensor({3, d});
  for (int64_t b = 0; b < 3; ++b) draw(&learned.inputs["x"], b, 1.6 + b, learned.inputs["radius"][b], true);
  cases.push_back(learned);
  return cases;
}

}  // namespace projection
}  // namespace ddn
