// nodes/pooling/truncated_vector.h: the global minimum of vector pooling with the truncated quadratic
// (internal to the pooling nodes; vector_multistart.cc calls it).
//
// The problem (points x_i ∈ R^D, weights w_i ≥ 0, α > 0):
//
//   y* = argmin_y f(y),   f(y) = Σ_i w_i φ(‖y − x_i‖),   φ(z) = ½ min(z², α²)
//
// Why it is combinatorial: for any set S of points ("inliers"),
//   g_S(y) = ½ Σ_{i∈S} w_i ‖y − x_i‖² + ½ α² Σ_{i∉S} w_i  ≥  f(y),
// with equality when S = {i : ‖y − x_i‖ < α}. Hence min_y f = min_S min_y g_S, the global minimiser is the weighted
// mean of the points within α of it, and min_{y∈B} f over any set B is min_S min_{y∈B} g_S — over a box B the
// inner minimum is the inliers' weighted mean clamped to B (g_S is an isotropic quadratic).
//
// The search (SolveTruncatedVector):
//  1. Starts. The inlier-mean iteration y ← mean{i : ‖y − x_i‖ < α} (majorise–minimise: f decreases strictly while
//     the inlier set changes, so it reaches a fixed point, a local minimum) from every data point of positive weight
//     (its first step is the mean of the point's α-neighbourhood) and from the caller's extra starts. Inlier sets
//     already visited from an earlier start are remembered: a start that reaches one stops there (it would follow
//     the same path). With more than `max_all_starts` points, a stride sample of that many points starts instead.
//  2. Certificate, branch and bound over y. The minimiser has an inlier of positive weight (f(x_j) < ½α²Σw), so it
//     lies in the closed ball ‖y − x_j‖ ≤ α of some such anchor x_j; anchor j searches the part of its ball farther
//     than α from every point of lower index (the rest is searched from those), where only the points of index ≥ j
//     within 2α of x_j can be inliers and every other point counts ½α²w exactly. An anchor is skipped when these
//     constants alone reach f* − τ (f* the best value found, τ = 1e-12·½α²Σw). Otherwise boxes (coordinates
//     relative to x_j, the first [−α, α]^D) are examined: over box ∩ ball a point is always in (largest distance
//     ≤ α), always out (smallest ≥ α) or undecided; an undecided point's term lies above the secant of
//     min(½z², ½α²) between its smallest and largest squared distance, so f is bounded below by an isotropic
//     quadratic plus constants, whose minimum over the box, over the ball and over the balls of radius α around
//     points chosen in (below) bound f on the region. Regions whose bound is ≥ f* − τ are dropped. A box with few
//     undecided points (any number in D ≥ 5, where halving a box decides few points) is searched over their
//     subsets, depth first (each point in, then out; two points chosen in cannot be more than 2α apart), a leaf
//     being min over the box of g_{in∪T}, attained at the clamped mean, where f is no larger: a better point found
//     this way restarts the iteration of step 1 from it. Other boxes are split at the middle of their longest side.
//     Certified when every region is resolved within `max_cells` cells (boxes and subset nodes); otherwise (or when
//     a box shrinks below 1e-10·α unresolved: a minimum with a point exactly at distance α) the best point found is
//     returned, not certified. Certified means: no y has f(y) < f(y_returned) − τ. Only with every point as a
//     start (N ≤ max_all_starts), which also caps the O(N²·D) work of both steps.
#pragma once

#include <cstdint>
#include <vector>

#include "nodes/pooling/pooling_solvers.h"

namespace ddn::pooling {

struct TruncatedVectorOptions {
  // Start the inlier-mean iteration from every data point when N ≤ this; else from a stride sample of this many.
  int64_t max_all_starts = 4096;
  // Branch-and-bound boxes (over all anchors) before giving up the certificate; 0 skips the certificate.
  int64_t max_cells = 20000;
};

struct TruncatedVectorResult {
  double f = 0;            // f(y)
  bool certified = false;  // the certificate of step 2 holds
  bool tie = false;        // another fixed point found with f within τ of the best, more than 1e-7·(α + |y|) away
  int64_t iterations = 0;  // passes over the data (iteration steps)
  int64_t cells = 0;       // branch-and-bound boxes examined
  int64_t starts = 0;      // starts that ran at least one step
};

// Writes y (D values). p: validated, w_i ≥ 0 not all zero; cols: the points by coordinate (cols[k·N + i] = x_i[k])
// or nullptr (a copy is made); extra_starts: D values each (may be empty).
TruncatedVectorResult SolveTruncatedVector(const PoolingProblem& p, const double* cols,
                                           const std::vector<std::vector<double>>& extra_starts, double* y,
                                           const TruncatedVectorOptions& options = {});

}  // namespace ddn::pooling
