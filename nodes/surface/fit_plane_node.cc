// The node fit_plane (surface_fits.h has the math, the sign and tie rules):
//
//   points (B, N, D), optional weights (B, N) → normal (B, D) unit length, offset (B):  normal·p = offset
//   minimising Σ_i w_i φ(normalᵀp_i − offset; α) subject to ‖normal‖ = 1. Parameters penalty, alpha.
//
// The specialised path is SolvePlaneFit / PlaneFitBackward. The declarative form (the generic path) is
// FitPlaneForm: one output y = (normal, offset) ∈ R^(D+1), a sum of one term per point and the equality
// ‖normal‖² − 1 = 0; the node's GenericSolve / GenericBackward run it on the concatenated outputs and split them.
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

class FitPlaneForm : public DeclarativeNode<FitPlaneForm> {
 public:
  static NodeSpec Spec() {
    return {"fit_plane (declarative form)",
            "y = (normal, offset) = argmin sum_i w_i phi(normal^T p_i - offset) s.t. |normal|^2 = 1",
            {},
            {{"points", {"N", "D"}, "points"}, {"weights", {"N"}, "weights", true, true}},
            {{"y", {"Y"}, "(normal, offset), D + 1 values"}}};
  }
  FitPlaneForm(PenaltyKind kind, double alpha) : kind_(kind), alpha_(alpha) {}

  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    const int64_t d = in.size(0);
    T r = -y[d];
    for (int64_t k = 0; k < d; ++k) r += y[k] * in[0][k];
    const T phi = pooling::Penalty<T>(kind_, r, alpha_);
    return in.has(1) ? in[1][0] * phi : phi;
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    const int64_t d = in.Dim("D");
    T s = Constant<T>(-1.0);
    for (int64_t k = 0; k < d; ++k) s += y[k] * y[k];
    h[0] = s;
  }
  // The least-squares plane for the robust penalties (the specialised solver's start too); for the quadratic
  // penalty, whose answer that is, the normal (1, ..., 1)/√D through the centroid instead.
  void InitialGuess(const ProblemData& p, double* y) const {
    const PointCloud cl = CloudOf(p);
    const int64_t d = cl.d;
    PlaneFitProblem q;
    q.cloud = cl;
    ProblemStatus ignored;
    SolvePlaneFit(q, y, &y[d], &ignored);
    if (kind_ == PenaltyKind::kQuadratic) {
      double offset = 0, total = 0;
      for (int64_t i = 0; i < cl.n; ++i) {
        const double w = cl.weights ? cl.weights[i] : 1.0;
        total += w;
        for (int64_t k = 0; k < d; ++k) offset += w * cl.points[i * d + k] / std::sqrt(static_cast<double>(d));
      }
      for (int64_t k = 0; k < d; ++k) y[k] = 1.0 / std::sqrt(static_cast<double>(d));
      y[d] = offset / total;
    }
  }

 private:
  PenaltyKind kind_;
  double alpha_;
};

class FitPlane : public internal::RobustFitNode<PlaneFitProblem, FitPlaneForm> {
 public:
  static NodeSpec Spec() {
    return {
        "fit_plane",
        "robust hyperplane fit: (normal, offset) = argmin sum_i w_i phi(normal^T p_i - offset; alpha), |normal| = 1",
        internal::RobustFitParams(),
        {{"points", {"N", "D"}, "N points in R^D (D >= 2, N >= D)"},
         {"weights", {"N"}, "non-negative point weights (default 1), at least D positive", true, true}},
        {{"normal", {"D"}, "unit normal, last coordinate >= 0 (tie rule: see surface_fits.h)"},
         {"offset", {}, "offset d of the hyperplane normal^T p = d"}}};
  }
  explicit FitPlane(const Params& p) : RobustFitNode(Spec(), p) {}

  void Validate(const ProblemData& p) const override { ValidatePlaneFit(Problem(p), /*check_points=*/false); }
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    SolvePlaneFit(Problem(p), p.outputs[0], p.outputs[1], s);
  }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    PlaneFitBackward(Problem(p), p.outputs[0], p.outputs[1][0], p.grad_outputs[0], p.grad_outputs[1][0],
                     p.grad_inputs[0], p.grad_inputs.size() > 1 ? p.grad_inputs[1] : nullptr, s);
  }
  double ObjectiveValue(const ProblemData& p) const override {
    return PlaneFitObjective(Problem(p), p.outputs[0], p.outputs[1][0]);
  }

  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override {
    const int64_t d = p.Dim("D");
    std::vector<double> y = GenericParameters(p, s);
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += y[k] * y[k];
    norm = std::sqrt(norm);
    for (int64_t k = 0; k < d; ++k) y[k] /= norm;
    y[d] /= norm;
    OrientPlane(y.data(), &y[d], d);
    std::copy(y.begin(), y.begin() + d, p.outputs[0]);
    p.outputs[1][0] = y[d];
    if (kind_ != PenaltyKind::kQuadratic) s->Set(kNotCertified, "a local minimum (generic solve)");
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    Rng rng(seed);
    const bool robust = kind_ != PenaltyKind::kQuadratic;
    // The clouds are drawn in units of 2α: inliers 0.1α from the plane, outliers 2α–3α off it, clear of huber's and
    // the truncation's kink at α (finite differences would straddle it) and in the redescending penalties' tails.
    const double outliers = robust ? 0.2 : 0.0;
    const double noise = 0.05;
    const double far = robust ? 2.0 : 10.0;
    auto planes = [&](int64_t n, int64_t d, double noise_level, double fraction, double centre = 0.5) {
      return internal::NoisyPlanes(&rng, 3, n, d, noise_level, fraction, centre, 2 * alpha_);
    };
    std::vector<CheckCase> cases;
    cases.push_back(internal::MakeCase("random", planes(12, 3, noise, outliers)));
    cases.push_back(
        internal::MakeCase("weighted", planes(12, 3, noise, outliers), internal::RandomWeights(&rng, 3, 12)));
    // Points exactly on the plane (zero residuals, λ₁ = 0).
    cases.push_back(internal::MakeCase("coplanar", planes(10, 3, 0.0, 0.0)));
    // A line fit in 2-D, a hyperplane in 4-D (the dynamic-size path).
    cases.push_back(internal::MakeCase("line_2d", planes(9, 2, noise, outliers), internal::RandomWeights(&rng, 3, 9)));
    cases.push_back(internal::MakeCase("hyperplane_4d", planes(14, 4, noise, outliers)));
    // Far from the origin: the centred formulation keeps the conditioning of a cloud at the origin. (Not as far for
    // the robust penalties: the checker's step, 1e-4·|x|, must stay small against α.)
    cases.push_back(internal::MakeCase("far_from_origin", planes(12, 3, noise, outliers, far)));
    // D heavy points and five light ones (weight 0.05): the plane nearly through the D points. (Lighter weights
    // would make y(w) vary on the scale of w itself, below the checker's step of 1e-4·max(1, |w|).)
    {
      Tensor w = internal::RandomWeights(&rng, 3, 8);
      for (int64_t b = 0; b < 3; ++b)
        for (int64_t i = 3; i < 8; ++i) w.problem(b)[i] = 0.05;
      cases.push_back(internal::MakeCase("nearly_minimal", planes(8, 3, noise, 0.0), w));
    }
    return cases;
  }
};
DDN_REGISTER_NODE(FitPlane);

}  // namespace
}  // namespace ddn::surface
