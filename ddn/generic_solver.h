// ddn/generic_solver.h: the generic engine's solver, behind a small derivative-oracle interface.
//
// The solver finds a local minimiser y ∈ ℝᵐ of
//
//   min_y f(y)   subject to   h(y) = 0 (p equalities),   g(y) ≤ 0 (q inequalities),
//
// and differentiates it: given v = dL/dy it returns dL/dx = vᵀ Dy(x) for the parameters x the problem was
// built from (the node's differentiable inputs). It never sees a node: it asks a DerivativeOracle for values,
// gradients, sparse second derivatives and constraint Jacobians, so it is compiled once (generic_solver.cc)
// and unit-tested on hand-written oracles (generic_solver_test.cc). ddn::DeclarativeNode (declarative.h)
// builds the oracle of a node's objective and constraints by automatic differentiation.
//
// Forward (SolveGeneric):
//   1. Newton–KKT on a working set W of constraints (all equalities and the inequalities that look active):
//      solve  [H_L  A_Wᵀ; A_W  0] [d; λ⁺] = −[∇f; c_W]  with H_L = ∇²f + Σ_{i∈W} λ_i ∇²c_i (the Lagrangian
//      L = f + λᵀc, λ_i ≥ 0 for inequalities; ν = −λ in the notation L = f − νᵀh of docs/design.md §1), then
//      update W as a primal–dual active-set method does (drop λ⁺_i < 0, add violated constraints).
//   2. If that does not converge from the start point: the augmented Lagrangian
//      f + Σ_eq (λ_i ĉ_i + ρ/2 ĉ_i²) + Σ_ineq (max(0, λ_k + ρ ĝ_k)² − λ_k²)/(2ρ)  (Nocedal & Wright §17.4) on
//      normalised constraints ĉ_i = c_i/‖∇c_i‖, each inner problem solved by Newton's method with exact second
//      derivatives (inertia-corrected, line search), then step 1 again from its answer.
//   3. Second-order check: the Hessian of the Lagrangian must be positive definite on the tangent space of the
//      strongly active constraints (the inertia of the KKT matrix; Nocedal & Wright Thm 12.6). A stationary
//      point with negative curvature (a saddle or a maximum) is escaped along the negative-curvature
//      direction and the solve restarts from there; a minimum that cannot be verified is flagged kUnverified.
//   Sparse linear algebra throughout: the KKT matrices are assembled from the oracle's sparse entries,
//   equilibrated (Ruiz) and factorised by a sparse LDLᵀ (Eigen's SimplicialLDLT, AMD ordering); tiny systems
//   use a dense eigendecomposition. The cost of an iteration follows the nonzeros of H and A.
//
// Scale. Every test is relative, so the answer, its flags and its gradient do not change when f is multiplied
// by any c > 0 or a constraint by any c ≠ 0, or when y and x are rescaled together in a scale-covariant
// problem: convergence is measured by the Newton step in units of y, relative to y's scale
// max(‖y‖∞, ‖K⁻¹ m‖∞) where m collects the magnitudes of the summed contributions to ∇f and c (the size a
// rounding error of the gradient moves y by); constraint violations are measured as distances
// |c_i| / ‖∇c_i‖; multipliers as forces λ_i ‖∇c_i‖ relative to the gradient's magnitude; singularity and
// inertia on the equilibrated KKT matrix.
//
// Status of the answer (ddn/status.h): residual = an estimate of y's relative error: the last Newton step (or,
// once the steps have shrunk quadratically, the next step they predict — the solve then stops without a pass
// over the objective that would only measure a step below rounding), or the rounding floor ε·‖K⁻¹m‖ if larger
// (what double precision allows for this problem), relative to ‖y‖∞;
// kNonUnique when the reduced Hessian is singular and stays singular along its null direction (a valley of
// minimisers); kNonRegular when it is singular at y only (a degenerate, non-quadratic
// minimum: y converges slowly and the gradient is a minimum-norm one); kDegenerate for a weakly active
// inequality (multiplier ≈ 0, or a constraint within rounding of its bound but not active) or more active
// constraints than variables; kUnverified when the second-order condition could not be verified or the
// residual stalled above `converged_residual`. NumericalFailure when the residual stays above
// `failure_residual`, the constraints cannot be satisfied, or a function value is not finite.
//
// Backward (GenericVjp): at the solution y (only y: the active set and the multipliers are recomputed, so the
// answer can come from any solver), with W the active constraints, λ their least-squares multipliers, solves
// [H_L A_Wᵀ; A_W 0] [w; μ] = [v; 0] and returns dx = −(Bᵀw + Cᵀμ), B = ∇²_yx L, C = ∂c_W/∂x
// (docs/design.md §1, Gould et al. 2022 Prop. 4.5). A singular KKT matrix gets the minimum-norm least-squares
// solution (dense complete orthogonal decomposition up to `dense_limit` rows) and kNonRegular.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddn/status.h"

namespace ceres {
class Manifold;
}  // namespace ceres

namespace ddn {

// An entry (row, col, value) of a sparse matrix; entries given twice are summed.
struct SparseEntry {
  int row;
  int col;
  double value;
};

// Options of the generic engine. Every node built on ddn::DeclarativeNode has its own copy
// (generic_options(), mutable_generic_options()); `ddn eval/check/bench --solver KEY=VALUE` sets them from the
// command line (SetOption below). The defaults are what the tests and the README's accuracy claims use.
struct GenericSolverOptions {
  int max_newton_iterations = 200;      // Newton iterations per Newton–KKT or inner solve (degenerate minima
                                        // converge linearly: a quartic needs ~90)
  int max_outer_iterations = 40;        // augmented-Lagrangian outer iterations
  int max_lbfgs_iterations = 500;       // Ceres L-BFGS iterations on a node's manifold (MakeManifold), before Newton
  int max_escapes = 20;                 // restarts from saddle points or maxima along negative curvature
  double converged_residual = 1e-10;    // status.residual (y's estimated relative error) at or below this:
                                        // converged; above it: kUnverified (an ill-conditioned problem whose
                                        // accuracy double precision limits, or a stalled solve)
  double failure_residual = 1e-3;       // status.residual above this: NumericalFailure
  double feasibility_tolerance = 1e-6;  // distance |c_i|/‖∇c_i‖ relative to y's scale beyond which the
                                        // augmented Lagrangian calls the problem infeasible
  double active_tolerance = 1e-10;  // an inequality is active at y when |g_k| ≤ this · ‖∇g_k‖₁ · ‖y‖∞
                                    // (the forward puts active ones at rounding level)
  double degenerate_tolerance = 1e-9;  // an active inequality is weakly active (kDegenerate) when its force
                                       // λ_k ‖∇g_k‖ is at most this times the gradient's magnitude
  double rcond = 1e-10;   // a pivot or eigenvalue of the equilibrated KKT matrix (or reduced Hessian) below this,
                          // relative to the largest, counts as zero (singular, kNonRegular/kNonUnique)
  int dense_limit = 600;  // singular or indefinite systems up to this size are analysed densely (exact
                          // minimum-norm solutions, eigenvalues); larger ones by Lanczos and regularisation
  double objective_scale = 1.0;   // multiplies f inside the solver: the answer must not change (scale tests)
  double constraint_scale = 1.0;  // multiplies every constraint inside the solver (scale tests)

  // Throws InvalidInput naming the first invalid field.
  void Validate() const;
  // Sets one field from text ("max_newton_iterations", "200"); throws InvalidInput for an unknown key or an
  // invalid value, naming both and listing the keys.
  void SetOption(const std::string& key, const std::string& value);
  // "key=value" for every field, for --help and reports.
  std::vector<std::string> Describe() const;
};

// What the solver needs to know about one problem. All derivatives are exact; sparse blocks are lists of
// entries (duplicates summed). y has m values, x (the differentiable parameters, concatenated) n values.
class DerivativeOracle {
 public:
  virtual ~DerivativeOracle() = default;
  virtual int num_variables() const = 0;     // m
  virtual int num_parameters() const = 0;    // n
  virtual int num_equalities() const = 0;    // p
  virtual int num_inequalities() const = 0;  // q

  // f(y).
  virtual double Value(const double* y) const = 0;
  // f(y) and ∇f (m values, overwritten). If `hessian` is given: ∇²_yy f, lower triangle (row ≥ col). If
  // `mixed` is given: ∇²_yx f (row = y index, col = x index). If `magnitude` is given: per coordinate k an
  // upper bound of Σ_t |∂f_t/∂y_k| over the terms f is summed from (the rounding scale of ∇f; |∇f| when f is
  // not a sum).
  virtual double Derivatives(const double* y, double* grad, std::vector<SparseEntry>* hessian,
                             std::vector<SparseEntry>* mixed, double* magnitude) const = 0;
  // c(y) = (h(y), g(y)): p + q values.
  virtual void Constraints(const double* y, double* c) const = 0;
  // c(y) and its Jacobian in y (row = constraint, col = y index) and, if given, in x (col = x index).
  virtual void ConstraintJacobian(const double* y, double* c, std::vector<SparseEntry>* jac_y,
                                  std::vector<SparseEntry>* jac_x) const = 0;
  // Σ_i w_i ∇²c_i (w: p + q weights): the y-y block, lower triangle, and, if `mixed` is given, the y-x block.
  virtual void ConstraintCurvature(const double* y, const double* w, std::vector<SparseEntry>* hessian,
                                   std::vector<SparseEntry>* mixed) const = 0;
  // True when every constraint is affine in y for fixed x (∇²_yy c = 0): the forward solve skips the y-y
  // curvature. Mixed derivatives ∇²_yx c are always computed.
  virtual bool ConstraintsAffineInY() const { return false; }
  // A Ceres manifold of ℝᵐ on which the equalities hold (ownership passes to the caller), or nullptr. Used only
  // when there are no inequalities: L-BFGS on the manifold gives the Newton–KKT phase its start.
  virtual ceres::Manifold* NewManifold() const { return nullptr; }
  // Names the problem in messages ("node 'sphere_projection'").
  virtual std::string Name() const { return "problem"; }
};

// Solves the problem from the start point in `y` (m values; overwritten with the answer). Sets
// status->residual, iterations and flags. Throws NumericalFailure (see above) or InvalidInput (options).
void SolveGeneric(const DerivativeOracle& oracle, const GenericSolverOptions& options, double* y,
                  ProblemStatus* status);

// dx += vᵀ Dy (n values) at the solution y, for v = dL/dy (m values). Sets kNonRegular/kDegenerate on status.
void GenericVjp(const DerivativeOracle& oracle, const GenericSolverOptions& options, const double* y, const double* v,
                double* dx, ProblemStatus* status);

}  // namespace ddn
