// The node fit_ellipse (surface_fits.h has the math):
//
//   points (B, N, 2), optional weights (B, N) → conic (B, 6), centre (B, 2), axes (B, 2), angle (B)
//   conic = argmin ½ Σ_i w_i (conicᵀz_i)² subject to 4ac − b² = 1 (a > 0), z_i = (x², xy, y², x, y, 1);
//   centre, axes (major first) and angle (of the major axis, in (−π/2, π/2]) derived from it.
//
// Specialised path: SolveEllipseFit / EllipseFitBackward (+ ChainEllipseGeometry for the derived outputs).
// Declarative form (generic path): FitEllipseForm, y = conic, one term per point and the equality constraint
// 4ac − b² − 1 = 0 (an equality-constrained declarative node); the derived outputs are computed from its answer
// and their gradients chained into dL/dconic the same way.
#include <cmath>
#include <vector>

#include "ddn/declarative.h"
#include "ddn/random.h"
#include "nodes/surface/node_support.h"
#include "nodes/surface/surface_fits.h"

namespace ddn::surface {
namespace {

using internal::CloudOf;

class FitEllipseForm : public DeclarativeNode<FitEllipseForm> {
 public:
  static NodeSpec Spec() {
    return {"fit_ellipse (declarative form)",
            "conic = argmin 1/2 sum_i w_i (conic^T z_i)^2 s.t. 4ac - b^2 = 1",
            {},
            {{"points", {"N", "2"}, "points"}, {"weights", {"N"}, "weights", true, true}},
            {{"conic", {"6"}, "(a, b, c, d, e, f)"}}};
  }
  FitEllipseForm() = default;

  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* q) const {
    const T x = in[0][0], y = in[0][1];
    const T r = q[0] * x * x + q[1] * x * y + q[2] * y * y + q[3] * x + q[4] * y + q[5];
    const T f = Constant<T>(0.5) * r * r;
    return in.has(1) ? in[1][0] * f : f;
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>&, const T* q, T* h) const {
    h[0] = Constant<T>(4.0) * q[0] * q[2] - q[1] * q[1] - Constant<T>(1.0);
  }
  // The circle through the weighted centroid with the RMS radius (4ac − b² = 1 with a = c = ½).
  void InitialGuess(const ProblemData& p, double* q) const {
    const PointCloud cl = CloudOf(p);
    double mx = 0, my = 0, total = 0, r2 = 0;
    for (int64_t i = 0; i < cl.n; ++i) {
      const double w = cl.weights ? cl.weights[i] : 1.0;
      total += w;
      mx += w * cl.points[2 * i];
      my += w * cl.points[2 * i + 1];
    }
    mx /= total;
    my /= total;
    for (int64_t i = 0; i < cl.n; ++i) {
      const double w = cl.weights ? cl.weights[i] : 1.0;
      r2 += w * (std::pow(cl.points[2 * i] - mx, 2) + std::pow(cl.points[2 * i + 1] - my, 2));
    }
    r2 /= total;
    q[0] = q[2] = 0.5;
    q[1] = 0;
    q[3] = -mx;
    q[4] = -my;
    q[5] = 0.5 * (mx * mx + my * my - r2);
  }
};

class FitEllipse : public Node {
 public:
  static NodeSpec Spec() {
    return {"fit_ellipse",
            "direct least-squares ellipse fit: conic = argmin sum_i w_i (conic^T z_i)^2 s.t. 4ac - b^2 = 1",
            {},
            {{"points", {"N", "2"}, "N >= 5 points in the plane, not collinear"},
             {"weights", {"N"}, "non-negative point weights (default 1), at least 5 positive", true, true}},
            {{"conic", {"6"}, "(a, b, c, d, e, f) of ax^2 + bxy + cy^2 + dx + ey + f = 0, 4ac - b^2 = 1, a > 0"},
             {"centre", {"2"}, "centre of the ellipse"},
             {"axes", {"2"}, "semi-axes, major first"},
             {"angle", {}, "angle of the major axis from the x axis, in (-pi/2, pi/2]; 0 for a circle"}}};
  }
  explicit FitEllipse(const Params&) : Node(Spec()) {}

  void Validate(const ProblemData& p) const override { ValidateEllipseFit(CloudOf(p), /*check_points=*/false); }
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    SolveEllipseFit(CloudOf(p), p.outputs[0], s);
    Derive(p, s);
  }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    double v[6];
    TotalConicGradient(p, v);
    EllipseFitBackward(CloudOf(p), p.outputs[0], v, p.grad_inputs[0],
                       p.grad_inputs.size() > 1 ? p.grad_inputs[1] : nullptr, s);
  }
  bool BackwardAssigns() const override { return true; }
  double ObjectiveValue(const ProblemData& p) const override { return EllipseFitObjective(CloudOf(p), p.outputs[0]); }

  bool HasGenericPath() const override { return true; }
  // --solver KEY=VALUE: the options of the declarative form's generic engine.
  void SetSolverOption(const std::string& key, const std::string& value) override { form_.SetSolverOption(key, value); }
  std::vector<std::string> SolverOptions() const override { return form_.SolverOptions(); }
  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override {
    ProblemData q = p;
    q.outputs = {p.outputs[0]};
    q.output_shapes = {{6}};
    form_.GenericSolve(q, s);
    if (p.outputs[0][0] < 0)
      for (int k = 0; k < 6; ++k) p.outputs[0][k] = -p.outputs[0][k];
    Derive(p, s);
  }
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override {
    double v[6];
    TotalConicGradient(p, v);
    ProblemData q = p;
    q.outputs = {p.outputs[0]};
    q.output_shapes = {{6}};
    q.grad_outputs = {v};
    form_.GenericBackward(q, s);
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    Rng rng(seed);
    std::vector<CheckCase> cases;
    cases.push_back(internal::MakeCase("random", internal::NoisyEllipses(&rng, 3, 12, 0.05)));
    cases.push_back(internal::MakeCase("weighted", internal::NoisyEllipses(&rng, 3, 12, 0.05),
                                       internal::RandomWeights(&rng, 3, 12)));
    // Points exactly on an ellipse: zero residuals, the multiplier λ = 0.
    cases.push_back(internal::MakeCase("exact", internal::NoisyEllipses(&rng, 3, 8, 0.0)));
    // Only half of the ellipse is seen.
    cases.push_back(internal::MakeCase("half_arc", internal::NoisyEllipses(&rng, 3, 12, 0.02, M_PI)));
    // Exactly 5 points: the conic through them (generically unique).
    cases.push_back(internal::MakeCase("five_points", internal::NoisyEllipses(&rng, 3, 5, 0.05)));
    return cases;
  }

 private:
  // centre, axes, angle from the conic; kNonUnique for a circle.
  static void Derive(const ProblemData& p, ProblemStatus* s) {
    if (!EllipseGeometry(p.outputs[0], p.outputs[1], p.outputs[2], p.outputs[3])) {
      s->Set(kNonUnique, "a circle: the major axis (angle) is not defined, angle 0");
    }
  }
  // v = dL/dconic + the chain through centre, axes, angle.
  static void TotalConicGradient(const ProblemData& p, double* v) {
    std::copy(p.grad_outputs[0], p.grad_outputs[0] + 6, v);
    ChainEllipseGeometry(p.outputs[0], p.grad_outputs[1], p.grad_outputs[2], p.grad_outputs[3], v);
  }

  FitEllipseForm form_;
};
DDN_REGISTER_NODE(FitEllipse);

}  // namespace
}  // namespace ddn::surface
