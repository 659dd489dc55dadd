// The `project_ellipsoid` node: y = argmin_y ½‖y − x‖² s.t. Σ_i (y_i/a_i)² ≤ 1 (surface = false) or
// = 1 (surface = true), with the semi-axes a a differentiable input. Forward: the secular equation
// (ellipsoid.h) to machine precision; backward: its closed form, or the generic implicit backward in the
// hard case where y is not differentiable. The declarative form (one constraint Σ (y_i/a_i)² − 1) gives
// the generic Ceres forward and implicit backward the tests compare with.
#include <cmath>

#include "ddn/declarative.h"
#include "ddn/random.h"
#include "nodes/projection/ellipsoid.h"

namespace ddn {
namespace projection {

class ProjectEllipsoidNode : public EuclideanProjectionNode<ProjectEllipsoidNode> {
 public:
  static NodeSpec Spec() {
    return {"project_ellipsoid",
            "Euclidean projection onto the axis-aligned ellipsoid Σ (y_i/a_i)² ≤ 1 (or its surface, = 1)",
            {{"surface", ParamType::kBool, "false", "project onto the surface Σ (y_i/a_i)² = 1 instead of the solid"}},
            {{"x", {"D"}, "the points to project"},
             {"a", {"D"}, "semi-axes a_i > 0 (differentiable)", true, false, /*positive=*/true}},
            {{"y", {"D"}, "the nearest point of the ellipsoid"}}};
  }
  explicit ProjectEllipsoidNode(const Params& p) : surface_(p.GetBool("surface")) {}

  void Validate(const ProblemData& p) const override {
    for (int64_t i = 0; i < p.InputSize(1); ++i) {
      if (!(p.inputs[1][i] > 0)) {
        throw InvalidInput("node 'project_ellipsoid': semi-axes 'a' must be > 0, got a[" + std::to_string(i) +
                           "] = " + FormatDouble(p.inputs[1][i]));
      }
    }
  }
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    const EllipsoidSolution sol =
        ProjectOntoEllipsoid(p.inputs[0], p.inputs[1], p.InputSize(0), surface_, p.outputs[0], s);
    // Residual: the constraint's violation |Σ (y_i/a_i)² − 1| (stationarity holds by construction).
    double level = 0;
    for (int64_t i = 0; i < p.InputSize(0); ++i) level += std::pow(p.outputs[0][i] / p.inputs[1][i], 2);
    s->residual = sol.inside ? 0.0 : std::abs(level - 1);
    // No answer far from the surface is returned (the secular solve reaches ~1e-15).
    if (s->residual > 1e-10) {
      throw NumericalFailure("node 'project_ellipsoid': the secular equation did not converge (constraint residual " +
                             FormatDouble(s->residual) + ")");
    }
  }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    if (!EllipsoidVjp(p.inputs[0], p.inputs[1], p.outputs[0], p.InputSize(0), surface_, p.grad_outputs[0],
                      p.grad_inputs[0], p.grad_inputs[1])) {
      GenericBackward(p, s);
    }
  }

  // ---- declarative form --------------------------------------------------------------------------
  // Objective ½‖y − x‖²: EuclideanProjectionNode (ddn/declarative.h).
  // Radial scaling of x onto the surface (x itself when inside the solid).
  void InitialGuess(const ProblemData& p, double* y) const {
    const double *x = p.inputs[0], *a = p.inputs[1];
    const int64_t d = p.InputSize(0);
    double s = 0;
    for (int64_t i = 0; i < d; ++i) s += (x[i] / a[i]) * (x[i] / a[i]);
    if (s == 0) {
      std::fill(y, y + d, 0.0);
      y[0] = a[0];
      return;
    }
    const double scale = (!surface_ && s <= 1) ? 1.0 : 1.0 / std::sqrt(s);
    for (int64_t i = 0; i < d; ++i) y[i] = scale * x[i];
  }
  int NumEqualities(const ProblemData&) const { return surface_ ? 1 : 0; }
  int NumInequalities(const ProblemData&) const { return surface_ ? 0 : 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    h[0] = Level(in, y);
  }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    g[0] = Level(in, y);
  }

  // Random outside points, points 1e-2 outside the surface, far points, and (surface only) inside
  // points: inside the solid ∂y/∂a = 0 exactly, where the checker's relative error would be rounding
  // noise (the tests check that case exactly instead).
  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    Rng rng(seed);
    const int64_t b = 4, d = 3;
    CheckCase random{"random", {}};
    Tensor x({b, d}), a({b, d});
    for (auto& v : x.values()) v = rng.Normal();
    for (auto& v : a.values()) v = rng.Uniform(0.5, 2.0);
    const double levels[] = {1.7, 1.01, 8.0, surface_ ? 0.3 : 2.5};
    for (int64_t row = 0; row < b; ++row) {
      double s = 0;
      for (int64_t i = 0; i < d; ++i) s += std::pow(x.problem(row)[i] / a.problem(row)[i], 2);
      for (int64_t i = 0; i < d; ++i) x.problem(row)[i] *= levels[row] / std::sqrt(s);
    }
    random.inputs["x"] = x;
    random.inputs["a"] = a;
    // A sphere (equal axes), a long thin ellipsoid, and (surface) a point near the centre.
    CheckCase awkward{"sphere_thin_centre", {}};
    awkward.inputs["x"] = Tensor({3, d}, {1.5, -0.5, 0.7, 0.3, 2.0, -0.1, 0.02, 0.05, -0.01});
    awkward.inputs["a"] = Tensor({3, d}, {1.0, 1.0, 1.0, 0.1, 3.0, 0.2, 2.0, 1.5, 0.5});
    if (!surface_) awkward.inputs["x"].problem(2)[2] = 1.0;
    return {random, awkward};
  }

 private:
  template <typename T>
  static T Level(const Args<T>& in, const T* y) {
    T s = Constant<T>(-1.0);
    for (int64_t i = 0; i < in.size(0); ++i) {
      const T t = y[i] / in[1][i];
      s += t * t;
    }
    return s;
  }

  bool surface_;
};
DDN_REGISTER_NODE(ProjectEllipsoidNode);

}  // namespace projection
}  // namespace ddn
