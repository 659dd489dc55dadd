// nodes/alignment/sinkhorn.h: entropic optimal transport, solved to machine precision and differentiated
// through its optimality conditions.
//
// The problem (Cuturi, NeurIPS 2013; the reference library's definition, docs/design.md §2). For a cost
// M ∈ R^{H×W}, positive marginals r ∈ R^H, c ∈ R^W with Σ r = Σ c, and γ > 0:
//
//   P = argmin_P ⟨P, M⟩ + (1/γ) KL(P ‖ r cᵀ)   s.t.  P 1 = r,  Pᵀ 1 = c,
//
// KL(P ‖ Q) = Σ P_ij (log(P_ij / Q_ij) − 1) + Σ Q_ij. On the feasible set Σ P_ij log(r_i c_j) and Σ P_ij are
// constants, so P is also the entropic transport plan argmin ⟨P, M⟩ − (1/γ) H(P); it is unique (strictly
// convex objective) and strictly positive. Stationarity gives the Gibbs form
//
//   P_ij = exp(f_i + g_j − γ M_ij)                                                          (1)
//
// with dual potentials f ∈ R^H, g ∈ R^W (unique up to f + t, g − t), which maximise the concave dual
//   D(f, g) = rᵀf + cᵀg − Σ_ij exp(f_i + g_j − γ M_ij),     ∇D = (r − P1, c − Pᵀ1).            (2)
//
// Forward (SolveTransport). Stored as P itself, in the plain domain, but never formed from exp(−γM): each
// ε-scaling stage computes P from (1) in the log domain (the exponents are ≤ 0 there, so nothing overflows
// however large γ·M is), then improves it by multiplicative row and column scalings only (P_ij ← P_ij·x_i·y_j,
// exact to one rounding per entry, which keeps the marginals at machine precision even when the exponents in
// (1) are in the thousands):
//   - ε-scaling (Schmitzer 2019, §3.2): γ_k = γ / 2^k for k = K, ..., 0, with K the smallest such that
//     γ_K · spread(M) ≤ stage_spread (spread = the largest range of a row of M); the potentials in cost units
//     (f/γ_k, g/γ_k) carry over from stage to stage, and the intermediate stages only warm-start the next;
//   - Sinkhorn sweeps (columns, then rows), over-relaxed in the last stage (P ← P diag((c/β)^ω), ...; Thibault
//     et al., "Overrelaxed Sinkhorn–Knopp algorithm", 2021) with ω from the observed plain rate, while they
//     converge fast enough to beat Newton steps on cost;
//   - then Newton steps on the dual (2) (Brauer et al., "A Sinkhorn–Newton method for entropic optimal
//     transport", 2017), damped Levenberg–Marquardt style: solve
//        [diag(α)(1+λ)   P           ] [δf]   [r − α]
//        [Pᵀ             diag(β)(1+λ)] [δg] = [c − β],   α = P1, β = Pᵀ1,
//     by its Schur complement on the shorter side (below), search t ∈ {1, 1/4, ...} along the step, accept it
//     if the marginal error falls or D rises, else raise λ. While steps contract the error fast, the last
//     factorisation is reused (chord steps: a solve costs a few passes over P, a factorisation O(n²·m)).
// It stops when max(‖P1 − r‖∞, ‖Pᵀ1 − c‖∞) ≤ tolerance·Σr, by default a few units of rounding.
//
// Backward (TransportVjp): the implicit function theorem on the optimality conditions, not the iterations (the
// node's unrolled and truncated gradient modes differentiate plain Sinkhorn sweeps instead: sinkhorn_unrolled.h).
// Perturbing (1) and the constraints gives, for V = dL/dP and S = V ∘ P,
//
//   A [x; y] = [S 1; Sᵀ 1],   A = [diag(α) P; Pᵀ diag(β)],                                   (3)
//   dL/dM = γ P ∘ (x 1ᵀ + 1 yᵀ − V),   dL/dr = x,   dL/dc = y   (r, c perturbed with Σ dr = Σ dc),
//
// (Gould et al., DDN TPAMI 2022, Prop. 4.5 with the blocks of this problem: H = diag(1/(γP)), B = I for M
// and the marginal constraints for r, c). A is singular along (1, −1) (the same null space as the
// potentials); the right-hand side is orthogonal to it, and the answer does not depend on which solution is
// taken. (3) is solved by eliminating the longer side: with n = min(H, W) rows on the short side,
//
//   L x = S1 − P diag(1/β) Sᵀ1,   L = diag(α) − P diag(1/β) Pᵀ,    y = (Sᵀ1 − Pᵀ x) / β,
//
// L (n×n) is the Laplacian of the graph whose edge weights are w_ik = Σ_j P_ij P_kj / β_j; its diagonal is
// formed as the sum of the off-diagonal weights, without the cancellation of α_i − Σ_j P²_ij/β_j, and the
// null space is grounded by adding (trace(L)/n²)·1 1ᵀ (which leaves the solution of a right-hand side
// orthogonal to 1 unchanged). One Cholesky factorisation, cost O(n²·max(H, W)), memory O(H·W): nothing larger
// than P is formed. Where the support of P is numerically disconnected (entries underflowed at very large
// γ·M), L is singular beyond the grounded direction: the solve then uses a pivoted LDLᵀ factorisation and
// reports kNonRegular; the gradient is unaffected in exact arithmetic (the free offsets cancel in x_i + y_j).
//
// TransportJacobian exposes the same factorisation as the linear map dS ↦ dP for a perturbation of the score
// S = −M (the symmetric positive semi-definite Jacobian of (1) under the constraints): graph matching
// (graph_match.h) applies it inside its own Newton–Krylov solves.
//
// Storage: every matrix is row-major, P_ij at P[i·W + j]. Marginals are used as given (the node normalises
// them to sum 1); they must be positive and have equal sums.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string>

#include "ddn/status.h"

namespace ddn::alignment {

struct SinkhornOptions {
  // Stop when the marginal error max(‖P1 − r‖∞, ‖Pᵀ1 − c‖∞) ≤ tolerance · Σr. The default is a few units of
  // rounding of the row and column sums.
  double tolerance = 4e-16;
  // The error accepted when rounding stops further progress (no step improves it any more); above it the
  // solve throws NumericalFailure. The floor is ~1e-16 for γ·range(M) up to ~10³ and rises to 1e-12–1e-11 at
  // γ·range(M) ~ 10⁴ with uniform marginals (a nearly degenerate assignment; optimal_transport_test measures it).
  double acceptable_tolerance = 1e-10;
  // In the last stage, Sinkhorn sweeps continue while the marginal error falls at least by this factor per
  // sweep and is above newton_start (relative to Σr), or while the observed rate reaches the tolerance in
  // fewer sweeps than a Newton step costs; then Newton steps take over (quadratic convergence from there).
  double sinkhorn_rate = 0.9;
  double newton_start = 1e-6;
  // Over-relaxed sweeps in the last stage, ω from the rate of the first plain ones.
  bool over_relaxation = true;
  double max_omega = 1.9;
  // First ε-scaling stage: γ_K · spread(M) ≤ stage_spread. 0 disables ε-scaling.
  double stage_spread = 32.0;
  // Intermediate ε-scaling stages only warm-start the next one: Sinkhorn sweeps until this marginal error
  // (relative to Σr) or max_stage_sweeps.
  double stage_tolerance = 1e-3;
  int max_stage_sweeps = 50;
  // Limits, counted over all stages.
  int max_sweeps = 100000;
  int max_newton_steps = 500;

  // Throws InvalidInput naming the first invalid field.
  void Validate() const;
};

struct SinkhornReport {
  double marginal_error = 0;  // final max(‖P1 − r‖∞, ‖Pᵀ1 − c‖∞) / Σr
  int sweeps = 0;             // Sinkhorn sweeps, all stages
  int newton_steps = 0;       // accepted Newton steps, all stages
  int stages = 0;             // ε-scaling stages
  int factorizations = 0;     // Cholesky factorisations of the Newton steps (the dominant cost when > 0)
};

// Solves the problem above for one M (H×W, row-major) into P (H×W). r (H) and c (W) positive with equal
// sums (not checked here). Throws NumericalFailure if the marginal error stays above
// options.acceptable_tolerance.
SinkhornReport SolveTransport(const double* M, const double* r, const double* c, int64_t H, int64_t W, double gamma,
                              const SinkhornOptions& options, double* P);

// Vector–Jacobian product at a solution P (H×W) for V = dL/dP: writes dL/dM into dM (H×W, may be nullptr),
// and the adjoint potentials x (H) into dr and y (W) into dc (either may be nullptr): the gradients with
// respect to r and c for perturbations that keep Σr = Σc (the node maps them through its normalisation).
// Uses only P, not M. Sets kNonRegular on `status` (if given) when the factorisation needed pivoting.
void TransportVjp(const double* P, int64_t H, int64_t W, double gamma, const double* V, double* dM, double* dr,
                  double* dc, ProblemStatus* status);

// The Jacobian of P with respect to the score S = −M, at a solution P: J(dS) = γ P ∘ (dS − x 1ᵀ − 1 yᵀ)
// with [x; y] from (3) for V = dS. Symmetric positive semi-definite (in the Frobenius inner product); its
// null space holds the perturbations a 1ᵀ + 1 bᵀ that the constraints absorb. Factorises once; each Apply
// costs O(H·W + n²). Keeps a pointer to P: P must outlive it.
class TransportJacobian {
 public:
  TransportJacobian(const double* P, int64_t H, int64_t W, double gamma);
  ~TransportJacobian();
  TransportJacobian(const TransportJacobian&) = delete;
  TransportJacobian& operator=(const TransportJacobian&) = delete;

  // out = J(in); in and out are H×W row-major and may not alias.
  void Apply(const double* in, double* out) const;
  // True if the factorisation needed pivoting (numerically disconnected support).
  bool pivoted() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddn::alignment
