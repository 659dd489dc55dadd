// nodes/alignment/graph_match.h: relaxed graph matching (quadratic assignment) over the doubly-stochastic
// polytope with entropy, solved as a fixed point of Sinkhorn projections and differentiated through it.
//
// The problem. Two graphs with N and N' nodes: edge weights A (N×N) and B (N'×N'), node affinities K (N×N'),
// λ ≥ 0, γ > 0. Over the transport polytope U = {X ≥ 0 : X1 = (m/N)1, Xᵀ1 = (m/N')1}, m = min(N, N') (the
// Birkhoff polytope of doubly-stochastic matrices when N = N'; otherwise the rows of the smaller side sum to 1),
//
//   X = argmax_{X ∈ U}  F(X) = ⟨K, X⟩ + λ tr(Xᵀ A X B) + (1/γ) H(X),     H(X) = −Σ X_ij log X_ij.
//
// For a permutation matrix X = Pπ, tr(Xᵀ A X B) = Σ_ik A_ik B_π(i)π(k) counts the edges the matching preserves
// (Lawler's quadratic assignment); the entropy makes the relaxation smooth and its answer strictly positive.
// The gradient of the quadratic term is G(X) = A X B + Aᵀ X Bᵀ (= 2 A X B for symmetric A, B). Stationarity
// on U says X is the entropic optimal transport plan (sinkhorn.h) for the score K + λ G(X):
//
//   X = Π(S),  S = K + λ G(X),     Π(S) = argmax_{X ∈ U} ⟨S, X⟩ + (1/γ) H(X)  (optimal transport, cost −S).   (1)
//
// Uniqueness. The Hessian of F on U is λ G − (1/γ) diag(1/X) and X_ij ≤ 1, so F is strictly concave, and (1) has
// exactly one solution, when λ γ ‖G‖₂ < 1 (‖G‖₂ ≤ 2 ‖A‖₂ ‖B‖₂). Otherwise the relaxation may have several
// local maxima (graph automorphisms make them equally good ones): the solver follows the solution from the
// concave regime (below) and returns the fixed point it reaches, a local maximum, flagged kNotCertified.
//
// Forward (SolveGraphMatch):
//   - continuation in γ (graduated assignment, Gold & Rangarajan 1996): γ_k = γ / 2^k from the largest k with
//     λ γ_k ‖G‖₂ ≤ 1/2, where F is concave, up to γ, each stage warm-starting the next;
//   - within a stage, entropic mirror ascent, i.e. the damped fixed point S ← S + s (K + λ G(Π(S)) − S), each
//     Π a Sinkhorn projection solved to machine precision; s halves when the fixed-point residual grows;
//   - in the last stage, Newton–Krylov steps on the fixed-point equation Φ(S) = S − K − λ G(Π(S)) = 0: GMRES on
//     (I − λ G J) δ = −Φ(S), J = DΠ(S) (TransportJacobian, one factorisation per step), for quadratic
//     convergence to machine precision.
// The residual reported is ‖X − Π(K + λ G(X))‖∞ (0 at a fixed point). A run that ends above `tolerance`
// within the iteration limits returns its last iterate (a feasible X) with kNotConverged.
//
// Backward (GraphMatchVjp): differentiating (1), dX = J (dS_ext + λ G(dX)) with dS_ext = dK + λ(dA X B +
// dAᵀ X Bᵀ + A X dB + Aᵀ X dBᵀ). For V = dL/dX solve (I − λ G J) w = V (GMRES; G and J are self-adjoint), then
// z = J w = dL/dS and
//
//   dL/dK = z,   dL/dA = λ (z Bᵀ Xᵀ + X Bᵀ zᵀ),   dL/dB = λ (Xᵀ Aᵀ z + zᵀ Aᵀ X).
//
// (Gould et al., DDN TPAMI 2022, Prop. 4.5 applied to the fixed point; never through the iterations.) Where
// I − λ G J is singular (a bifurcation of the fixed point) GMRES does not converge: the gradient is its
// least-squares iterate and kNonRegular is set.
//
// Storage: row-major, X_ij at X[i·N' + j]; A, B likewise.
#pragma once

#include <cstdint>

#include "ddn/status.h"
#include "nodes/alignment/sinkhorn.h"

namespace ddn::alignment {

struct GraphMatchOptions {
  // Stop when ‖X − Π(K + λ G(X))‖∞ ≤ tolerance.
  double tolerance = 1e-14;
  // Fixed-point iterations per continuation stage, and Newton–Krylov steps of the last stage.
  int max_fixed_point_iterations = 500;
  int max_newton_steps = 20;
  // Intermediate stages stop at this residual.
  double stage_tolerance = 1e-6;
  // The last stage switches from fixed-point to Newton–Krylov steps below this residual (or when the fixed point
  // contracts slower than `slow_rate` per iteration).
  double newton_start = 1e-6;
  double slow_rate = 0.5;
  // GMRES: relative residual and iteration limit (per solve).
  double krylov_tolerance = 1e-14;
  int max_krylov_iterations = 400;
  // The inner optimal transport solves.
  SinkhornOptions sinkhorn;

  // Throws InvalidInput naming the first invalid field.
  void Validate() const;
};

struct GraphMatchReport {
  double residual = 0;  // ‖X − Π(K + λ G(X))‖∞
  int fixed_point_iterations = 0;
  int newton_steps = 0;
  int stages = 0;
  bool converged = false;  // residual ≤ tolerance
  bool concave = false;    // λ γ ‖G‖₂ < 1: the answer is the unique maximiser
};

// Solves one problem: K (N×N'), A (N×N), B (N'×N') → X (N×N').
GraphMatchReport SolveGraphMatch(const double* K, const double* A, const double* B, int64_t N, int64_t Np,
                                 double lambda, double gamma, const GraphMatchOptions& options, double* X);

// dL/dK (N×N'), dL/dA (N×N), dL/dB (N'×N') at a solution X for V = dL/dX; any output may be nullptr. Sets
// kNonRegular on `status` when the linear system is singular.
void GraphMatchVjp(const double* A, const double* B, const double* X, int64_t N, int64_t Np, double lambda,
                   double gamma, const GraphMatchOptions& options, const double* V, double* dK, double* dA, double* dB,
                   ProblemStatus* status);

// An upper bound of ‖G‖₂ for G(Y) = A Y B + Aᵀ Y Bᵀ: 2 ‖A‖₂ ‖B‖₂ (spectral norms by power iteration).
double QuadraticTermNorm(const double* A, const double* B, int64_t N, int64_t Np);

}  // namespace ddn::alignment
