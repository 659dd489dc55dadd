// ddn/check.h: the gradient checker.
//
// Compares a node's backward (vᵀ Dy for a random upstream gradient v) with central finite differences
// of its forward solve. For each differentiable input coordinate j the checker perturbs x_j in every
// problem of the batch at once (problems are independent), solves at x ± h e_j and x ± 2h e_j, and
// forms the fourth-order central difference
//
//   d/dx_j (vᵀ y) ≈ [−φ(x + 2h) + 8 φ(x + h) − 8 φ(x − h) + φ(x − 2h)] / (12 h),   φ = vᵀ y,
//
// whose truncation error is O(h⁴). The step follows the input's own scale, not an absolute unit:
// h = step · s_j with s_j the input's scale: CheckCase::step_scale if the node gives one (the size of the
// input's variations, e.g. a cluster's spread when its points sit far from the origin), else max(|x_j|, the
// mean |x| of that input in that problem, 1 if it is all zero) — so a problem of size 1e-5 is checked with
// steps of 1e-9, not 1e-4. With step = 1e-4 and a forward solve
// accurate to machine precision it is good to ~1e-11, so a relative error above 1e-6 means the backward
// is wrong or the forward solve is loose (a loose solve shows up as noise in φ; the checker cannot tell
// which).
//
// The relative error of one problem and input is ‖g − g_fd‖₂ / max(‖g‖₂, ‖g_fd‖₂, floor) with
// floor = 1e-4 · Σ_k |v_k y_k| / s: a forward accurate to k ulps leaves ~k · 1e-16 · Σ|v_k y_k| / h in the
// difference quotient, which would otherwise turn an exactly zero gradient into a failure (an iterative solve
// ends tens of ulps from the exact answer; the floor admits 100). With the tolerance 1e-6, a gradient missing a
// component of size G is still caught unless G ≲ 1e-10 · Σ|v_k y_k| / s, in the units of the gradient whatever
// the problem's scale.
//
// A node supplies its awkward check points (constraint boundaries, ties, near-singular Hessians, learned
// parameters) by overriding Node::CheckCases (ddn/node.h); the README's "Write your own node" shows how.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/node.h"

namespace ddn {

struct CheckOptions {
  double tolerance = 1e-6;  // pass if every relative error is at most this
  double step = 1e-4;       // h relative to max(|x_j|, the input's scale)
  uint64_t seed = 1;        // for v and for the node's CheckCases
  RunOptions run;           // threads, generic path
};

struct CheckEntry {
  std::string case_name;
  std::string input;
  int64_t batch_index = 0;
  double rel_error = 0;  // as defined above
  double grad_norm = 0;  // ‖g‖₂ of the backward
  uint32_t flags = 0;    // status flags of this problem
};

struct CheckReport {
  std::vector<CheckEntry> entries;
  double max_rel_error = 0;
  bool passed = true;
  // A readable table, one line per case and input: worst error, its batch element, flags.
  std::string ToString() const;
};

// The finite-difference stencil of ddn (the checker's and every test's): the fourth-order central difference
// quotient of f at x with step h, from f(x + 2h), f(x + h), f(x − h), f(x − 2h):
//   f'(x) ≈ (8 (f(x + h) − f(x − h)) − (f(x + 2h) − f(x − 2h))) / 12h,   error O(h⁴ f⁽⁵⁾).
// The differences are taken first, so an f that does not depend on x gives exactly 0 (summing −f + 8f − 8f + f
// left to right would leave the rounding of 7f).
inline double CentralDifference(double f_plus_2h, double f_plus_h, double f_minus_h, double f_minus_2h, double h) {
  return (8 * (f_plus_h - f_minus_h) - (f_plus_2h - f_minus_2h)) / (12 * h);
}
// The same for a function of the step t (f(x + t)), evaluated at t = 2h, h, −h, −2h in that order.
template <class StepFunction>
double CentralDifference(StepFunction&& f_of_step, double h) {
  const double f2 = f_of_step(2 * h), f1 = f_of_step(h), m1 = f_of_step(-h), m2 = f_of_step(-2 * h);
  return CentralDifference(f2, f1, m1, m2, h);
}

// Checks one set of inputs.
void CheckGradients(const Node& node, const CheckCase& check_case, const CheckOptions& options, CheckReport* report);
// Checks all of the node's CheckCases(options.seed).
CheckReport CheckGradients(const Node& node, const CheckOptions& options = {});

}  // namespace ddn
