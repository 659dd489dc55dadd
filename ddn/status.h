// ddn/status.h: what happened to one problem of a batch.
//
// A declarative node solves B independent problems. Each gets a ProblemStatus: a set of flags that
// say how its answer (forward) and its gradient (backward) should be read, the optimality residual
// the forward solve reached, and a short human-readable note. Flags are not errors: the answer is
// finite and usable, and the flag says in which sense. Errors that stop a call are exceptions
// (error.h).
//
//   kNonRegular    H (or the KKT matrix) is singular or ill-conditioned at the solution, or A is rank
//                  deficient: the gradient is the minimum-norm least-squares solution of the implicit
//                  system (docs/design.md §1), not a unique derivative.
//   kDegenerate    an active inequality has a (near) zero multiplier, or more constraints are active
//                  than there are variables: y(x) is not differentiable there; the gradient given is
//                  the one of the active set as identified (one element of the generalised Jacobian).
//   kNonSmooth     the objective or constraint set is not twice differentiable at the solution
//                  (Huber at |z| = α, the truncation threshold, an L∞ corner): one-sided derivatives.
//   kNonUnique     the minimiser is not unique (projecting 0 onto a sphere, a flat objective): one
//                  minimiser was chosen, as documented by the node.
//   kNotCertified  a non-convex problem whose answer is a local minimum without a global certificate.
//   kAllOutliers   robust pooling with every point beyond the penalty's reach (H = 0).
//   kNotConverged  an iterative forward solve stopped at its iteration limit short of its tolerance: the answer is
//                  the last iterate (finite and feasible), `residual` says how far from optimal it is, and the
//                  gradient is that of the optimality conditions evaluated there (graph_match).
//   kUnverified    the generic engine (ddn/generic_solver.h) could not verify that y is a local minimum to
//                  full accuracy: the second-order condition could not be checked or a direction of negative
//                  curvature could not be escaped, or the optimality residual stalled above the converged
//                  level (status.residual says how far). Treat y as approximate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddn {

enum StatusFlag : uint32_t {
  kNonRegular = 1u << 0,
  kDegenerate = 1u << 1,
  kNonSmooth = 1u << 2,
  kNonUnique = 1u << 3,
  kNotCertified = 1u << 4,
  kAllOutliers = 1u << 5,
  kNotConverged = 1u << 6,
  kUnverified = 1u << 7,
};

struct ProblemStatus {
  uint32_t flags = 0;
  // Optimality residual of the forward solve (max-norm of the KKT conditions, scaled), or -1 if the
  // node did not measure it.
  double residual = -1.0;
  // Iterations the forward solve took (0 for closed forms).
  int iterations = 0;
  // Free text: why a flag was set. Empty when all is well.
  std::string note;

  bool ok() const { return flags == 0; }
  void Set(StatusFlag flag, const std::string& why);
};

// Names of the flags set: {"non_regular", "degenerate", ...}; empty if none.
std::vector<std::string> FlagNames(uint32_t flags);

}  // namespace ddn
