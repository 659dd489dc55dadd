// ddn/finiteness.h: the batch engine's NaN/Inf checks, and how a node's own kernels can make them instead.
//
// ddn::Forward and ddn::Backward (ddn/batch.h) refuse a non-finite input or dL/dy with InvalidInput, naming the
// input and the index of the first bad value, and a non-finite output or gradient with NumericalFailure. They
// check each problem's slices on the thread that solves it, just before and after the node runs. For most nodes
// that costs nothing worth measuring; for a memory-bound node (a projection reads x once and writes y once) each
// check is a pass of its own over the row, and together they were a quarter of the node's time.
//
// Such a node can fold the checks into passes it makes anyway, because a sum of values is finite only if every
// value is: NaN propagates, +Inf and −Inf give ±Inf or NaN. A finite Σ x_i² or Σ s_i v_i proves its terms
// finite; a non-finite one may be an overflow of finite terms, so it is only a reason to look: the node then
// calls RecheckForward or RecheckBackward below, which run the engine's exact checks on the problem and throw
// what the engine would have thrown (or return, if every value was finite after all).
//
// A node opts in by also deriving from ChecksOwnFiniteness. Its contract, on the specialised path (Solve and
// Backward; the generic path keeps the engine's checks):
//   - Validate and Solve refuse every non-finite input value, and Solve never returns a non-finite output, both
//     through the functions below (so the messages are the engine's own);
//   - Backward refuses non-finite dL/dy and every non-finite value of the inputs it reads, and never returns a
//     non-finite gradient. An input that Backward does not read is not checked there: its values were checked
//     by the Forward call whose outputs Backward receives, and the gradient does not depend on them (the
//     simplex's vector–Jacobian product reads y and v, not x). ddn::Backward does not check the outputs it is
//     given either, for the same reason.
// Inputs, outputs and gradients must reach the node's kernels unchecked, so a node that opts in must tolerate
// NaN and Inf in its arithmetic (no infinite loop, no out-of-range index) until it reports them.
#pragma once

namespace ddn {

class Node;
struct ProblemData;

// Optional interface of a ddn::Node (see above): derive from it as well as from Node.
class ChecksOwnFiniteness {
 public:
  virtual ~ChecksOwnFiniteness() = default;
  // True if this node's Solve and Backward make the engine's finiteness checks themselves. A node may answer
  // per instance (e.g. by parameter).
  virtual bool ChecksFinitenessInKernels() const = 0;
};

// True if `node` derives from ChecksOwnFiniteness and says so.
bool NodeChecksOwnFiniteness(const Node& node);

// The engine's checks of one forward problem: throws InvalidInput for the first input with a non-finite value,
// else NumericalFailure for the first output with one; returns if every value is finite.
void RecheckForward(const Node& node, const ProblemData& problem);
// The engine's checks of one backward problem: inputs, dL/dy (grad_outputs), then gradients (grad_inputs); the
// same exceptions.
void RecheckBackward(const Node& node, const ProblemData& problem);
// One input only: throws InvalidInput if input `index` of the problem has a non-finite value.
void RequireFiniteInput(const Node& node, const ProblemData& problem, int index);

}  // namespace ddn
