// nodes/pooling/solver_parts.h: the pieces the entry points of pooling_solvers.h are made of, one file per
// concern (internal to the pooling family). The math and the guarantees are in pooling_solvers.h.
//
//   pooling_kernels.{h,cc}        the loops over points, their SIMD dispatch, SelectKth
//   scalar_convex.cc              scalar starts (medians), safeguarded Newton for the convex penalties, and the
//                                 exact sweep of the truncated quadratic
//   scalar_branch_and_bound.cc    scalar welsch, cauchy, geman_mcclure: the certified branch and bound
//   vector_multistart.cc          vector problems: local Newton/IRLS solves from robust starts (and the truncated
//                                 quadratic's exact search, truncated_vector.h)
//   pooling_backward.cc           the closed-form backward (implicit function theorem)
//   pooling_solvers.cc            validation, the objective, extreme scales (rescaling), the entry points
//
// Every function here takes a problem inside the envelope of scales (pooling_kernels.h InEnvelope; the entry
// points rescale the others) and the caller's workspace (pooling_workspace.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "nodes/pooling/pooling_kernels.h"
#include "nodes/pooling/pooling_solvers.h"
#include "nodes/pooling/pooling_workspace.h"

namespace ddn::pooling::internal {

// ---- scalar_convex.cc ---------------------------------------------------------------------------------------

// Weighted median (lower): the smallest x_(k) with Σ_{j≤k} w_(j) ≥ W/2. Uses ws->select or ws->pairs.
double WeightedMedian(const PoolingProblem& p, PoolingWorkspace* ws);
// The weighted median of a stride sample of at most 127 points (a start for Newton). Uses ws->select or
// ws->sample_x, ws->sample_w and ws->pairs.
double SampleMedian(const PoolingProblem& p, PoolingWorkspace* ws);
// Flags points at the kink |y − x_i| = α of huber and truncated_quadratic (kNonSmooth).
void FlagScalarKinks(const PoolingProblem& p, double y, ProblemStatus* s);
// pseudo_huber or huber on [lo, hi] = [min x, max x].
void SolveScalarConvex(const PoolingProblem& p, double lo, double hi, double* y, ProblemStatus* s,
                       PoolingWorkspace* ws);
// truncated_quadratic: the exact sweep. Uses ws->pairs.
void SolveScalarTruncated(const PoolingProblem& p, double* y, ProblemStatus* s, PoolingWorkspace* ws);

// Safeguarded Newton for f' = 0 on [lo, hi] where f'(lo) ≤ 0 ≤ f'(hi), from y, for f convex on the bracket (the
// convex penalties, or a cell proved convex). A Newton step that leaves the bracket is replaced by regula falsi
// (when f' is known at both ends) or bisection; bisection also when |f'| has not fallen 4× in three steps.
// Stops after a Newton step below 1e-12·(|y| + α) (quadratic convergence: y is then exact to rounding) or when
// the bracket is a few ulps wide. Returns y; *last = the sums at the last evaluated iterate.
template <PenaltyKind K>
double BracketedNewton(const PoolingProblem& p, double lo, double hi, double y, ScalarSums* last, int* iterations) {
  ScalarSums S;
  double glo = 0, ghi = 0;
  bool have_lo = false, have_hi = false;
  double g_before = std::numeric_limits<double>::infinity();
  for (int it = 0; it < 200; ++it) {
    S = ScalarPass<K, false>(p, y);
    ++*iterations;
    if (S.g == 0) break;
    if (S.g < 0) {
      lo = y;
      glo = S.g;
      have_lo = true;
    } else {
      hi = y;
      ghi = S.g;
      have_hi = true;
    }
    const double scale = std::abs(y) + p.alpha;
    double yn = S.h > 0 ? y - S.g / S.h : std::numeric_limits<double>::quiet_NaN();
    // Converged when the Newton step is below 1e-12·scale; the step may then round to y itself, which is an end
    // of the bracket (so the test is on the step, not on yn lying strictly inside).
    if (S.h > 0 && std::abs(S.g / S.h) <= 1e-12 * scale) {
      y = std::clamp(yn, lo, hi);
      break;
    }
    // Every third step, |f'| must have fallen by 4× since the last check (Newton on a convex f converges much
    // faster; a bracket that stays wide is no sign of trouble when Newton approaches the root from one side),
    // else a bisection step.
    if (it % 3 == 2) {
      if (std::abs(S.g) > 0.25 * g_before) yn = std::numeric_limits<double>::quiet_NaN();  // force bisection
      g_before = std::abs(S.g);
    }
    if (!(yn > lo && yn < hi)) {
      yn = have_lo && have_hi ? lo - glo * (hi - lo) / (ghi - glo) : 0.5 * (lo + hi);
      if (!(yn > lo && yn < hi)) yn = 0.5 * (lo + hi);
    }
    y = yn;
    if (hi - lo <= 4 * kEps * scale) break;
  }
  if (last) *last = S;
  return y;
}

// ---- scalar_branch_and_bound.cc -----------------------------------------------------------------------------

// welsch, cauchy or geman_mcclure on [xmin, xmax]: the certified global minimum (pooling_solvers.h).
void SolveScalarNonConvex(const PoolingProblem& p, double xmin, double xmax, double* y, ProblemStatus* s,
                          const PoolingOptions& o, PoolingWorkspace* ws);

// ---- vector_multistart.cc -----------------------------------------------------------------------------------

// Any penalty, D ≥ 1, the points by coordinate in points.cols (ByCoordinate). `start` may be null.
void SolveVectorScaled(const VectorPoints& points, double* y, ProblemStatus* s, const PoolingOptions& o,
                       VectorStart* start, PoolingWorkspace* ws);

// ---- pooling_backward.cc ------------------------------------------------------------------------------------

// The backward of a problem inside the envelope (or rescaled): adds to dx, dw, or with `assign` writes every
// element of them. With `check`, returns false (and writes nothing) when the problem is outside the envelope; the
// scalar case sees that from the same pass. The scalar case sets *finite = false when a sum over what it read or
// wrote is not finite (PoolingBackward's result; a problem with a NaN or Inf is then not sent to rescaling); the
// vector case when x (tested in its transpose), y, v or w has a NaN or Inf (then it writes zeros, assign, and
// returns at once) or a gradient it wrote is not finite.
bool BackwardScaled(const PoolingProblem& p, const double* y, const double* v, double* dx, double* dw, ProblemStatus* s,
                    bool check, bool assign, PoolingWorkspace* ws, bool* finite);

}  // namespace ddn::pooling::internal
