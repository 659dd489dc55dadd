// ddn/generic_unrolled.h: the generic engine's `unrolled` and `truncated:K` gradient modes (ddn/gradient_mode.h):
// reverse mode through a replay of Newton's method (unconstrained nodes) or of Newton–KKT iterations (nodes with
// equality and inequality constraints) on a declarative node.
//
// The implicit backward (generic_solver.h) differentiates the optimality conditions at the answer. These modes
// differentiate the iteration instead, as an automatic-differentiation framework would differentiate a solver loop
// written out in full. The forward is stateless, so the iteration is a replay, in the backward, from the node's
// InitialGuess y₀. Its state is u = (y, λ), λ ∈ ℝ^{p+q} the multipliers of all constraints (zero outside the
// working set W_t of step t; no λ without constraints). With L_W(y, λ; x) = f(x, y) + Σ_{i∈W} λ_i c_i(x, y)
// (c = (h, g): equalities h = 0, inequalities g ≤ 0; the sign convention of generic_solver.h), one step is
//
//   F_t = [∇_y f + A_Wᵀ λ_W;  c_W] = ∇_(y,λ_W) L_W,    K_t = [H_L + τ_t I,  A_Wᵀ;  A_W,  0],
//   H_L = ∇²_yy f + Σ_{i∈W} λ_i ∇²_yy c_i,   A_W = ∂c_W/∂y,
//   (y, λ_W)_{t+1} = (y, λ_W)_t − α_t K_t⁻¹ F_t,   then λ_{t+1,i} = 0 for i outside W_t or cleared at step t.
//
// With α = 1 and τ = 0 this is the engine's Newton–KKT step [H_L A_Wᵀ; A_W 0][d; λ⁺] = −[∇f; c_W] (the new
// multipliers λ⁺ directly); without constraints it is Newton's method y_{t+1} = y_t − α_t (H + τ_t I)⁻¹ ∇f.
// The branches — W_t, which multipliers are cleared, τ_t and α_t — are held fixed in the reverse sweep, as a
// framework's trace would hold them. They are chosen by one of three replays:
//
//   newton      (no constraints) Newton's method: τ_t the inertia correction (0, or 1e-8·max|diag H| × 8^k until
//               H + τI is positive definite), α_t = 1 for τ_t = 0 and a step below 1e-6 of y's scale (the region
//               of quadratic convergence), else the largest of 1, ½, ¼, … passing the Armijo test on f.
//   active_set  (constraints; tried first) the engine's first phase: Newton–KKT with full steps (α = 1, τ = 0) and
//               primal–dual active-set updates, from W₀ = the equalities and the inequalities active (1e-8) or
//               violated at y₀, λ₀ = the least-squares multipliers there (inequalities' clipped at 0); after each
//               step an inequality whose new multiplier pulls the wrong way (force below −1e3 ε of the gradient's
//               scale) leaves W, one with a slightly negative multiplier stays with λ cleared to 0, and a violated
//               one joins with λ = 0. It gives up on the wrong inertia of K (no minimum on the tangent space), a
//               step above 1e3 of y's scale, or a cycle of working sets.
//   fixed_set   (constraints; when active_set gives up or ends elsewhere) W_t = W*, the active set at the answer
//               as the implicit backward identifies it (|g_k| ≤ active_tolerance·‖∇g_k‖₁·‖y‖∞, multipliers that
//               pull the wrong way dropped), for every step, from y₀ and the least-squares multipliers on W* at
//               y₀; τ_t shifts H_L until K has the inertia (m, |W|, 0) of a minimum on the tangent space (checked
//               by the Schur complement A_W (H_L + τI)⁻¹ A_Wᵀ when H_L + τI is positive definite, else by a dense
//               eigendecomposition), α_t by Armijo's test on the ℓ₁ merit function
//               f + μ Σ_{i∈W} |c_i|, μ = 2 max|λ⁺| (Nocedal & Wright §18.3; α = 1 when the step is not a descent
//               direction for it, and in the region of quadratic convergence as above).
//
// Every replay stops after a step below 1e-12 of y's scale with τ = 0 (and, for active_set, an unchanged working
// set), or when the step stalls for three steps below 1e-10 (rounding). It must end at the forward's answer (to 1e-7
// of y's scale), else the next replay is tried, and NumericalFailure after the last: the forward's own path may
// differ (its simplified steps, the augmented Lagrangian, escapes from saddles), its end point may not.
//
// Reverse mode of one step. With u = (y, λ_W), s = K⁻¹F, the cotangent ū' of u_{t+1} (cleared multipliers' entries
// set to 0) and w = K⁻¹ū' (K is symmetric):
//
//   ū = ū' − α ∇²_uu L_W w + α T_u(w, s),     x̄ += −α ∇²_xu L_W w + α T_x(w, s),
//   T(w, s)_z = Σ_ij w_i s_j ∂³L_W/∂u_i∂u_j∂z   (z = u or x)  =  d/dh [∇²_{u,(u,x)} L_W w](u + h s) at h = 0,
//
// because ∂F/∂u = ∇²_uu L_W (τ is a constant of the branch) and ∂K/∂u = ∂³L_W. Here ∇²_uu L_W w =
// (H_L w_y + A_Wᵀ w_λ, A_W w_y) and ∇²_xu L_W w = B_Lᵀ w_y + C_Wᵀ w_λ, B_L = ∇²_yx L_W, C_W = ∂c_W/∂x. The third
// derivatives T are what make the unrolled gradient differ from the implicit one (without them every Newton step
// would forget its input). The oracle gives exact second derivatives only, so T is the derivative of the exact
// ∇²L_W w along s by central differences with Richardson extrapolation (steps δ and δ/2 along s/‖s_y‖∞,
// δ = 2e-4·max(‖y_t‖∞, ‖y₀‖∞, ‖y_T‖∞), or 2e-4·‖s_y‖∞ if those are 0; error O(δ⁴) + O(ε/δ), about 1e-11 relative
// on smooth problems; L_W is linear in λ, so a step that moves λ only is differenced exactly). T is proportional to
// the step s, so it vanishes as the iteration converges.
//
// `unrolled` runs back through every replayed step; `truncated:K` through the last K (u_{T−K} a constant). The start
// (y₀ = InitialGuess(x), plain double code, and λ₀) is a constant in both: its derivative is not available to the
// engine. Newton's quadratic convergence makes its influence on y_T vanish on converged solves, where the unrolled
// gradient equals the implicit one to rounding. With the working set held fixed, an inequality at its bound with a
// zero multiplier (x on the boundary) is differentiated as active, as the implicit backward does (its one-sided
// derivative; kDegenerate there).
//
// Refused: more than 2000 variables (dense Hessians; InvalidInput), and NumericalFailure when no replay ends at
// the answer or K is singular on the working set (dependent active constraint gradients, e.g. more active
// constraints than variables): use implicit. Cost: the replay is T Newton(-KKT) iterations (a dense factorisation
// of the (m + |W|)² matrix each, and an inertia check), the reverse sweep five
// evaluations of the second derivatives of f and the constraints per step; the tape holds the T + 1 iterates
// (m + p + q values each), the working sets, step lengths and shifts.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "ddn/generic_solver.h"
#include "ddn/gradient_mode.h"
#include "ddn/status.h"

namespace ddn {

// The replayed iteration.
struct GenericNewtonTape {
  enum Replay { kNewton, kActiveSet, kFixedSet };
  Replay replay = kNewton;
  int m = 0;                              // variables
  int nc = 0;                             // constraints p + q (equalities first)
  std::vector<double> iterates;           // (T + 1)·m: y₀ … y_T
  std::vector<double> multipliers;        // (T + 1)·nc: λ₀ … λ_T (zero outside the working set)
  std::vector<std::vector<int>> working;  // T working sets W_t (sorted constraint indices)
  std::vector<std::vector<char>> keep;    // T: per entry of W_t, 0 if its multiplier is cleared after the step
  std::vector<double> alpha;              // T step lengths α_t
  std::vector<double> tau;                // T inertia shifts τ_t
  bool converged = false;                 // stopped on its own test, not at max_newton_iterations
  int steps() const { return static_cast<int>(alpha.size()); }
  // "newton", "active_set", "fixed_set".
  const char* ReplayName() const;
  // The memory the tape holds (what the reverse sweep keeps for all steps), in bytes.
  int64_t Bytes() const;
};

// Process-wide totals over every replay GenericBackwardInMode has run (benchmarks read them; relaxed atomics, so
// they cost nothing measurable): problems replayed per kind of replay, steps, and the largest tape and the largest
// KKT matrix ((m + |W|)² doubles; the replay holds a few of that size at a time) of one problem.
struct GenericUnrolledCounters {
  std::atomic<int64_t> problems[3] = {0, 0, 0};  // indexed by GenericNewtonTape::Replay
  std::atomic<int64_t> steps{0};
  std::atomic<int64_t> max_tape_bytes{0};
  std::atomic<int64_t> max_kkt_bytes{0};
  void Reset();
};
GenericUnrolledCounters& GenericUnrolledTotals();

// Replays the iteration from y0 (m values) on the oracle's problem and checks that it ends at y_answer.
// Throws InvalidInput (too many variables) or NumericalFailure (no replay ends at the answer).
void RecordGenericNewton(const DerivativeOracle& oracle, const GenericSolverOptions& options, const double* y0,
                         const double* y_answer, GenericNewtonTape* tape);

// y_T from the tape's u_first = (y_first, λ_first) (held constant) by the tape's steps first … T−1 with their
// branches held fixed, at the oracle's current x (the map the truncated modes differentiate; the
// finite-difference tests evaluate it at perturbed x).
void ReplayGenericNewtonSteps(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int first, double* y_out);

// dx (n values) += the reverse mode of the tape's last `steps` steps for v = dL/dy_T (m values).
void GenericUnrolledVjp(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int steps, const double* v,
                        double* dx);

// Both, for a node's backward in a non-implicit mode; kNotConverged on status if the replay hit its cap.
void GenericBackwardInMode(const DerivativeOracle& oracle, const GenericSolverOptions& options,
                           const GradientMode& mode, const double* y0, const double* y_answer, const double* v,
                           double* dx, ProblemStatus* status);

}  // namespace ddn
