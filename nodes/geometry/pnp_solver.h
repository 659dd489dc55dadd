// nodes/geometry/pnp_solver.h: weighted perspective-n-point, its global initialisation, refinement and gradient.
//
// The problem. Given N correspondences between world points P_i ∈ R³ and image points q_i ∈ R², weights w_i ≥ 0
// and optional intrinsics K = (fx, fy, cx, cy), find the camera pose y = (r, t) (angle-axis rotation, then
// translation; X_i = R(r) P_i + t is P_i in the camera frame, nodes/geometry/rotation.h) minimising
//
//   f(y) = Σ_i w_i φ(X_i, q_i),
//
// with φ one of the reference library's objectives (ddn/pytorch/pnp_node.py, Gould et al., TPAMI 2022, §6.3):
//
//   reproj         φ = ‖π(X) − q‖²                   π(X) = (fx X₁/X₃ + cx, fy X₂/X₃ + cy), squared pixels
//   reproj_huber   φ = ρ_α(‖π(X) − q‖)               ρ_α(z) = ½z² for z ≤ α, α(z − ½α) beyond (Huber)
//   cosine         φ = 1 − bᵀ X/‖X‖                  b = the unit bearing of q: (K⁻¹ (q, 1)) normalised
//
// (no factor ½ on reproj, as in the reference; the minimiser does not care). Without K the image points are
// already normalised (fx = fy = 1, cx = cy = 0).
//
// Forward (SolvePnP). A global initialisation, then a local refinement from each start, keeping the lowest f:
//   1. EPnP (Lepetit, Moreno-Noguer & Fua, "EPnP: an accurate O(n) solution to the PnP problem", IJCV 2009) on
//      all points with √w_i-weighted equations: four control points (three for planar scenes, §3.4 of the
//      paper), the null space of MᵀM, the β of one, two and three null vectors from the control points'
//      distances (and OpenCV's four-vector approximation), Gauss–Newton on β, absolute orientation; the candidate
//      with the least reprojection error, or, with fewer than 10 points (a wide null space), every candidate.
//   2. RANSAC over EPnP on minimal sets (5 points, 4 for planar scenes; only with at least twice as many points),
//      weighted MSAC scoring with the threshold in normalised image units, adaptive number of iterations
//      (confidence 0.99), then EPnP on the best set's inliers. The random generator is seeded from the data, so a
//      problem has one answer wherever it sits in a batch and whatever the thread count.
//   3. Levenberg–Marquardt from each start on f with its exact Hessian (not Gauss–Newton: outliers leave large
//      residuals, where Gauss–Newton converges only linearly), Marquardt's diagonal scaling and Nielsen's
//      damping update, to an optimality residual near machine precision. The residual is the Newton step
//      relative to the pose, max_k |(H⁻¹∇f)_k| / (1 + |y_k|): at a minimum, to first order, the distance to the
//      exact minimiser (a gradient norm would not do: it has the units of f and no scale at a zero-residual
//      minimum). Once the predicted decrease of f is below what rounding blurs in f, a step is accepted if it
//      shrinks the gradient, so the last Newton steps are not refused for noise.
//   4. Newton steps on the best start with the gradient in extended precision (long double): in double its
//      rounding error, u·Σ_i |w_i ∇φ_i| through H⁻¹, blurs the minimiser by up to κ(H)·u (1e-12 with outliers),
//      which would make the forward a noisy function of the data; polished, the pose is the minimiser to the
//      rounding of its double representation.
//   If two starts end in different local minima, the lower is returned and the status says not_certified.
//   The rotation is returned as the angle-axis vector with angle in [0, π].
//
// Backward (PnPVjp). The implicit function theorem (docs/design.md §1, unconstrained): u = H⁻¹ v with H = ∇²_yy f
// at the solution, then per point, with δX = J_X u the camera-frame motion along u, g = ∂φ/∂X and R_u = Σ_a u_a
// ∂R/∂r_a,
//   dq_i = −w_i (∂²φ/∂X∂q)ᵀ δX,   dP_i = −w_i (R_uᵀ g + Rᵀ ∂²φ/∂X² δX),   dw_i = −gᵀ δX.
// H comes from the same exact derivatives as the refinement: R and its first and second derivatives in r once per
// pose (nested Jets on rotation.h), then the chain rule through X = R P + t per point. A singular H (a pose that is
// not locally unique) gives the minimum-norm solution and the status non_regular.
//
// Storage: arrays are row-major, as the node's tensors: p2d (N, 2), p3d (N, 3), w (N) or nullptr (all 1),
// K (4) or nullptr, pose (6).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

#include "ddn/status.h"

namespace ddn::geometry {

enum class PnPObjective { kReproj, kReprojHuber, kCosine };

// "reproj", "reproj_huber", "cosine"; ParsePnPObjective throws InvalidInput on anything else.
PnPObjective ParsePnPObjective(const std::string& name);
const char* PnPObjectiveName(PnPObjective objective);

// One problem, as views of the caller's arrays (see Storage above).
struct PnPProblem {
  int64_t n = 0;
  const double* p2d = nullptr;
  const double* p3d = nullptr;
  const double* w = nullptr;  // nullptr: all weights 1
  const double* K = nullptr;  // nullptr: normalised image points
  PnPObjective objective = PnPObjective::kReproj;
  double alpha = 1.0;  // Huber threshold α > 0 (reproj_huber), in the units of p2d

  double weight(int64_t i) const { return w ? w[i] : 1.0; }
};

struct PnPOptions {
  int ransac_iterations = 100;      // at most this many RANSAC samples (fewer once confident)
  double ransac_threshold = 0.02;   // inlier reprojection error, normalised image units (pixels / focal length)
  double ransac_confidence = 0.99;  // stop sampling once an all-inlier sample is this likely to have been drawn
  int max_iterations = 100;         // Levenberg–Marquardt iterations per start
  double tolerance = 1e-14;         // stop at this optimality residual (see above)
  double failure_residual = 1e-8;   // NumericalFailure if the best start ends above this
  bool ransac = true;               // false: EPnP on all points only (one start)

  // Throws InvalidInput naming the first field out of range.
  void Validate() const;
};

// Throws InvalidInput if the problem has no determined pose: N < 4, a negative or non-finite weight, fewer than
// four positive weights, collinear (or coincident) world points among those, K with fx or fy ≤ 0.
void ValidatePnPProblem(const PnPProblem& problem);

// EPnP on the points with positive weight among `subset` (all points if empty), in normalised image coordinates
// (K applied). Returns false if the configuration is degenerate (fewer than four such points, collinear points).
bool EPnP(const PnPProblem& problem, const std::vector<int>& subset, double pose[6]);

// f(y); with `gradient` (6) and `hessian` (6×6, row-major), its exact first and second derivatives. `scale`, if
// given, receives ‖Σ_i |w_i ∇φ_i|‖∞, the scale of the gradient (its size without cancellation between terms).
double PnPObjectiveValue(const PnPProblem& problem, const double pose[6], double* gradient = nullptr,
                         double* hessian = nullptr, double* scale = nullptr);

struct RefineResult {
  double f = 0;         // objective at the end
  double residual = 0;  // the Newton step relative to the pose (see above)
  int iterations = 0;
};
// Levenberg–Marquardt on f with the exact Hessian, from *pose.
RefineResult RefinePose(const PnPProblem& problem, const PnPOptions& options, double pose[6]);

// The whole forward: initialisation, refinement from each start, the best one. Sets the status (residual,
// iterations, not_certified, non_unique, non_smooth) and throws NumericalFailure if no start converges.
void SolvePnP(const PnPProblem& problem, const PnPOptions& options, double pose[6], ProblemStatus* status);

// The starting pose of the forward (steps 1 and 2, the start with the lowest f before refinement).
void InitialPose(const PnPProblem& problem, const PnPOptions& options, double pose[6]);

// Vector–Jacobian product at a solution `pose`: accumulates −(∂²f/∂x∂y)ᵀ H⁻¹ v into grad_p2d (N×2), grad_p3d (N×3)
// and grad_w (N), each optional (nullptr). Sets non_regular on `status` for a singular H.
void PnPVjp(const PnPProblem& problem, const double pose[6], const double v[6], double* grad_p2d, double* grad_p3d,
            double* grad_w, ProblemStatus* status);

}  // namespace ddn::geometry
