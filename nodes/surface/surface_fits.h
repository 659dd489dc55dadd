// nodes/surface/surface_fits.h: fitting a hyperplane, a sphere and an ellipse to a weighted point cloud, and
// differentiating the fit.
//
// These are the solvers behind the nodes fit_plane, fit_sphere and fit_ellipse (fit_*_node.cc). One problem
// is N points p_i ∈ R^D (row-major N×D), optional weights w_i ≥ 0 (nullptr: all 1) and, for the plane and the
// sphere, a robust penalty φ(z; α) of nodes/pooling/penalties.h (quadratic ½z², pseudo_huber, huber, welsch,
// truncated_quadratic, cauchy, geman_mcclure).
//
// ---- fit_plane ------------------------------------------------------------------------------------------------
//   (n, d) = argmin Σ_i w_i φ(nᵀp_i − d; α)  subject to ‖n‖ = 1,   the hyperplane nᵀp = d.
// Quadratic φ: d = nᵀc with c = Σ w_i p_i / Σ w_i the weighted centroid, and n the eigenvector of the smallest
// eigenvalue λ₁ of the weighted scatter S = Σ w_i (p_i − c)(p_i − c)ᵀ: the global minimum, ½λ₁ (closed form,
// then, unless ‖Sn − λ₁n‖ is at rounding level already, one Newton step on the Rayleigh quotient over the sphere).
// Other penalties: local solves on the sphere by Newton steps on the reduced KKT system (saddle-free where the
// reduced Hessian is indefinite: eigenvalues replaced by their magnitudes, with a backtracking line search on f),
// falling back to an iteratively reweighted least-squares step (weights w_i ψ(r_i), ψ = φ'/z: a majorise–minimise
// descent step because every φ is concave in z²), to a stationary point at rounding level. Starts: the weighted
// least-squares plane and, for the non-convex penalties (welsch, truncated_quadratic, cauchy, geman_mcclure), also
// the pseudo-Huber fit with the same α; the lower objective wins. The answer is a local minimum, flagged
// kNotCertified (minimising over the sphere is not a convex problem), and may jump to another local minimum under a
// small change of the data where two minima are nearly equally good.
//
// Sign rule: (n, d) and (−n, −d) are the same hyperplane; the node returns the one whose last coordinate n_D is
// positive. Tie rule: when |n_D| ≤ 1e-12 the sign is taken from the last coordinate k with |n_k| > 1e-12 (so n_D
// may be −1e-12 ≤ n_D < 0); the output then jumps to its negative under some perturbations, which the status
// reports as kNonSmooth (the gradient is that of the branch returned).
// Non-uniqueness: a repeated smallest eigenvalue (λ₂ − λ₁ ≤ 1e-10·λ_max: points on a line in 3-D, an isotropic
// blob, all points equal) has a whole subspace of minimisers; the node returns the eigenvector the solver found,
// oriented by the sign rule, with kNonUnique, and the backward uses the minimum-norm solution (kNonRegular).
// For the robust penalties the same test is made on the reduced Hessian at the solution.
// Requirements: N ≥ D, at least D points with positive weight, D ≥ 2 (else InvalidInput).
//
// Backward (the implicit function theorem on the KKT conditions, Gould et al. TPAMI 2022 Prop. 4.5): the problem
// is translation-equivariant, so it is differentiated in coordinates centred at c with c held fixed (the
// derivative through c vanishes). With r_i = nᵀp̃_i − e (p̃_i = p_i − c, e = d − nᵀc), φ'_i, φ''_i at r_i,
// ν = nᵀΣ w_i φ'_i p̃_i, the Hessian blocks H_nn = Σ w φ'' p̃p̃ᵀ − νI, h_ne = −Σ w φ'' p̃, h_ee = Σ w φ'', and an
// orthonormal basis T of n⊥ (a Householder reflection), the reduced system
//     [TᵀH_nnT  Tᵀh_ne; h_neᵀT  h_ee] [z; w_e] = [Tᵀ(v_n + v_d c); v_d],   w_n = T z,
// gives dL/dp_i = −w_i [φ'_i w_n + φ''_i n (p̃_iᵀw_n − w_e)] and dL/dw_i = −φ'_i (p̃_iᵀw_n − w_e). Quadratic:
// h_ne = 0, h_ee = Σw, TᵀH_nnT = diag(λ_j − λ₁) in the eigenbasis (the classical eigenvector derivative).
//
// ---- fit_sphere -------------------------------------------------------------------------------------------------
//   (c, r) = argmin Σ_i w_i φ(‖p_i − c‖ − r; α),   a circle for D = 2.
// Start: the algebraic fit (Kåsa): linear least squares ‖p_i‖² ≈ 2cᵀp_i + k in centred coordinates, r² = k + ‖c‖²;
// then Newton's method with a Levenberg–Marquardt safeguard on the geometric objective, to a local minimum
// (kNotCertified: the geometric fit is not convex). Requirements: N ≥ D + 1 points with positive weight, points
// not all in one hyperplane (collinear in 2-D, coplanar in 3-D: no finite sphere is determined; InvalidInput).
// A point at the centre (‖p_i − c‖ = 0, where the distance is not differentiable) is reported as kNonSmooth.
// Backward: u_i = (p_i − c)/ρ_i, ρ_i = ‖p_i − c‖, H = [Σ w(φ'' uuᵀ + φ'(I − uuᵀ)/ρ)  Σ wφ''u; ·  Σ wφ''],
// H [w_c; w_r] = [v_c; v_r], dL/dp_i = w_i[(φ''_i u_iu_iᵀ + φ'_i(I − u_iu_iᵀ)/ρ_i) w_c + φ''_i u_i w_r],
// dL/dw_i = φ'_i (u_iᵀw_c + w_r).
//
// ---- fit_ellipse ------------------------------------------------------------------------------------------------
//   θ = argmin ½ Σ_i w_i (θᵀz_i)²  subject to 4ac − b² = 1,   z_i = (x², xy, y², x, y, 1),  θ = (a, b, c, d, e, f)
// for the conic ax² + bxy + cy² + dx + ey + f = 0 (Fitzgibbon, Pilu & Fisher 1999, in the numerically stable form
// of Halíř & Flusser 1998), solved in coordinates centred at the weighted centroid and scaled to unit RMS radius,
// then mapped back (the fit is similarity-equivariant) and normalised to 4ac − b² = 1. The constrained problem
// has one feasible stationary pair ±θ (the generalised eigenvector of S θ = λ C θ with λ ≥ 0): the global minimum.
// Sign rule: a > 0 (a ≠ 0 because 4ac > b²). Requirements: points (N, 2), at least 5 with positive weight, not
// collinear. Derived outputs: centre x₀ = −½A⁻¹(d, e) with A = [a b/2; b/2 c]; with k = −(θᵀz(x₀)) > 0 and the
// eigenvalues μ₁ ≤ μ₂ of A, the semi-axes (√(k/μ₁), √(k/μ₂)), major first; angle ∈ (−π/2, π/2] of the major axis
// from the x axis. A circle (μ₁ = μ₂) has no major axis: angle 0 and kNonUnique. k ≤ 0 (an empty conic) cannot
// come from the fit unless all points lie on a degenerate conic: InvalidInput.
// Backward: KKT system [H Aᵀ; A 0][w; μ] = [v; 0] with H = S − λC, A = 2(Cθ)ᵀ, in the normalised coordinates
// (the same equivariance argument as for the plane), dL/dp_i = −w_i[(z_iᵀw) J_iᵀθ + (θᵀz_i) J_iᵀw] with
// J_i = ∂z/∂p at p_i, dL/dw_i = −(θᵀz_i)(z_iᵀw); the gradients of centre, axes and angle are chained into v
// by forward-mode differentiation (ceres::Jet in the .cc) of the closed-form map θ ↦ (centre, axes, angle).
//
// Status: residual = the KKT residual in the scale of its terms (documented per solver below), iterations =
// IRLS/Newton steps. Backward functions assign (=) dL/dp (N·D values) and dL/dw (N values, if not nullptr).
//
// Use: through the nodes (ddn::MakeNode("fit_plane", {{"penalty", "huber"}, {"alpha", "0.1"}}) with ddn::Forward
// and ddn::Backward, or in a graph as a NodeLayer with inputs {"points", "weights"}), or directly:
//
//   PlaneFitProblem q;
//   q.cloud = {points, weights, n, 3};            // weights may be nullptr
//   ValidatePlaneFit(q);
//   double normal[3], offset;
//   ProblemStatus status;
//   SolvePlaneFit(q, normal, &offset, &status);
//   PlaneFitBackward(q, normal, offset, dl_dnormal, dl_doffset, dl_dpoints, dl_dweights, &status);
#pragma once

#include <cstdint>

#include "ddn/status.h"
#include "nodes/pooling/penalties.h"

namespace ddn::surface {

using pooling::PenaltyKind;

// One weighted point cloud: N points of dimension D, row-major; w nullptr means all weights 1.
struct PointCloud {
  const double* points = nullptr;
  const double* weights = nullptr;
  int64_t n = 0;
  int64_t d = 0;
};

struct RobustFitOptions {
  int max_iterations = 200;        // IRLS + Newton steps of the robust plane / Newton steps of the sphere
  double tie_tolerance = 1e-12;    // |n_D| at or below which the sign rule looks at earlier coordinates
  double non_unique_gap = 1e-10;   // eigenvalue gap (relative to the largest) below which → kNonUnique
  double failure_residual = 1e-8;  // scaled residual above which the forward throws NumericalFailure
  // Throws InvalidInput naming the field if a value is out of range.
  void Check() const;
};

// ---- Plane ----------------------------------------------------------------------------------------------------

struct PlaneFitProblem {
  PointCloud cloud;
  PenaltyKind kind = PenaltyKind::kQuadratic;
  double alpha = 1.0;  // > 0
};

// Throws InvalidInput: D < 2, N < D, non-finite values, negative or non-finite weights, fewer than D points with
// positive weight (which covers all weights 0), α ≤ 0. With check_points = false the points' finiteness is taken as
// checked (the nodes' batch layer does it).
void ValidatePlaneFit(const PlaneFitProblem& problem, bool check_points = true);

// Forward: writes normal (D values) and *offset. Status residual: max(‖P Σ w φ' p̃‖ / s_n, |Σ w φ'| / s_e) with
// P = I − nnᵀ, s_n = Σ w ‖p̃‖(|φ'| + φ''_max‖p̃‖), s_e = Σ w (|φ'| + φ''_max ‖p̃‖), the sums of the magnitudes
// of the gradient's terms and of their first-order sensitivity to n (0/0 = 0).
void SolvePlaneFit(const PlaneFitProblem& problem, double* normal, double* offset, ProblemStatus* status,
                   const RobustFitOptions& options = {});

// Σ w_i φ(nᵀp_i − d).
double PlaneFitObjective(const PlaneFitProblem& problem, const double* normal, double offset);

// Backward at a solution (normal, offset): d_points (N·D) = dL/dp, d_weights (N, may be nullptr) = dL/dw.
void PlaneFitBackward(const PlaneFitProblem& problem, const double* normal, double offset, const double* v_normal,
                      double v_offset, double* d_points, double* d_weights, ProblemStatus* status,
                      const RobustFitOptions& options = {});

// The sign rule on (normal, offset), in place. Returns the index k of the coordinate that decided the sign
// (D − 1 unless there was a tie).
int64_t OrientPlane(double* normal, double* offset, int64_t d, double tie_tolerance = 1e-12);

// ---- Sphere ---------------------------------------------------------------------------------------------------

struct SphereFitProblem {
  PointCloud cloud;
  PenaltyKind kind = PenaltyKind::kQuadratic;
  double alpha = 1.0;
};

// Throws InvalidInput: D < 2, fewer than D + 1 points with positive weight, non-finite values, negative weights,
// α ≤ 0, points in one hyperplane (checked in SolveSphereFit, where the scatter is formed).
void ValidateSphereFit(const SphereFitProblem& problem, bool check_points = true);

// Forward: writes centre (D) and *radius. Status residual: ‖∇f‖∞ / Σ w(|φ'| + |φ''|ρ) (scaled by the sizes of
// the gradient's terms and their sensitivity), kNotCertified.
void SolveSphereFit(const SphereFitProblem& problem, double* centre, double* radius, ProblemStatus* status,
                    const RobustFitOptions& options = {});

double SphereFitObjective(const SphereFitProblem& problem, const double* centre, double radius);

void SphereFitBackward(const SphereFitProblem& problem, const double* centre, double radius, const double* v_centre,
                       double v_radius, double* d_points, double* d_weights, ProblemStatus* status);

// The algebraic (Kåsa) fit alone: the start of the geometric fit (and of the generic path's solve).
void AlgebraicSphereFit(const SphereFitProblem& problem, double* centre, double* radius);

// ---- Ellipse --------------------------------------------------------------------------------------------------

// Throws InvalidInput: D ≠ 2, fewer than 5 points with positive weight, non-finite values, negative weights.
void ValidateEllipseFit(const PointCloud& cloud, bool check_points = true);

// Forward: writes conic (6 values, 4ac − b² = 1, a > 0). Status residual: the KKT residual
// ‖Sθ − λCθ‖∞ / (‖S‖∞‖θ‖∞) of the normalised problem. InvalidInput for collinear points.
void SolveEllipseFit(const PointCloud& cloud, double* conic, ProblemStatus* status);

// ½ Σ w_i (θᵀz_i)².
double EllipseFitObjective(const PointCloud& cloud, const double* conic);

// The geometric parameters of an ellipse conic (a > 0, 4ac − b² > 0): centre (2), axes (2, major first), angle.
// Returns false for a circle (angle set to 0). Throws InvalidInput if the conic is empty (k ≤ 0).
bool EllipseGeometry(const double* conic, double* centre, double* axes, double* angle);

// v_conic += J_centreᵀ v_centre + J_axesᵀ v_axes + J_angleᵀ v_angle (any of the three may be nullptr).
void ChainEllipseGeometry(const double* conic, const double* v_centre, const double* v_axes, const double* v_angle,
                          double* v_conic);

// Backward of the conic output: d_points (N·2), d_weights (N, may be nullptr) for an upstream gradient v_conic.
void EllipseFitBackward(const PointCloud& cloud, const double* conic, const double* v_conic, double* d_points,
                        double* d_weights, ProblemStatus* status);

}  // namespace ddn::surface
