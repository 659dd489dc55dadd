// nodes/optim/qp_solver.h: one dense convex quadratic programme, solved and differentiated (the `qp` node).
//
//   z(θ) = argmin_z ½ zᵀQz + qᵀz   subject to   Gz ≤ h (m rows),   Az = b (p rows),   θ = (Q, q, G, h, A, b),
//
// Q (n×n) symmetric positive definite, so the minimiser is unique whenever the constraints are feasible.
// Storage: every matrix is an Eigen column-major copy of the node's row-major input; Q is used through its
// symmetric part ½(Q + Qᵀ), so the gradient for Q is symmetric and matches finite differences of the solve.
//
// Forward (SolveQp): a primal-dual interior-point method with Mehrotra's predictor–corrector on the slack form
// Gz + s = h, s ≥ 0, multipliers λ ≥ 0 (for Gz ≤ h) and ν (for Az = b),
//
//   r_d = Qz + q + Gᵀλ + Aᵀν,   r_p = Gz + s − h,   r_e = Az − b,   r_c = s∘λ − σμ1,   μ = sᵀλ/m,
//
// each Newton step reduced to the (n+p) system [Q + GᵀDG, Aᵀ; A, 0], D = diag(λ/s), factorised once by Cholesky
// of H = Q + GᵀDG and of the Schur complement AH⁻¹Aᵀ and used for both the predictor and the corrector
// (Amos & Kolter, "OptNet", ICML 2017, §3.2; Nocedal & Wright §16.6). Step length: the largest α ≤ 1 keeping s, λ
// positive, times 0.99. The method stops at a scaled KKT residual ≤ `tolerance`; then the active set
// {i : λ_i > s_i} is identified and polished: the equality-constrained QP on [A; G_active] is solved exactly
// (Schur complement of Q), checked (inactive rows feasible, active multipliers ≥ 0; rows moved until it holds),
// and kept if its residual is smaller. The polished z has residual ~1e-16.
//
// Infeasible constraints: when the interior-point method fails, a phase-I problem min t s.t. Gz − t1 ≤ h,
// Az = b (regularised to a strictly convex QP and solved by the same method) decides: t* > 0 means no z
// satisfies the constraints (InvalidInput naming the least achievable violation). Unbounded problems cannot
// occur (Q is positive definite; a Q that is not is refused by ValidateQp).
//
// Backward, implicit (QpImplicitVjp): at the solution, with the active rows C = [G_A; A] and multipliers
// y = (λ_A, ν), the KKT system K = [Q Cᵀ; C 0] is factorised once (Cholesky of Q and of CQ⁻¹Cᵀ) and gives both
// the multipliers (K[z; y] = [−q; h_A; b]) and the adjoint K[d_z; d_y] = [−v; 0] (OptNet eq. 7–8):
//
//   q̄ = d_z,  Q̄ = ½(d_z zᵀ + z d_zᵀ),  Ḡ_A = d_λ zᵀ + λ_A d_zᵀ,  h̄_A = −d_λ,  Ā = d_ν zᵀ + ν d_zᵀ,  b̄ = −d_ν,
//
// zero rows of Ḡ, h̄ for inactive constraints. A weakly active constraint (zero multiplier on the boundary, or
// more active rows than n − p) makes z(θ) non-differentiable: the status says `degenerate` and the gradient is
// that of the active set as identified; a singular K falls back to the minimum-norm solution (`non_regular`).
//
// Backward, unrolled / truncated:K (QpUnrolledVjp): reverse mode through the recorded interior-point iterations
// (ddn/gradient_mode.h): per iteration the adjoints of the two Newton solves (one transposed solve each, with
// the iteration's stored factorisation), of the centring parameter σ = (μ_aff/μ)³ and of both step lengths
// (through the blocking ratio). The starting point is a constant (its influence vanishes as the method
// converges), and the final polish is passed straight through (differentiating the polish would return the
// implicit gradient exactly, since the polished z solves the active-set KKT system).
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <string>
#include <vector>

#include "ddn/status.h"

namespace ddn::optim {

// One problem (column-major copies; G, h, A, b may have zero rows).
struct QpData {
  Eigen::MatrixXd Q;  // n×n, symmetric (ValidateQp symmetrises)
  Eigen::VectorXd q;  // n
  Eigen::MatrixXd G;  // m×n
  Eigen::VectorXd h;  // m
  Eigen::MatrixXd A;  // p×n
  Eigen::VectorXd b;  // p

  int n() const { return static_cast<int>(q.size()); }
  int m() const { return static_cast<int>(h.size()); }
  int p() const { return static_cast<int>(b.size()); }
};

struct QpOptions {
  int max_iterations = 50;      // interior-point iterations
  double tolerance = 1e-11;     // stop at this scaled KKT residual (then polish)
  double step_fraction = 0.99;  // fraction of the step to the boundary of s, λ > 0
  bool polish = true;           // identify the active set and solve its KKT system exactly

  // Throws InvalidInput naming the field if a value is out of range.
  void Validate() const;
};

// Checks Q symmetric (to 1e-3 relative, so that a finite-difference step of one entry passes) and positive
// definite, A of full row rank p ≤ n; replaces Q by ½(Q + Qᵀ). Throws InvalidInput naming the input.
void ValidateQp(QpData* data);

// The answer and its certificate.
struct QpSolution {
  Eigen::VectorXd z, s, lambda, nu;  // primal, slacks h − Gz, multipliers of Gz ≤ h and Az = b
  std::vector<int> active;           // inequalities treated as equalities at z
  int iterations = 0;                // interior-point iterations
  double residual = 0;               // scaled KKT residual of the returned z (status residual)
  bool polished = false;
};

// What the unrolled backward needs from each interior-point iteration (QpOptions::record).
struct QpTapeStep {
  Eigen::VectorXd z, s, lambda, nu;        // the iterate u_k
  Eigen::LLT<Eigen::MatrixXd> H;           // Q + Gᵀ diag(λ/s) G
  Eigen::LLT<Eigen::MatrixXd> S;           // A H⁻¹ Aᵀ (p > 0)
  Eigen::MatrixXd HinvAt;                  // H⁻¹ Aᵀ
  Eigen::VectorXd dz_a, ds_a, dl_a, dn_a;  // predictor direction
  Eigen::VectorXd dz, ds, dl, dn;          // combined direction
  double alpha_a = 1, alpha = 1;           // step lengths
  int block_a = -1, block = -1;            // blocking index (< m: s_i, ≥ m: λ_{i−m}), −1 if α = 1
  double mu = 0, mu_a = 0;                 // μ and μ_aff
  bool sigma_clamped = false;              // σ = 1 because μ_aff ≥ μ
};
struct QpTape {
  std::vector<QpTapeStep> steps;
  size_t Bytes() const;  // memory held, for reports
};

// Solves one QP (data validated). Throws InvalidInput for infeasible constraints, NumericalFailure if the
// method does not converge. `tape`, if given, receives every iteration; `start`, if given, replaces the
// starting point (z, s, λ, ν) (tests differentiate the fixed-iteration map from a constant start).
QpSolution SolveQp(const QpData& data, const QpOptions& options, ProblemStatus* status, QpTape* tape = nullptr,
                   const QpSolution* start = nullptr);

// Gradients of L with respect to every input, for an upstream v = dL/dz.
struct QpGradient {
  Eigen::MatrixXd Q, G, A;
  Eigen::VectorXd q, h, b;
};

// The implicit backward at z (the node's output): active set and multipliers from z, one KKT factorisation.
// Sets kDegenerate / kNonRegular on `status` as described above.
void QpImplicitVjp(const QpData& data, const Eigen::VectorXd& z, const Eigen::VectorXd& v, QpGradient* grad,
                   ProblemStatus* status);

// The unrolled backward through the last `steps` recorded iterations (all of them if steps ≥ tape size).
void QpUnrolledVjp(const QpData& data, const QpTape& tape, int steps, const Eigen::VectorXd& v, QpGradient* grad);

// Scaled KKT residual of (z, λ, ν) with slacks s = h − Gz: max of stationarity, primal feasibility and
// complementarity, each relative to 1 + the size of the data it involves.
double QpResidual(const QpData& data, const Eigen::VectorXd& z, const Eigen::VectorXd& lambda,
                  const Eigen::VectorXd& nu);

}  // namespace ddn::optim
