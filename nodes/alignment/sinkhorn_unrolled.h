// nodes/alignment/sinkhorn_unrolled.h: optimal transport differentiated through its Sinkhorn iterations (the
// `unrolled` and `truncated:K` gradient modes of the `optimal_transport` node; ddn/gradient_mode.h).
//
// The node's own forward (sinkhorn.h) mixes ε-scaling stages, over-relaxed sweeps and Newton steps; what an
// automatic-differentiation framework would unroll is the plain algorithm, so that is what these modes
// differentiate: log-domain Sinkhorn at the given γ (Cuturi 2013; Peyré & Cuturi, "Computational Optimal
// Transport", 2019, Remark 4.23), from g⁰ = 0, one sweep k = 1 … T being
//
//   f^k_i = log r_i − log Σ_j exp(g^{k−1}_j − γ M_ij)        (rows exact)
//   g^k_j = log c_j − log Σ_i exp(f^k_i − γ M_ij)            (then columns exact),
//
// and the plan P = exp(f^T_i + g^T_j − γ M_ij). It stops at the sweep whose row marginal error (the columns are
// exact after each sweep) is ≤ tolerance·Σr, when it is ≤ acceptable_tolerance·Σr and has not improved for
// `stall_sweeps` sweeps (the rounding floor), or at max_sweeps (not converged). On converged solves this P is the
// node's P to rounding, and its reverse mode is the implicit gradient up to the contraction left after T sweeps.
//
// Reverse mode (SinkhornUnrolledVjp), for V = dL/dP and S = V ∘ P: f̄ = S1, ḡ = Sᵀ1, M̄ = −γS, then for
// k = T, T−1, … (the last K sweeps when truncated, older potentials constants), with the half-sweep plans
// Q^k = exp(f^k + g^k − γM) (columns sum to c) and R^k = exp(f^k + g^{k−1} − γM) (rows sum to r):
//
//   g-update:  c̄_j += ḡ_j / c_j,   f̄_i −= Σ_j Q^k_ij ḡ_j / c_j,   M̄_ij += γ Q^k_ij ḡ_j / c_j
//   f-update:  r̄_i += f̄_i / r_i,   ḡ_j  = −Σ_i R^k_ij f̄_i / r_i,   M̄_ij += γ R^k_ij f̄_i / r_i.
//
// The tape holds the potentials only, (T + 1)·(H + W) doubles per problem; Q^k and R^k are recomputed from them
// and M in the reverse sweep (two exponential passes over H·W per sweep, as in the forward), so the memory is
// O(T·(H + W) + H·W) rather than an autodiff framework's O(T·H·W), and the time about twice the recorded forward.
//
// Storage: row-major as in sinkhorn.h. r and c are the (normalised) marginals the solve uses; r̄ and c̄ are the
// partial derivatives of the unrolled map with respect to them (the node composes them with its normalisation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ddn::alignment {

struct UnrolledSinkhornOptions {
  // Stop when the row marginal error max_i |(P1)_i − r_i| ≤ tolerance · Σr (columns are exact after a sweep).
  double tolerance = 4e-16;
  // Stop, converged, when the error is ≤ acceptable_tolerance · Σr and has not reached a new minimum for this
  // many sweeps (the rounding floor).
  int stall_sweeps = 20;
  double acceptable_tolerance = 1e-10;
  // At most this many sweeps (the tape then reports converged = false).
  int max_sweeps = 20000;

  // Throws InvalidInput naming the first invalid field.
  void Validate() const;
};

// The recorded iteration: g⁰ … g^T and f¹ … f^T (f⁰ is stored as zeros so that index k is sweep k).
struct SinkhornTape {
  int64_t H = 0, W = 0;
  std::vector<double> f, g;   // (T + 1)·H and (T + 1)·W, sweep k at offset k·H, k·W
  int sweeps = 0;             // T
  double marginal_error = 0;  // the final row marginal error / Σr
  bool converged = false;     // reached the tolerance, or a rounding floor ≤ acceptable_tolerance
  size_t Bytes() const { return (f.size() + g.size()) * sizeof(double); }
};

// Runs the iteration above for one problem, recording every sweep's potentials into `tape`, and writes the plan
// into P (H×W; may be nullptr).
void RecordSinkhorn(const double* M, const double* r, const double* c, int64_t H, int64_t W, double gamma,
                    const UnrolledSinkhornOptions& options, SinkhornTape* tape, double* P);

// Reverse mode through the last `steps` sweeps of the tape (steps = tape.sweeps: unrolled; fewer: truncated),
// for V = dL/dP (H×W). Writes dM (H×W), dr (H), dc (W); any may be nullptr.
void SinkhornUnrolledVjp(const double* M, const double* r, const double* c, double gamma, const SinkhornTape& tape,
                         int steps, const double* V, double* dM, double* dr, double* dc);

}  // namespace ddn::alignment
