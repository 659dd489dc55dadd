// nodes/optim/deq_solver.h: the fixed point z = tanh(Wz + x) of one deep-equilibrium cell (the `deq_tanh` node).
//
// A deep equilibrium model (Bai, Kolter & Koltun, "Deep Equilibrium Models", NeurIPS 2019) replaces a stack of
// weight-tied layers z_{l+1} = f(z_l, x) by its fixed point z* = f(z*, x). Here f(z, x) = tanh(Wz + x) with
// W (N×N) and x (N), vectors stored as Eigen column vectors (W column-major; the node maps its row-major input).
//
// Forward (SolveDeq), from z_0 = 0, stopping as soon as ‖f(z_k) − z_k‖∞ ≤ `tolerance`:
//   1. Anderson acceleration (type II, memory `window`, mixing β; Walker & Ni 2011): with the residuals
//      g_j = f(z_j) − z_j of the last iterates, α = argmin ‖Σ α_j g_j‖ s.t. Σ α_j = 1 (solved as
//      (GᵀG + ρI)a = 1, α = a / Σa, ρ = 1e-10·tr(GᵀG)/cols), z_{k+1} = Σ α_j ((1 − β) z_j + β f(z_j));
//   2. if it stagnates (no new best residual in 30 iterations, or blows up): Broyden's ("good") method on
//      g(z) = 0 from the best iterate, inverse Jacobian B_0 = −I updated by Sherman–Morrison;
//   3. if that fails too: damped Picard z ← ½ z + ½ f(z) from the best iterate.
// If none reaches the tolerance, NumericalFailure (which names the residual reached). tanh is 1-Lipschitz, so
// ‖W‖₂ < 1 makes f a contraction with a unique fixed point; when the forward converges without that
// certificate (‖W‖₂ estimated ≥ 1) the status says non_unique (another fixed point may exist).
//
// Backward, implicit (DeqImplicitVjp): with D = diag(1 − z²) (= tanh′ at the fixed point) and J = DW, the
// implicit function theorem gives dz = (I − J)⁻¹ D (dW z + dx), so for v = dL/dz
//
//   (I − J)ᵀ u = v,     x̄ = D u,     W̄ = (D u) zᵀ,
//
// solved directly (LU, N ≤ `direct_limit`, minimum-norm with status non_regular if I − J is singular) or by
// Anderson acceleration on u ← v + Jᵀu (converges when the spectral radius of J is below 1).
//
// Backward, unrolled / truncated:K (DeqUnrolledVjp): reverse mode through the recorded steps (ddn/gradient_mode.h):
// each Anderson step's adjoint runs through the mixing weights (the regularised least-squares solve included),
// Picard steps through their average, restarts through the copy, and every f(z_j) = tanh(Wz_j + x) adds to
// W̄ and x̄. Truncated: only the last K steps and the f(z_j), j ≥ T − K, they use; older iterates are constants.
// Broyden steps are not differentiated: a forward that needed the Broyden fallback gives NumericalFailure in
// these modes.
#pragma once

#include <Eigen/Core>
#include <string>
#include <vector>

#include "ddn/status.h"

namespace ddn::optim {

struct DeqOptions {
  int max_iterations = 200;  // per stage (Anderson, Broyden, damped Picard)
  double tolerance = 1e-13;  // ‖tanh(Wz + x) − z‖∞ at which the forward stops
  int window = 5;            // Anderson memory (iterates mixed), ≥ 1
  double beta = 1.0;         // Anderson mixing β ∈ (0, 1]
  enum BackwardSolver { kAuto, kDirect, kIterative };
  BackwardSolver backward_solver = kAuto;  // kAuto: direct for N ≤ direct_limit
  int direct_limit = 256;
  bool fallbacks = true;         // false: Anderson only (tests of the unrolled map)
  bool throw_on_failure = true;  // false: return the last iterate when no stage converges (tests)

  // Throws InvalidInput naming the field if a value is out of range.
  void Validate() const;
};

// One recorded step z_k → z_{k+1}.
struct DeqTapeStep {
  enum Kind { kAnderson, kPicard, kCopy, kBroyden };
  Kind kind = kAnderson;
  int first = 0;          // kAnderson: the window is iterates first … k
  Eigen::VectorXd alpha;  // kAnderson: mixing weights
  double beta = 1.0;      // kAnderson, kPicard: mixing
  double rho_scale = 0;   // kAnderson: ρ = rho_scale·tr(GᵀG)/cols
  int from = 0;           // kCopy: z_{k+1} = z_from
};
struct DeqTape {
  std::vector<Eigen::VectorXd> z, f;  // iterates z_0 … z_T and f(z_0) … f(z_T)
  std::vector<DeqTapeStep> steps;     // T steps
  size_t Bytes() const;
};

struct DeqResult {
  Eigen::VectorXd z;
  int iterations = 0;
  double residual = 0;  // ‖tanh(Wz + x) − z‖∞
  std::string solver;   // "anderson", "broyden" or "picard": the stage that converged
};

// Throws NumericalFailure if no stage converges. `tape`, if given, records every step.
DeqResult SolveDeq(const Eigen::MatrixXd& W, const Eigen::VectorXd& x, const DeqOptions& options,
                   DeqTape* tape = nullptr);

// ‖W‖₂ < 1 certifies a unique fixed point; returns an estimate of ‖W‖₂ (exact bound when it is below 1).
double SpectralNormEstimate(const Eigen::MatrixXd& W);

// Implicit VJP at the fixed point z: writes x̄ (N) and W̄ (N×N). Sets kNonRegular if I − J is singular.
void DeqImplicitVjp(const Eigen::MatrixXd& W, const Eigen::VectorXd& x, const Eigen::VectorXd& z,
                    const Eigen::VectorXd& v, const DeqOptions& options, Eigen::VectorXd* xbar, Eigen::MatrixXd* Wbar,
                    ProblemStatus* status);

// Unrolled VJP through the last `steps` recorded steps (all if steps ≥ T).
void DeqUnrolledVjp(const Eigen::MatrixXd& W, const DeqTape& tape, int steps, const Eigen::VectorXd& v,
                    Eigen::VectorXd* xbar, Eigen::MatrixXd* Wbar);

}  // namespace ddn::optim
