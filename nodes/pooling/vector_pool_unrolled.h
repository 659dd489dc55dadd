// nodes/pooling/vector_pool_unrolled.h: robust vector pooling differentiated through its local iterations (the
// `unrolled` and `truncated:K` gradient modes of the `robust_vector_pool` node; ddn/gradient_mode.h).
//
// The forward (pooling_solvers.h) runs a local solve from one or several starts and returns the best answer.
// What these modes differentiate is the local solve that produced the answer, the way an automatic-
// differentiation framework would see it: its start y₀ (a function of x and w), then its steps
//
//   Newton  y_{t+1} = y_t − H(y_t)⁻¹ g(y_t)            (when H = ∇²f is positive definite)
//   IRLS    y_{t+1} = y_t − g(y_t) / S(y_t)            (otherwise, or when a Newton step raised f)
//
// with f(y) = Σ_i w_i φ(‖y − x_i‖), g = ∇f = Σ_i w_i ψ_i r_i, S = Σ_i w_i ψ_i (r_i = y − x_i, ψ = φ'/‖r‖). The
// branch taken at each step (Newton or IRLS, a descent test's rejection, the stopping step) is recorded and
// held fixed, as a framework's trace would be; the other starts (the losing local solves) do not enter.
//
// Reverse mode (VectorPoolUnrolledVjp), for ȳ_{t+1}, with φ written as P(s) of s = ‖r‖² (penalties.h's
// PenaltyOfSquare; P', P'', P''' in closed form), ∇φ = 2P'r, ∇²φ = 2P'I + 4P''rrᵀ and
// ∇³φ[a, b, ·] = 4P''((aᵀb) r + (rᵀb) a + (rᵀa) b) + 8P'''(rᵀa)(rᵀb) r:
//
//   Newton  u = H⁻¹ȳ_{t+1}, s = H⁻¹g:   e_i = −w_i∇²φ_i u + w_i∇³φ_i[u, s, ·],   ȳ_t = Σ_i w_i∇³φ_i[u, s, ·]
//           (= ȳ_{t+1} + Σ e_i, since Σ w_i∇²φ_i u = ȳ_{t+1}),   w̄_i += −uᵀ∇φ_i + uᵀ∇²φ_i s
//   IRLS    a = ȳ_{t+1}/S, β = ȳ_{t+1}ᵀg/S²:  e_i = −w_i∇²φ_i a + 4β w_i P''_i r_i,   ȳ_t = ȳ_{t+1} + Σ e_i,
//           w̄_i += −ψ_i aᵀr_i + β ψ_i
//   both    x̄_i −= e_i (r_i = y − x_i)
//
// and at the start: the coordinate-wise median picks one point per coordinate (x̄_{i_k,k} += ȳ₀_k), the weighted
// mean spreads ȳ₀ (x̄_i += w_i ȳ₀/W, w̄_i += (x_i − y₀)ᵀȳ₀/W), a data-point start passes it to that point.
// `unrolled` runs back through every step and the start; `truncated:K` through the last K steps only (y_{T−K}
// a constant; K ≥ T is the same as unrolled). Without a line of IRLS steps the Newton steps converge
// quadratically, so on a converged solve the unrolled gradient is the implicit one to rounding; truncated:K
// differs from it by how far y_{T−K} was from the answer.
//
// Maps without a local iteration: the quadratic penalty's closed form (the weighted mean) and the truncated
// quadratic's inlier-mean iteration y ← mean of {x_i : ‖y − x_i‖ < α}, whose steps do not depend on the previous
// iterate except through the (piecewise constant) inlier set: every mode gives the derivative of the final mean.
// D = 1 is solved by the scalar solvers (bracketed Newton, exact sweeps, branch and bound), not by these
// iterations: refused with InvalidInput (use implicit).
//
// Cost: the backward re-runs the forward (to find the winning start; Solve/Backward are stateless) and replays
// that local solve (T passes over the points), then one pass per differentiated step; the tape holds the T + 1
// iterates (D values each) and the step kinds.
#pragma once

#include <cstdint>
#include <vector>

#include "ddn/gradient_mode.h"
#include "ddn/status.h"
#include "nodes/pooling/pooling_solvers.h"

namespace ddn::pooling {

// The replayed local solve of the answer.
struct VectorPoolTape {
  enum Map { kLocal, kInlierMean, kClosedForm };
  Map map = kLocal;
  VectorStart start;                  // where the local solve started (kLocal)
  std::vector<int64_t> median_index;  // kMedian: per coordinate k, the point i with x_i[k] = y₀[k]
  int64_t d = 0;
  std::vector<double> iterates;  // (T + 1)·D: y₀ … y_T (kLocal), or the answer (other maps)
  std::vector<char> newton;      // T: 1 if step t was a Newton step, 0 if an IRLS step
  bool converged = true;         // the replay stopped on its own test (not at the iteration cap)
  int steps() const { return static_cast<int>(newton.size()); }
};

// Replays the local solve that gave the answer y of SolveVectorPool(problem, ..., options, &start) from that
// start. Throws NumericalFailure if the replay does not end at y (to 1e-8 relative), InvalidInput for D = 1.
void RecordVectorPoolSolve(const PoolingProblem& problem, const VectorStart& start, const double* y,
                           VectorPoolTape* tape);

// The start y₀ of the tape as a function of the problem's x and w (with the tape's choices held fixed).
void VectorPoolStartOf(const PoolingProblem& problem, const VectorPoolTape& tape, double* y0);

// y_T from y_first = y_{first} by the tape's steps first … T−1 (their kinds held fixed), for x and w of
// `problem` (the finite-difference tests differentiate this map).
void ReplayVectorPoolSteps(const PoolingProblem& problem, const VectorPoolTape& tape, int first, const double* y_first,
                           double* y_out);

// dx (N·D) += and dw (N, may be nullptr) += the reverse mode of the last `steps` steps for v = dL/dy_T; with
// steps ≥ T, also through the start.
void VectorPoolUnrolledVjp(const PoolingProblem& problem, const VectorPoolTape& tape, int steps, const double* v,
                           double* dx, double* dw);

// The node's backward in a non-implicit mode: re-solves (for the start), records, and runs the VJP.
// kNotConverged on status if the replay hit its iteration cap.
void VectorPoolBackwardInMode(const PoolingProblem& problem, const PoolingOptions& options, const double* y,
                              const GradientMode& mode, const double* v, double* dx, double* dw, ProblemStatus* status);

}  // namespace ddn::pooling
