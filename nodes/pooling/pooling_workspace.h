// nodes/pooling/pooling_workspace.h: the scratch memory of the robust pooling solvers (pooling_solvers.h).
//
// What. Every buffer the solvers and the backward reuse from one problem to the next: sorted copies of the points
// (medians, the truncated quadratic's sweep), the branch and bound's histogram, the vector passes' blocks, the
// rescaled copy of an extreme-scale problem. A PoolingWorkspace belongs to one thread at a time.
//
// Why a struct passed down, not thread_local buffers. The nodes take their workspace from the ProblemData of
// the batch loop's worker (ddn/node.h NodeWorkspace: one per worker, made on the worker's first problem), so
//   - lifetime: the buffers live for one batched call and are freed when it returns; thread_local buffers lived
//     as long as the thread, which for the pool's threads is the process, each at the size of the largest
//     problem it had ever solved (the backward of one weighted 10⁶-point scalar problem left 16 MB of φ', φ''
//     behind on the thread that ran it);
//   - nothing is hidden: a function's scratch memory is in its signature, two solves on one thread cannot
//     silently share a buffer (the rescaled problem and the points by coordinate are separate fields), and a
//     test can run a solver with a fresh or a reused workspace and compare;
//   - the cost is the same: a worker allocates once, on its first problem, and then reuses.
// Callers outside a batch (tests, the check cases, the unrolled replay) pass nothing: the entry points of
// pooling_solvers.h then use a workspace of their own for that call.
//
// Contents are only meaningful inside one call of an entry point; nothing is carried from one problem to the next.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "nodes/pooling/penalties.h"

namespace ddn::pooling {

// The scalar branch and bound's histogram of the points (scalar_branch_and_bound.cc): bins of width α/4 (α/8
// for geman_mcclure), the nonempty ones only, and tables of φ and φ'' on the bin grid.
struct ScalarBins {
  double origin = 0, width = 0;
  int nb = 0;                  // bins spanned by [min x, max x]
  std::vector<int> idx;        // nonempty bins
  std::vector<double> W, S1;   // per nonempty bin: weight, Σ w x
  std::vector<double> Wcum;    // Wcum[k] = Σ W over the nonempty bins before k
  bool sorted = false;         // the nonempty bins in increasing order (the dense histogram)
  int reach = 0;               // bins beyond which the cell bounds take bins together (0: never)
  std::vector<double> T0, T2;  // φ(k·width), φ''(k·width), k = 0..kt−1 (or more, kept from an earlier problem)
  int kt = 0;                  // table entries the bounds use
  PenaltyKind table_kind = PenaltyKind::kQuadratic;  // the penalty, α and width the tables were made for
  double table_alpha = 0, table_width = 0;
  double c2min = 0;  // min φ''
  double z2 = 0;     // where φ'' is smallest
};

// The scalar branch and bound's lists (scalar_branch_and_bound.cc), emptied by each problem and kept for their
// capacity (no allocation per problem).
struct SearchLists {
  struct Minimum {
    double y, f, residual;
  };
  struct Cell {
    double a, b;
    int p, q;  // bin range [p, q); p < 0 for a point-level cell
  };
  std::vector<Minimum> minima;                    // every local minimum found
  std::vector<Cell> stack;                        // cells still to examine
  std::vector<std::pair<double, double>> convex;  // cells where f is proved convex
};

// The frame of the vector pools' single-precision copies (the welsch and Geman–McClure scores and screening passes,
// pooling_kernels.h): coordinates relative to `center` (the median start) in units of α, clamped to ±kFloatReach,
// and weights relative to the largest, so that the problem's scale (anywhere in 2^±200) neither overflows float nor
// loses its precision to an offset. Points more than kFloatReach·α from the center are moved to that distance: they
// are beyond every penalty's reach from the points near the center (welsch's e underflows past ~13α;
// Geman–McClure's φ is within 1e-12 of its bound), and the squared distances stay far from float's overflow.
struct FloatFrame {
  static constexpr double kFloatReach = 1e6;
  std::vector<double> center;
  double inv_alpha = 1;
  double wmax = 1;  // the largest weight (1 without weights)
  double Scaled(double x, int64_t k) const { return (x - center[k]) * inv_alpha; }
  float ToFloat(double x, int64_t k) const {
    return static_cast<float>(std::clamp(Scaled(x, k), -kFloatReach, kFloatReach));
  }
};

// Candidate starts of the vector solver are scored on a stride sample of the points, stored by coordinate.
struct ScoreSample {
  std::vector<double> cols, w;  // cols[k·m + j]
  int64_t m = 0;
  int64_t stride = 1;     // the sample is the points 0, stride, 2·stride, ...
  std::vector<double> f;  // scoring the sample's own points: f at each
  // The same in single precision (FloatFrame), rows of m_f = m rounded up to a multiple of eight, padded with
  // zeros (weight 0), so that the score loops run whole vectors.
  FloatFrame frame;
  std::vector<float> cols_f, w_f;
  int64_t m_f = 0;
  mutable std::vector<float> y_f;  // SampleObjective's y in these units
};

// All the points of a vector problem in single precision (FloatFrame), rows of n_pad = N rounded up to a multiple
// of eight, padded with zeros (weight 0): the screening passes of welsch and Geman–McClure. n = 0: not built.
struct FloatPoints {
  std::vector<float> cols, w;
  int64_t n = 0, n_pad = 0;
  double wsum = 0;  // Σ w / wmax
};

// The sums of one vector pass at y (pooling_kernels.h VectorPass; M only in a Hessian pass).
struct VectorSums {
  double f = 0;
  Eigen::VectorXd g;  // Σ w ψ r
  Eigen::MatrixXd M;  // Σ w (φ'' − ψ)/‖r‖² r rᵀ
  double spsi = 0;    // Σ w ψ
  double gabs = 0;    // Σ w |φ'|
  double hsum = 0;    // Σ w (|ψ| + |φ''|)
};

// The vector solvers' iterates and lists (vector_multistart.cc), D values each, kept so that a problem allocates
// nothing once the worker has solved one of the same D (the 50–60 small allocations per problem they replaced were
// 4 % of vector welsch's (64, 256, 8) forward). Vectors of vectors only grow: the first `count` entries are valid.
struct MultiStartScratch {
  std::vector<Eigen::VectorXd> starts;             // the candidate starts (median, mean, data points)
  std::vector<std::pair<double, int64_t>> scored;  // (score, point index) of the candidate data points
  std::vector<int64_t> point_index;                // the data point of each start after the first two
  std::vector<Eigen::VectorXd> found_y;            // the distinct local minima found so far, and their f
  std::vector<double> found_f;
  Eigen::VectorXd answer, y;                                // the best minimum so far; the iterate of a local solve
  Eigen::VectorXd irls_prev, step;                          // a local solve's fallback point and step
  Eigen::VectorXd screen_y, screen_irls_prev, screen_step;  // the same for a screening path
  VectorSums sums, answer_sums, screen_sums;  // a local solve's last pass, the answer's, a screening pass's
  std::vector<float> screen_y_f;              // a screening pass's y in single precision
};

struct PoolingWorkspace {
  // Medians (the robust starts): the values to select from and a scratch half (SelectKth), the (x, w) pairs of
  // a weighted median, and the stride sample of a sampled median.
  std::vector<double> select;
  std::vector<std::pair<double, double>> pairs;  // also the truncated quadratic's sorted (x, w)
  std::vector<double> sample_x, sample_w;
  // The truncated quadratic's bucket sort: each point's bucket, and where each bucket starts (bucket_of is also
  // the scalar branch and bound's bin of each point).
  std::vector<int> bucket_of;
  std::vector<int64_t> bucket_first;
  // Scalar branch and bound: the histogram, its two interleaved accumulators (dense data) or the slot of each
  // bin (sparse data), and the prefix sums that find the densest window.
  ScalarBins bins;
  std::vector<double> histogram;
  std::vector<int> bin_slot;
  std::vector<double> window_w, window_s;
  std::vector<double> bin_mean;  // Σ w x / W of each nonempty bin (the start's Newton steps on the histogram)
  SearchLists search;
  // Vector problems: the points by coordinate (cols[k·N + i] = x_i[k]), one pass's block of residuals and
  // c ⊙ residuals (256 values per coordinate each, D rounded up to a multiple of 4), the candidates' score sample.
  std::vector<double> cols;
  std::vector<double> block;
  ScoreSample score_sample;
  FloatPoints points_f;
  MultiStartScratch multistart;
  // Extreme scales: the rescaled copy of x and w, and the backward's rescaled y, dx, dw.
  std::vector<double> scaled_x, scaled_w;
  std::vector<double> scaled_y, scaled_dx, scaled_dw;
  // Scalar backward: w_i φ''(y − x_i) and φ'(y − x_i).
  std::vector<double> d1, d2;
};

}  // namespace ddn::pooling
