// nodes/pooling/pooling_solvers.h: specialised forward solvers and closed-form gradients of robust pooling.
//
// One problem: points x_1..x_N (scalars, or rows of an N×D array), optional weights w_i ≥ 0 (not all zero),
// a penalty φ(·; α) (penalties.h) and
//
//   scalar:  y* = argmin_y f(y),  f(y) = Σ_i w_i φ(y − x_i)
//   vector:  y* = argmin_y f(y),  f(y) = Σ_i w_i φ(‖y − x_i‖)
//
// Forward (what is guaranteed):
//   quadratic             the weighted mean (closed form, two-pass).
//   pseudo_huber, huber   scalar: safeguarded Newton on f' bracketed by [min x, max x], started at the weighted
//                         median of a stride sample of ≤ 64 points, to machine precision; f' is monotone so the answer
//                         is the global minimum. Huber with no point inside |y − x_i| ≤ α at the root (f' = 0 on an
//                         interval, H = 0): the midpoint of that interval, kAllOutliers | kNonUnique. vector: Newton
//                         with an IRLS (Weiszfeld) fallback and a descent test, from the coordinate-wise median of a
//                         stride sample of ≤ 64 points; convex, so the local minimum is global. After a Newton step
//                         below 1e-5·(|y| + α) the next pass computes the gradient only and steps with the previous
//                         factorisation (the chord method): the step it gives near the minimum is far below the
//                         stopping test either way.
//   truncated_quadratic   scalar: exact global minimum by a sweep over the sorted points: between consecutive
//                         breakpoints x_i ± α the inlier set is fixed and f is a quadratic whose minimiser is the
//                         inliers' weighted mean; every kink of f is concave, so the global minimum is one of
//                         these interior minima. Ties within 1e-12 (relative): the smallest y, kNonUnique.
//                         vector (truncated_vector.h): the inlier-mean iteration (majorise–minimise, finite) from
//                         every data point (N ≤ 4096; else a stride sample), the coordinate-wise median and the
//                         mean, then a branch and bound over the balls ‖y − x_j‖ ≤ α (boxes, and subsets of the
//                         undecided points) certifies that nothing is lower by more than 1e-12·½α²Σw; out of its
//                         budget (`vector_max_cells`) the best fixed point found, kNotCertified. Distinct fixed
//                         points tied within that tolerance: kNonUnique.
//   welsch, cauchy,       scalar: certified global minimum by branch and bound on [min x, max x]: a local
//   geman_mcclure         solve (Newton + IRLS fallback) from the densest 2α window gives an upper bound f₀;
//                         cells are pruned when the lower bound Σ_i w_i φ(dist(x_i, cell)) ≥ f₀ (φ grows with
//                         |z|), and resolved exactly when Σ_i w_i min_{cell} φ''(y − x_i) ≥ 0 (f is convex on
//                         the cell; touching convex cells are merged and Newton finds each run's minimum), or,
//                         for cells of one bin or less, when |f'(centre)| > r·Σw·max|φ''| (f is monotone there);
//                         a cell centre below f₀ starts a local solve; other cells are split. Bounds are
//                         evaluated on a histogram of the points (bin width α/4, α/8 for geman_mcclure;
//                         distances in whole bins, rounding towards safety; for welsch and geman_mcclure the bins
//                         4α or more from a cell taken together) and point by point below bin size. If the cell
//                         budget runs out or a cell shrinks below 1e-10·α unresolved (a degenerate stationary
//                         point), the best point found is returned with kNotCertified. Distinct minima within
//                         1e-12 (relative) of each other: kNonUnique, the smallest y is returned (cells whose lower
//                         bound ties with the incumbent are searched, not pruned, so that isolated tied points are
//                         found).
//                         vector: the best local minimum reached from the coordinate-wise median (of a stride
//                         sample of ≤ 64 points), the weighted mean and the `vector_starts` data points of lowest
//                         objective (scored on a stride sample of ≤ 64 points) among a stride sample of
//                         `vector_candidates` data points; a start that comes within 1e-2·α of a minimum found before
//                         stops there. Every start but the median is screened first by gradient passes only
//                         (chord steps with the Hessian factorised at the nearest minimum found, or IRLS steps;
//                         welsch and Geman–McClure score and screen in single precision, pooling_kernels.h):
//                         one whose path comes within 0.3·α of a minimum already found is not solved
//                         (vector_multistart.cc). kNotCertified (no global certificate in D > 1).
//
// Status: residual = |∇f| / max(Σ_i w_i |∇φ_i|, 1e-6·|H|·(max|x| + α)) (0 when both are 0), at the final y for the
// convex scalar and the vector solvers, and at the last evaluated iterate (before a final Newton step below
// 1e-12·(|y| + α), so at most ~1e-11; re-measured at the final y when it is larger) for the scalar branch and
// bound. The second term of the denominator matters only when the points' pulls are themselves tiny (every other
// point far beyond a redescending penalty's reach, a single inlier): an answer exact to rounding then still has a
// residual near 1e-10. iterations = passes over the data (+ cells); kNonSmooth when a point sits at a kink
// (|‖y − x_i‖ − α| ≤ 1e-9·(α + |y|)) of huber or truncated_quadratic. A residual above 1e-6 (away from a kink) is
// a solve that did not converge: NumericalFailure, never an answer.
//
// Extreme scales: y(s·x; s·α) = s·y(x; α) and y(x; c·w) = y(x; w). Problems with α, max|x|/α and max w inside
// 2^±200 are solved as given; others exactly rescaled by powers of two (α beyond 2^60·max|x| is replaced by
// 2^60·max|x|, the quadratic regime, to rounding the same answer); max|x| > 2^450·α (≈ 2.9e135) is refused with
// InvalidInput: (x/α)² cannot be represented. The backward does the same. Gradients that overflow a double
// (dy/dw for subnormal weights) are reported by ddn::Backward as a non-finite gradient (NumericalFailure).
//
// Backward (closed form, the implicit function theorem of f'(y) = 0, Gould et al. TPAMI 2022 Prop. 4.3):
//   scalar:  H = Σ_j w_j φ''(y − x_j);   dL/dx_i = v w_i φ''(y − x_i)/H,   dL/dw_i = −v φ'(y − x_i)/H
//   vector:  ∇²φ_i = ψ_i I + (φ''_i − ψ_i) r̂_i r̂_iᵀ (r_i = y − x_i, ψ = φ'/‖r‖), H = Σ_j w_j ∇²φ_j, u = H⁻¹v;
//            dL/dx_i = w_i ∇²φ_i u,   dL/dw_i = −ψ_i r_iᵀ u
// Speed: the loops over points (and the branch and bound's bounds over bins) exist in a baseline (SSE2) copy and
// an AVX2+FMA copy chosen at run time from the CPU; DDN_DISABLE_AVX2=1 in the environment forces the baseline.
// The copies agree to rounding (summation order, fused multiply–adds); each is deterministic.
// (pooling_kernels.h has the loops; solver_parts.h lists the files, one per concern.)
//
// Scratch memory: every entry point takes an optional PoolingWorkspace (pooling_workspace.h) that it reuses
// from one problem to the next; the nodes pass the batch worker's own (ddn/node.h NodeWorkspace). Without one,
// the call uses a workspace of its own, freed on return.
//
// H = 0 (no point within the penalty's reach): gradient 0, kAllOutliers. H singular otherwise (or, scalar,
// H ≤ 1e-12·Σ w|φ''|): the minimum-norm solution of H u = v, kNonRegular.
#pragma once

#include <cstdint>
#include <vector>

#include "ddn/status.h"
#include "nodes/pooling/penalties.h"

namespace ddn::pooling {

struct PoolingWorkspace;  // pooling_workspace.h

struct PoolingProblem {
  PenaltyKind kind = PenaltyKind::kPseudoHuber;
  double alpha = 1.0;         // > 0
  const double* x = nullptr;  // N values (scalar) or N×D row-major (vector)
  const double* w = nullptr;  // N weights ≥ 0, not all zero; nullptr means all 1
  int64_t n = 0;              // N ≥ 1
  int64_t d = 1;              // D ≥ 1 (1 for the scalar node)
};

struct PoolingOptions {
  // Scalar branch and bound: at most this many cells before giving up with kNotCertified.
  int max_cells = 20000;
  // Vector, non-convex penalties: data points whose objective is evaluated to pick starts (a stride sample).
  int vector_candidates = 64;
  // Vector, non-convex penalties: the best this many candidates start a local solve (plus median and mean); 0 skips
  // the scoring (the node's point_starts parameter).
  int vector_starts = 4;
  // Vector truncated quadratic: cells (boxes and subset-search nodes) of the branch and bound that certifies the
  // global minimum (truncated_vector.h) before giving up with kNotCertified; 0 skips the certificate.
  int vector_max_cells = 4000;
};

// The k-th smallest of v[0, n) (0-based): exactly the value std::nth_element puts at v + k, selected by a
// quickselect without data-dependent branches (the robust start's median). v and scratch (n values each) are
// overwritten. O(n) on average, O(n²) at worst: for short arrays (the median starts sample ≤ 127 points).
double SelectKth(double* v, double* scratch, int64_t n, int64_t k);

// Throws InvalidInput for N = 0, α ≤ 0 or non-finite, non-finite x, negative or all-zero (or non-finite) w.
// `check_x_finite` = false skips the pass over x for a caller that has checked it (the nodes: ddn::Forward
// checks every input slice before Node::Validate).
void ValidatePoolingProblem(const PoolingProblem& problem, bool check_x_finite = true);

// f(y).
double PoolingObjective(const PoolingProblem& problem, const double* y);

// Where the vector solver's winning local solve started (for the unrolled gradient modes,
// vector_pool_unrolled.h): the coordinate-wise median of the stride sample, the weighted mean, or a data point.
struct VectorStart {
  enum Kind { kNone, kMedian, kMean, kPoint };
  Kind kind = kNone;       // kNone: no local iteration (the quadratic's closed form)
  int64_t point = -1;      // kPoint: the index i of the data point x_i
  std::vector<double> y0;  // the start (D values, the problem's units)
};

// Forward: writes y (1 value, or D values). Sets status flags, residual and iterations. `start`, if given
// (vector only), receives the start of the local solve whose answer was returned.
// `workspace` may be null (see "Scratch memory").
void SolveScalarPool(const PoolingProblem& problem, double* y, ProblemStatus* status,
                     const PoolingOptions& options = {}, PoolingWorkspace* workspace = nullptr);
// SolveScalarPool for a node whose kernels check finiteness (ddn/finiteness.h): x is summed in the pass that finds
// its range, and a sum that is not finite (a NaN or Inf in x, or finite values whose sum overflowed) returns
// false before anything is solved; the caller looks (RecheckForward) and, if every x was finite, calls again with
// `x_checked`. With `x_checked`, the same as SolveScalarPool (which takes x as checked).
bool SolveScalarPoolFolded(const PoolingProblem& problem, double* y, ProblemStatus* status,
                           const PoolingOptions& options, PoolingWorkspace* workspace, bool x_checked);
void SolveVectorPool(const PoolingProblem& problem, double* y, ProblemStatus* status,
                     const PoolingOptions& options = {}, VectorStart* start = nullptr,
                     PoolingWorkspace* workspace = nullptr);
// SolveVectorPool for a node whose kernels check finiteness: the transpose that stores x by coordinate also tests
// every value (exactly: Σ (x − x) is 0 only if every x is finite), and a NaN or Inf returns false before anything is solved (the caller
// throws the engine's message, RequireFiniteInput). With `x_checked`, the same as SolveVectorPool.
bool SolveVectorPoolFolded(const PoolingProblem& problem, double* y, ProblemStatus* status,
                           const PoolingOptions& options, VectorStart* start, PoolingWorkspace* workspace,
                           bool x_checked);

// Backward at a solution y: dx (N·D values) += v-weighted dy/dx, dw (N values, may be nullptr) += dy/dw; with
// `assign`, dx and dw are written (=) instead, every element (their previous contents are not read).
// v has D values (1 for the scalar node).
// Returns false if a sum it formed over the values it read (x, w, y, v) or the gradients it wrote was not finite
// (then something may be NaN or Inf, or finite values overflowed a sum: the caller looks, ddn/finiteness.h); the
// gradients are written as usual either way.
bool PoolingBackward(const PoolingProblem& problem, const double* y, const double* v, double* dx, double* dw,
                     ProblemStatus* status, PoolingWorkspace* workspace = nullptr, bool assign = false);

}  // namespace ddn::pooling
