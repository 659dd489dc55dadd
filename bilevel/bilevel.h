// bilevel/bilevel.h: bi-level problems (hyperparameter optimisation) and their outer optimiser.
//
// A bi-level problem has an inner (lower-level) declarative problem and an outer (upper-level) loss:
//
//   w*(θ) = argmin_w  f(w, θ)          e.g. training loss + regulariser with hyperparameters θ > 0
//   L(θ)  = ℓ(w*(θ))                    e.g. the validation loss of the trained model
//
// The hypergradient comes from the inner problem's optimality condition ∇_w f(w*(θ), θ) = 0 and the
// implicit function theorem (Gould et al., "Deep Declarative Networks", TPAMI 2022, Prop. 4.3):
//
//   Dw*(θ) = −H⁻¹B,   H = ∇²_ww f (m×m),  B = ∇²_wθ f (m×k),
//   dL/dθ  = vᵀ Dw* = −Bᵀ H⁻¹ v,   v = ∇_w ℓ(w*),
//
// i.e. one solve with H per hypergradient (ddn::ImplicitVjp, ddn/implicit.h); the inner solver's
// iterations are never differentiated (no unrolling), so the inner solver may be anything that reaches
// the minimiser to machine precision. Hyperparameters are positive and optimised as x = log θ:
//
//   dL/dx_k = θ_k · dL/dθ_k.
//
// The outer optimiser (Optimize) is L-BFGS on x with box bounds lo ≤ x ≤ hi (projected: a coordinate at
// a bound whose gradient points outwards is frozen), a backtracking Armijo line search, and three
// stopping rules: projected gradient small relative to the loss, relative loss change tiny, step tiny.
// An answer with a hyperparameter frozen at a bound stops with the reason "at_bound" (its projected
// gradient is zero, the gradient itself is not: OptimizeResult::at_bound says which and grad_log keeps the
// unprojected value), and a hyperparameter at a bound is that bound exactly (not exp(log(bound))).
// Every evaluation of L costs one inner solve; `inner_solves` counts them. GridSearch evaluates L on a
// log-spaced grid of one hyperparameter (all θ_k equal) for comparison.
//
// Writing a problem: derive from bilevel::Problem and implement the inner solve, the blocks H and B and
// the outer loss (the built-in problems in problems.h do this in closed form). Problems whose H is large
// and sparse (image denoising) override HypergradientVjp with a sparse factorisation of the same formula.
// Or, for a few lines of code, write the inner problem as a declarative node (ddn/declarative.h) and
// wrap it with bilevel::NodeProblem (node_problem.h): H and B then come from nested Jets and the
// hypergradient from the node's implicit backward. bilevel/README.md has a complete example.
#pragma once

#include <Eigen/Core>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ddn/implicit.h"
#include "ddn/status.h"

namespace ddn::bilevel {

class Problem {
 public:
  virtual ~Problem() = default;

  // Short name: "ridge", "logistic", ...
  virtual std::string name() const = 0;
  // One name per hyperparameter θ_k: {"lambda"}, {"lambda[age]", "lambda[sex]", ...}.
  virtual std::vector<std::string> HyperparameterNames() const = 0;
  int NumHyperparameters() const { return static_cast<int>(HyperparameterNames().size()); }
  // Starting point θ₀ > 0 and box bounds on θ (the optimiser works on log θ within them).
  virtual Eigen::VectorXd InitialHyperparameters() const = 0;
  virtual Eigen::VectorXd LowerBounds() const = 0;
  virtual Eigen::VectorXd UpperBounds() const = 0;

  // Solves the inner problem at θ to near machine precision, typically warm-started from the previous
  // solution. Throws NumericalFailure if it cannot. Afterwards the functions below refer to w*(θ).
  virtual void SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) = 0;
  // w*(θ) of the last SolveInner.
  virtual const Eigen::VectorXd& InnerSolution() const = 0;
  // The outer loss ℓ(w*) and, if `grad_w` is given, v = ∇_w ℓ(w*).
  virtual double OuterLoss(Eigen::VectorXd* grad_w) const = 0;
  // H = ∇²_ww f and B = ∇²_wθ f at (w*, θ) (derivatives in θ, not in log θ).
  virtual ImplicitSystem InnerBlocks() const = 0;
  // dL/dθ = vᵀ Dw*(θ). Default: ddn::ImplicitVjp(InnerBlocks(), v). Sparse problems override it.
  virtual Eigen::VectorXd HypergradientVjp(const Eigen::VectorXd& v, ProblemStatus* status) const;

  // The report hook: what a tool shows of a problem without knowing its class.
  // Hyperparameter k's key as {family, member}: members of one family are reported together ("lambda": {"age": …,
  // "sex": …}); a hyperparameter of its own has an empty member. Default: {HyperparameterNames()[k], ""}.
  virtual std::pair<std::string, std::string> HyperparameterKey(int k) const;
  // Named values of the current solution beyond the outer loss (e.g. the validation accuracy).
  struct ReportValue {
    std::string name;
    double value = 0;
    bool integer = false;  // a count, printed without a fraction
  };
  virtual std::vector<ReportValue> ReportValues() const { return {}; }
  // Warnings about the data the problem was made from, one line each (e.g. a target with very many classes).
  virtual std::vector<std::string> Warnings() const { return {}; }
};

// One evaluation of the outer loss.
struct Evaluation {
  Eigen::VectorXd theta;       // θ
  double loss = 0;             // L(θ)
  Eigen::VectorXd grad_theta;  // dL/dθ
  Eigen::VectorXd grad_log;    // dL/d log θ = θ ⊙ dL/dθ
  ProblemStatus status;        // of the inner solve and the implicit backward
};

// Solves the inner problem at θ, evaluates L(θ) and (if `with_gradient`) the hypergradient.
Evaluation Evaluate(Problem* problem, const Eigen::VectorXd& theta, bool with_gradient = true);

struct OptimizerOptions {
  // Box bounds on θ, one entry per hyperparameter, 0 < lower < upper (empty: the problem's LowerBounds() and
  // UpperBounds()). A start outside them is an InvalidInput (no silent clamp).
  Eigen::VectorXd lower, upper;
  int max_iterations = 100;          // outer L-BFGS iterations
  int memory = 10;                   // L-BFGS pairs kept
  double gradient_tolerance = 1e-8;  // stop when ‖projected dL/d log θ‖∞ ≤ this · max(|L|, 1e-12)
  double loss_tolerance = 1e-13;     // stop when |L_prev − L| ≤ this · max(|L|, 1e-300)
  double step_tolerance = 1e-10;     // stop when ‖Δ log θ‖∞ ≤ this
  double max_step = 2.0;             // largest change of any log θ_k in one iteration (factor e²)
  double armijo = 1e-4;              // sufficient decrease constant of the line search
  int max_backtracks = 40;           // halvings of the step before giving up
  // Called after every accepted iterate (iteration 0 = the start); for progress reports.
  std::function<void(int iteration, const Evaluation&, int inner_solves)> on_iterate;
};

struct IterationRecord {
  int iteration = 0;
  Eigen::VectorXd theta;
  double loss = 0;
  double grad_norm = 0;  // ‖projected dL/d log θ‖∞
  int inner_solves = 0;  // cumulative
};

struct OptimizeResult {
  Eigen::VectorXd theta;                 // the answer
  double loss = 0;                       // L at the answer
  Eigen::VectorXd grad_log;              // dL/d log θ at the answer
  std::vector<IterationRecord> history;  // one per accepted iterate, from iteration 0
  int inner_solves = 0;                  // inner solves (= outer loss evaluations), line searches included
  int iterations = 0;
  // "gradient", "at_bound" (the projected gradient is zero because a hyperparameter is held at a bound against
  // its gradient), "loss change", "step", "line search", "max iterations".
  std::string stop_reason;
  // Per hyperparameter: −1 held at its lower bound, +1 at its upper bound (the gradient pointing outwards), 0 free.
  std::vector<int> at_bound;
  Eigen::VectorXd lower, upper;  // the bounds used
  double seconds = 0;            // wall time
  ProblemStatus status;          // of the answer's last evaluation
};

// Throws InvalidInput naming the hyperparameter unless 0 < lower_k < upper_k < ∞ for each (one entry each).
void CheckBounds(const Problem& problem, const Eigen::VectorXd& lower, const Eigen::VectorXd& upper);

// L-BFGS on log θ from `theta0` (the problem's InitialHyperparameters() if empty, clamped into the bounds). The
// problem is left solved at the answer (InnerSolution() is w* of the returned θ). Throws InvalidInput if
// `theta0` or the bounds are invalid (a start outside the bounds names the hyperparameter and its bounds).

OptimizeResult Optimize(Problem* problem, const OptimizerOptions& options = {},
                        const Eigen::VectorXd& theta0 = Eigen::VectorXd());

struct GridResult {
  std::vector<double> values;  // the grid of θ (every θ_k set to this value)
  std::vector<double> losses;  // L at each
  double best_value = 0;
  double best_loss = 0;
  int inner_solves = 0;
  double seconds = 0;
};

// L on `points` log-spaced values of a common θ in [lo, hi] (the problem's bounds when lo, hi ≤ 0:
// the largest lower and the smallest upper bound), solved from hi down to lo, each warm-started from the
// previous one. Leaves the problem solved at lo. `progress`, if given, is called after each point with the
// number done and the total.
GridResult GridSearch(Problem* problem, int points, double lo = 0, double hi = 0,
                      const std::function<void(int done, int total)>& progress = {});

}  // namespace ddn::bilevel
