// ddn/generic_unrolled.h: the generic engine's `unrolled` and `truncated:K` gradient modes (ddn/gradient_mode.h):
// reverse mode through Newton's method on an unconstrained declarative node.
//
// The implicit backward (generic_solver.h) differentiates the optimality condition ∇_y f(x, y) = 0 at the answer.
// These modes differentiate the iteration instead, as an automatic-differentiation framework would differentiate
// a Newton loop written out in full. The iteration is a replay, in the backward, of the engine's unconstrained
// Newton method from the node's InitialGuess y₀ (the forward is stateless, so it is not recorded there):
//
//   y_{t+1} = y_t + α_t d_t,   d_t = −(H_t + τ_t I)⁻¹ g_t,   g_t = ∇_y f(x, y_t),  H_t = ∇²_yy f(x, y_t)
//
// with τ_t the inertia correction (0, or 1e-8·max|diag H| × 8^k until H + τI is positive definite), α_t = 1 for
// τ_t = 0 and a step below 1e-6 of y's scale (the region of quadratic convergence, where the engine takes full
// steps too), else the largest of 1, ½, ¼, … that passes the Armijo test f(y + αd) ≤ f(y) + 10⁻⁴ α gᵀd. It stops
// after a step below 1e-12 of y's scale. The branches (τ_t, α_t) are held fixed, as a framework's trace would be.
// The replay must end at the forward's answer (to 1e-7 of y's scale), else NumericalFailure: the forward's path may
// differ (its simplified-Newton steps, escapes from saddles), its end point may not.
//
// Reverse mode of one step, for ȳ_{t+1}, with K = H + τI, u = K⁻¹ȳ_{t+1} and s = K⁻¹g (so d = −s):
//
//   ȳ_t = ȳ_{t+1} − α H u + α T_y(u, s),     x̄ += −α Bᵀu + α T_x(u, s),     B = ∇²_yx f,
//   T(u, s)_z = Σ_ij u_i s_j ∂³f/∂y_i∂y_j∂z   (z = y or x)  =  d/dh [(H u, Bᵀu)](y + h s) at h = 0.
//
// The third derivatives T are what make the unrolled gradient differ from the implicit one (without them, every
// Newton step would forget its input: ∂y_{t+1}/∂y_t = (1 − α)I). The oracle gives exact second derivatives only,
// so T is the derivative of the exact H u and Bᵀu along s by central differences with Richardson extrapolation
// (steps δ and δ/2, δ = 2e-4·max(‖y_t‖∞, ‖s‖∞) along s/‖s‖∞; error O(δ⁴) + O(ε/δ), about 1e-11 relative on smooth
// objectives). T is proportional to the step s, so it vanishes as the iteration converges.
//
// `unrolled` runs back through every replayed step; `truncated:K` through the last K (y_{T−K} a constant). The start
// y₀ = InitialGuess(x) is plain double code and is treated as a constant in both (its derivative is not available
// to the engine); Newton's quadratic convergence makes its influence on y_T vanish on converged solves, where the
// unrolled gradient equals the implicit one to rounding.
//
// Refused (InvalidInput): nodes with equality or inequality constraints (their solve is an active-set / augmented
// Lagrangian method, not replayed here: use implicit), and more than 2000 variables (dense Hessians). Cost: the replay is T Newton iterations (a dense
// factorisation of the m×m Hessian each), the reverse sweep one evaluation of g, H, B and four of H, B per step;
// the tape holds the T + 1 iterates (m values each) and the step lengths and shifts.
#pragma once

#include <vector>

#include "ddn/generic_solver.h"
#include "ddn/gradient_mode.h"
#include "ddn/status.h"

namespace ddn {

// The replayed Newton iteration.
struct GenericNewtonTape {
  int m = 0;
  std::vector<double> iterates;  // (T + 1)·m: y₀ … y_T
  std::vector<double> alpha;     // T step lengths α_t
  std::vector<double> tau;       // T inertia shifts τ_t
  bool converged = false;        // stopped on its own test, not at max_newton_iterations
  int steps() const { return static_cast<int>(alpha.size()); }
};

// Replays Newton's method from y0 (m values) on the oracle's objective and checks that it ends at y_answer.
// Throws InvalidInput for a constrained problem, NumericalFailure if the replay fails or ends elsewhere.
void RecordGenericNewton(const DerivativeOracle& oracle, const GenericSolverOptions& options, const double* y0,
                         const double* y_answer, GenericNewtonTape* tape);

// y_T from y_first = y_{first} by the tape's steps first … T−1 with their α and τ held fixed (the map the
// truncated modes differentiate; the finite-difference tests evaluate it at perturbed x).
void ReplayGenericNewtonSteps(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int first,
                              const double* y_first, double* y_out);

// dx (n values) += the reverse mode of the tape's last `steps` steps for v = dL/dy_T (m values).
void GenericUnrolledVjp(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int steps, const double* v,
                        double* dx);

// Both, for a node's backward in a non-implicit mode; kNotConverged on status if the replay hit its cap.
void GenericBackwardInMode(const DerivativeOracle& oracle, const GenericSolverOptions& options,
                           const GradientMode& mode, const double* y0, const double* y_answer, const double* v,
                           double* dx, ProblemStatus* status);

}  // namespace ddn
