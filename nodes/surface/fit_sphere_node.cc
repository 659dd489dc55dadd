// The node fit_sphere (surface_fits.h has the math):
//
//   points (B, N, D), optional weights (B, N) → centre (B, D), radius (B)
//   minimising Σ_i w_i φ(‖p_i − centre‖ − radius; α) (a circle for D = 2). Parameters penalty, alpha.
//
// Specialised path: SolveSphereFit / SphereFitBackward. Declarative form (generic path): FitSphereForm, one
// output y = (centre, radius), one term per point, no constraint, started from the algebraic fit.
#include <cmath>
#include <vector>

#include "ddn/declarative.h"
#include "ddn/random.h"
#include "nodes/pooling/penalties.h"
#include "nodes/surface/node_support.h"
#include "nodes/surface/robust_fit_node.h"
#include "nodes/surface/surface_fits.h"

namespace ddn::surface {
namespace {

using internal::CloudOf;

class FitSphereForm : public DeclarativeNode<FitSphereForm> {
 public:
  static NodeSpec Spec() {
    return {"fit_sphere (declarative form)",
            "y = (centre, radius) = argmin sum_i w_i phi(|p_i - centre| - radius)",
            {},
            {{"points", {"N", "D"}, "points"}, {"weights", {"N"}, "weights", true, true}},
            {{"y", {"Y"}, "(centre, radius), D + 1 values"}}};
  }
  FitSphereForm(PenaltyKind kind, double alpha) : kind_(kind), alpha_(alpha) {}

  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    using std::sqrt;
    const int64_t d = in.size(0);
    T s = Constant<T>(0.0);
    for (int64_t k = 0; k < d; ++k) {
      const T u = in[0][k] - y[k];
      s += u * u;
    }
    const T phi = pooling::Penalty<T>(kind_, sqrt(s) - y[d], alpha_);
    return in.has(1) ? in[1][0] * phi : phi;
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    SphereFitProblem q;
    q.cloud = CloudOf(p);
    AlgebraicSphereFit(q, y, &y[q.cloud.d]);
  }

 private:
  PenaltyKind kind_;
  double alpha_;
};

class FitSphere : public internal::RobustFitNode<SphereFitProblem, FitSphereForm> {
 public:
  static NodeSpec Spec() {
    return {"fit_sphere",
            "robust sphere (circle) fit: (centre, radius) = argmin sum_i w_i phi(|p_i - centre| - radius; alpha)",
            internal::RobustFitParams(),
            {{"points", {"N", "D"}, "N points in R^D (D >= 2), at least D + 1, not all in one hyperplane"},
             {"weights", {"N"}, "non-negative point weights (default 1), at least D + 1 positive", true, true}},
            {{"centre", {"D"}, "centre of the sphere"}, {"radius", {}, "its radius"}}};
  }
  explicit FitSphere(const Params& p) : RobustFitNode(Spec(), p) {}

  void Validate(const ProblemData& p) const override { ValidateSphereFit(Problem(p), /*check_points=*/false); }
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    SolveSphereFit(Problem(p), p.outputs[0], p.outputs[1], s);
  }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    SphereFitBackward(Problem(p), p.outputs[0], p.outputs[1][0], p.grad_outputs[0], p.grad_outputs[1][0],
                      p.grad_inputs[0], p.grad_inputs.size() > 1 ? p.grad_inputs[1] : nullptr, s);
  }
  double ObjectiveValue(const ProblemData& p) const override {
    return SphereFitObjective(Problem(p), p.outputs[0], p.outputs[1][0]);
  }

  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override {
    const int64_t d = p.Dim("D");
    std::vector<double> y = GenericParameters(p, s);
    std::copy(y.begin(), y.begin() + d, p.outputs[0]);
    p.outputs[1][0] = y[d];
    s->Set(kNotCertified, "a local minimum from the algebraic fit (generic solve)");
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    Rng rng(seed);
    // Drawn in units of 2α: radius 3α–5α, noise 0.05α, outliers 2α–3α off the sphere, clear of the kinks at α.
    const double outliers = kind_ != PenaltyKind::kQuadratic ? 0.2 : 0.0;
    const double noise = 0.025;
    auto spheres = [&](int64_t n, int64_t d, double noise_level, double fraction, double cap = M_PI, double far = 0.5) {
      return internal::NoisySpheres(&rng, 3, n, d, noise_level, fraction, cap, far, 2 * alpha_);
    };
    std::vector<CheckCase> cases;
    cases.push_back(internal::MakeCase("random", spheres(12, 3, noise, outliers)));
    cases.push_back(
        internal::MakeCase("weighted", spheres(12, 3, noise, outliers), internal::RandomWeights(&rng, 3, 12)));
    cases.push_back(
        internal::MakeCase("circle_2d", spheres(10, 2, noise, outliers), internal::RandomWeights(&rng, 3, 10)));
    // Points exactly on the sphere (zero residuals).
    cases.push_back(internal::MakeCase("exact", spheres(10, 3, 0.0, 0.0)));
    // Only a cap of half-angle 45°: a poorly conditioned fit (the radius trades off against the centre).
    cases.push_back(internal::MakeCase("cap_45deg", spheres(16, 3, noise, 0.0, M_PI / 4)));
    // Far from the origin (the quadratic penalty only: with a robust one the checker's step, 1e-4·|x|, is no
    // longer small against α there, and the fourth-order differences lose their accuracy).
    if (kind_ == PenaltyKind::kQuadratic) {
      cases.push_back(internal::MakeCase("far_from_origin", spheres(12, 3, noise, outliers, M_PI, 10.0)));
    }
    return cases;
  }
};
DDN_REGISTER_NODE(FitSphere);

}  // namespace
}  // namespace ddn::surface
