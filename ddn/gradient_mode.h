// ddn/gradient_mode.h: how a backward pass differentiates a node whose forward is iterative.
//
// A declarative node's backward is, by default, implicit: it differentiates the optimality (or fixed-point)
// conditions at the answer (implicit function theorem; docs/design.md §1), which costs one linear solve and
// memory independent of how many iterations the forward took. Nodes whose forward is an iteration
// u_{k+1} = Φ(u_k; x), k = 0 … T−1 (qp's interior-point method, deq_tanh's Anderson acceleration, the graph's
// FixedPointLayer) can also be differentiated the way an automatic-differentiation framework would:
//
//   implicit       vᵀ Dy from the conditions at the answer (the default, and the only mode of other nodes);
//   unrolled       reverse mode through all T recorded iterations: the adjoint ū_k = (∂Φ/∂u_k)ᵀ ū_{k+1}
//                  is run back to u_0 and every step's x̄ += (∂Φ/∂x)ᵀ ū_{k+1} is summed; memory grows with T;
//   truncated:K    the same through the last K iterations only (u_{T−K} treated as a constant).
//
// The mode travels in RunOptions::backward (ddn/batch.h) and reaches a node's Backward as
// ProblemData::gradient_mode. A node opts in by returning true from Node::HasIterativeForward(); ddn::Backward
// refuses a non-implicit mode for every other node (InvalidInput, CLI exit 2).
//
// Who has the modes: qp (interior-point iterations), deq_tanh and the graph's FixedPointLayer (Anderson steps),
// optimal_transport (plain Sinkhorn sweeps, nodes/alignment/sinkhorn_unrolled.h), robust_vector_pool (the winning
// start's Newton/IRLS steps with exact third derivatives, nodes/pooling/vector_pool_unrolled.h; D ≥ 2), and every
// ddn::DeclarativeNode whose backward is the generic one, as well as any node on the generic path (`--generic`):
// reverse mode through a replay of Newton's method (unconstrained) or of Newton–KKT iterations (equality and
// inequality constraints; the working sets held fixed) from the node's InitialGuess (ddn/generic_unrolled.h).
//
// How an iterative node plugs in (what the nodes above do):
//   1. write the solver so that it can record, per iteration, what its adjoint needs (the iterate, the
//      factorisations, step lengths, the branch taken) into a tape owned by the caller;
//   2. in Backward, when problem.gradient_mode is not implicit, re-run the same deterministic solve from the
//      same inputs with the tape on (Solve/Backward are stateless, so the tape is rebuilt, not kept between
//      calls: its memory is the unrolled mode's cost and is freed when Backward returns), then run the
//      adjoint of the recorded steps, newest first, stopping after K steps when truncated;
//   3. override HasIterativeForward() to return true, and test the adjoint against finite differences of the
//      fixed-iteration forward and against the implicit gradient on converged solves.
// A Newton step's adjoint needs the third derivatives of the objective contracted with the step (without them
// every Newton step forgets its input and unrolling returns the implicit gradient of the previous iterate); the
// derivative of a start that depends on x belongs to the unrolled chain when the solver can provide it.
#pragma once

#include <string>

namespace ddn {

struct GradientMode {
  enum Kind { kImplicit, kUnrolled, kTruncated };
  Kind kind = kImplicit;
  int steps = 0;  // kTruncated: the number K ≥ 1 of last iterations differentiated; unused otherwise

  bool implicit() const { return kind == kImplicit; }
  // The number of recorded iterations to run back through out of `recorded`: all of them (unrolled) or
  // min(K, recorded) (truncated); 0 for implicit.
  int StepsOf(int recorded) const;
  // "implicit", "unrolled", "truncated:K".
  std::string ToString() const;
  // Parses the strings ToString() makes; throws InvalidInput naming the text otherwise.
  static GradientMode Parse(const std::string& text);
};

}  // namespace ddn
