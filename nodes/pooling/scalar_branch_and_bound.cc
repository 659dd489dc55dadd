// nodes/pooling/scalar_branch_and_bound.cc: the certified global minimum of scalar pooling with the smooth
// non-convex penalties welsch, cauchy and geman_mcclure (the branch and bound of pooling_solvers.h): a histogram
// of the points, lower bounds of f and f'' on cells from it (a baseline and an AVX2 kernel), local solves
// (Newton + IRLS), and the search in steps (ScalarBranchAndBound).
#include "ddn/simd.h"  // first: DDN_HAVE_SIMD_DISPATCH guards the intrinsics
#if defined(DDN_HAVE_SIMD_DISPATCH)
#include <immintrin.h>
#endif
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ddn/error.h"
#include "nodes/pooling/solver_parts.h"

namespace ddn::pooling::internal {
namespace {

// Local minimisation from y: Newton where f'' > 0, else the IRLS step y − f'/Σwψ (a descent step because φ is
// concave in z²); a step that raises f is replaced by the IRLS step. Returns y; *f = f(y), *residual = the
// scaled |f'| at the last evaluated iterate. After a final step below 1e-12·(|y| + α), f is taken from the
// last pass (the step changes it by O(step²·f''), far below rounding).
//
// f costs a quarter of a pass (the complement 1 − e of welsch's exponential, the logarithm of cauchy's) and only
// two passes need it: the one after a long step (the descent test) and the last. A pass after a Newton step
// shorter than kQuadraticZone·(|y| + α) computes only f' and f'' (ScalarNewtonPass): Newton is then in its
// quadratic regime, where the test cannot fail but for rounding; one after a step below kLastStep·(|y| + α),
// whose next step is predicted below the stopping test's 1e-12, computes everything as the last pass. The first
// pass is a Newton pass too (the starts are close); if its step is not short, the whole sums are computed at the
// same y. (A first pass from an unknown start makes no descent test, as before; the branch and bound certifies
// the answer whichever local minimum a solve reaches.)
constexpr double kQuadraticZone = 1e-3, kLastStep = 1e-5;

template <PenaltyKind K>
double LocalScalar(const PoolingProblem& p, double xscale, double y, double* f, int* iterations,
                   double* residual = nullptr) {
  double f_prev = std::numeric_limits<double>::infinity(), irls_prev = y;
  bool newton_prev = false, converged = false, with_f = false, lean = true;
  ScalarSums S;
  for (int it = 0; it < 300; ++it) {
    S = with_f ? ScalarPass<K, true>(p, y) : lean ? ScalarNewtonPass<K>(p, y) : ScalarPass<K, false>(p, y);
    ++*iterations;
    if (with_f && newton_prev && S.f > f_prev + 1e-13 * std::abs(f_prev)) {
      y = irls_prev;  // reject the Newton step
      newton_prev = false;
      continue;
    }
    if (lean && !(S.h > 0 && std::abs(S.g) <= kQuadraticZone * S.h * (std::abs(y) + p.alpha))) {
      lean = false;  // not a short Newton step: the whole sums at the same y (for the IRLS step)
      continue;
    }
    if (!lean && S.spsi <= 0) break;  // every point beyond reach (cannot happen for these penalties)
    const double irls = lean ? y : y - S.g / S.spsi;
    newton_prev = S.h > 0;
    const double yn = newton_prev ? y - S.g / S.h : irls;
    f_prev = with_f ? S.f : std::numeric_limits<double>::infinity();
    irls_prev = irls;
    const double step = yn - y, scale = std::abs(yn) + p.alpha;
    y = yn;
    if (std::abs(step) <= 1e-12 * scale) {
      converged = true;
      break;
    }
    with_f = !newton_prev || std::abs(step) > kQuadraticZone * scale || std::abs(step) <= kLastStep * scale;
    lean = !with_f;
  }
  if (!converged || !with_f) {
    // Not converged, or converged after a pass without f: the sums at y itself (for a converged y with the
    // rounding-level floor of ScaledResidual, as below).
    S = ScalarPass<K, true>(p, y);
    ++*iterations;
    const double r = converged ? ScaledResidual(S.g, S.gabs, S.h, xscale) : ScaledResidual(S.g, S.gabs);
    *f = S.f;
    if (residual) *residual = r;
    return y;
  }
  double r = ScaledResidual(S.g, S.gabs);
  if (r > 1e-9) {
    // The pulls of the points are tiny (every other point far beyond reach) and the last step was not: measure
    // at the final y, with the rounding-level floor of ScaledResidual.
    S = ScalarPass<K, true>(p, y);
    ++*iterations;
    r = ScaledResidual(S.g, S.gabs, S.h, xscale);
  }
  *f = S.f;
  if (residual) *residual = r;
  return y;
}

// The bin of x: floor((x − xmin)/h), clamped to [0, nb). The bounds take a bin's points to lie within its edges,
// which holds up to the rounding of (x − xmin)/h at an edge (see the cell bounds below).
struct BinOf {
  double xmin, inv_h;
  int nb;
  int operator()(double xi) const { return std::clamp(static_cast<int>((xi - xmin) * inv_h), 0, nb - 1); }
};

// Dense histogram in two interleaved copies (point i goes to copy i mod 2), each bin's weight and Σ w x side by side
// in one line: consecutive points often fall in the same bin, and one copy would chain every update through the
// previous one's store (four copies cost more to clear and merge than they saved: welsch forward 11.72 ms with
// two, 11.87 with four, 11.68 with one on clustered data). Bins come out in increasing order. Only the weight and Σ w x
// of a bin are kept: the bounds below use the bins' edges (whole multiples of the width from a cell's edges), which
// round to the tables' grid exactly as the points' own extent would.
void DenseHistogram(const PoolingProblem& p, const BinOf& bin_of, PoolingWorkspace* ws) {
  ScalarBins* B = &ws->bins;
  const int nb = B->nb;
  std::vector<double>& acc = ws->histogram;
  acc.assign(static_cast<size_t>(4) * nb, 0.0);  // per copy and bin: weight, Σ w x (side by side: one line)
  // Every point's bin first, in a loop that vectorises (the same values as bin_of), then the scattered updates.
  std::vector<int>& bin_index = ws->bucket_of;
  bin_index.resize(static_cast<size_t>(p.n));
  int* bins = bin_index.data();
  const double xmin = bin_of.xmin, inv_h = bin_of.inv_h;
  const int last = nb - 1;
#pragma omp simd
  for (int64_t i = 0; i < p.n; ++i) bins[i] = std::clamp(static_cast<int>((p.x[i] - xmin) * inv_h), 0, last);
  double* a = acc.data();
  auto add = [&](int l, int64_t i) {
    const double xi = p.x[i], wi = Weight(p.w, i);
    double* cell = a + 2 * (static_cast<int64_t>(l) * nb + bins[i]);
    cell[0] += wi;
    cell[1] += wi * xi;
  };
  int64_t i = 0;
  for (; i + 2 <= p.n; i += 2) {
    add(0, i);
    add(1, i + 1);
  }
  for (; i < p.n; ++i) add(0, i);
  for (int j = 0; j < nb; ++j) {
    double w = 0, s1 = 0;
    for (int l = 0; l < 2; ++l) {
      const double* cell = a + 2 * (static_cast<int64_t>(l) * nb + j);
      w += cell[0];
      s1 += cell[1];
    }
    if (!(w > 0)) continue;  // no point of positive weight
    B->idx.push_back(j);
    B->W.push_back(w);
    B->S1.push_back(s1);
  }
}

// Sparse data (far more bins than points): slots for the nonempty bins only.
void SparseHistogram(const PoolingProblem& p, const BinOf& bin_of, PoolingWorkspace* ws) {
  ScalarBins* B = &ws->bins;
  std::vector<int>& slot = ws->bin_slot;
  slot.assign(B->nb, -1);
  for (int64_t i = 0; i < p.n; ++i) {
    const double wi = Weight(p.w, i);
    if (wi == 0) continue;
    const int j = bin_of(p.x[i]);
    int& k = slot[j];
    if (k < 0) {
      k = static_cast<int>(B->idx.size());
      B->idx.push_back(j);
      B->W.push_back(0);
      B->S1.push_back(0);
    }
    B->W[k] += wi;
    B->S1[k] += wi * p.x[i];
  }
}

// The histogram of the points on [xmin, xmax] (ws->bins) and the tables of φ and φ'' on its grid.
template <PenaltyKind K>
void BuildBins(const PoolingProblem& p, double xmin, double xmax, PoolingWorkspace* ws) {
  ScalarBins* B = &ws->bins;
  const PenaltyEval pen(p.kind, p.alpha);
  const double span = xmax - xmin;
  // Bin width: α/4; geman_mcclure, whose curvature changes sign at α/√3, needs α/8 to resolve cells early.
  double h = p.kind == PenaltyKind::kGemanMcClure ? p.alpha / 8 : p.alpha / 4;
  constexpr int kMaxBins = 8192;
  if (span / h + 1 > kMaxBins) h = span / (kMaxBins - 1) * (1 + 1e-12);
  B->origin = xmin;
  B->width = h;
  B->nb = static_cast<int>(std::min<double>(kMaxBins, std::floor(span / h) + 1));
  B->idx.clear();
  B->W.clear();
  B->S1.clear();
  const BinOf bin_of{xmin, 1.0 / h, B->nb};
  if (B->nb <= 2 * p.n) {
    DenseHistogram(p, bin_of, ws);
  } else {
    SparseHistogram(p, bin_of, ws);
  }
  B->z2 = pen.CurvatureMinimiser();
  B->c2min = pen.D2(B->z2);
  // The bounded penalties' reach for the cell bounds (BinBounds): 4α, in bins (≥ z₂ for both). Only with the
  // dense histogram, whose bins come out in increasing order (the sparse one's are in the order the points are).
  const bool bounded = p.kind != PenaltyKind::kCauchy;
  B->sorted = B->nb <= 2 * p.n;
  B->reach = bounded && B->nb <= 2 * p.n ? static_cast<int>(std::ceil(4 * p.alpha / B->width)) : 0;
  B->Wcum.resize(B->W.size() + 1);
  B->Wcum[0] = 0;
  for (size_t k = 0; k < B->W.size(); ++k) B->Wcum[k + 1] = B->Wcum[k] + B->W[k];
  // Tables up to the larger of the data span and z₂ (at most 512 entries; beyond them φ and φ'' are bounded
  // below by their last entries because both increase with |z| past z₂).
  // The entries depend on the penalty, α and h only: the problems of a batch (one α, and h = α/4 or α/8 unless
  // the span is huge) reuse the workspace's tables, extended when a problem needs more entries.
  const int kt = std::min(std::max(B->nb + 2, static_cast<int>(std::ceil(B->z2 / h)) + 2), 512);
  B->kt = kt;
  if (B->table_kind != p.kind || B->table_alpha != p.alpha || B->table_width != h) {
    B->T0.clear();
    B->T2.clear();
    B->table_kind = p.kind;
    B->table_alpha = p.alpha;
    B->table_width = h;
  }
  const int have = static_cast<int>(B->T0.size());
  if (have < kt) {
    B->T0.resize(kt);
    B->T2.resize(kt);
    const double inv_a2 = 1.0 / (p.alpha * p.alpha);
    for (int k = have; k < kt; ++k) {
      const PenaltyValues v = EvaluatePenalty<K>(k * h, p.alpha, inv_a2);
      B->T0[k] = v.phi;
      B->T2[k] = v.d2;
    }
  }
}

// Lower bounds on a cell of whole bins [p, q) (y ∈ [origin + p·h, origin + q·h]): lb_f ≤ min f, lb_h ≤ min f''.
// The points of bin k lie in [origin + k·h, origin + (k + 1)·h], so |y − x| ∈ [gap·h, span·h] with gap =
// max(0, p − 1 − k, k − q) and span = max(q − k, k + 1 − p) whole bins: φ(gap·h) bounds their φ from below, and the
// minimum of φ'' over [gap·h, span·h] their φ'' (both from the tables, whose grid is the bins' width; past the
// table the last entry bounds both from below, since φ and φ'' increase with |z| past z₂). The integers are exact:
// the bounds are those of each bin's own extent rounded outwards to the grid, up to the rounding that assigns a
// point within a few ulps of an edge to the bin beyond it (≈ ε·span in |y − x|, far inside the search's 1e-12
// prune margin). Branch-free, so that it vectorises (baseline and AVX2 copies as for the passes).
// The bins and tables as raw pointers and scalars, shared by the scalar loop and the AVX2 copy.
struct BinView {
  explicit BinView(const ScalarBins& B)
      : W(B.W.data()),
        T0(B.T0.data()),
        T2(B.T2.data()),
        idx(B.idx.data()),
        h(B.width),
        z2(B.z2),
        c2min(B.c2min),
        kmax(B.kt - 1),
        m(static_cast<int>(B.W.size())) {}
  const double *W, *T0, *T2;
  const int* idx;
  double h, z2, c2min;
  int kmax, m;
};

// Over the nonempty bins k ∈ [first, last) (the AVX2 copy below does its tail, fewer than 4 bins, with this loop).
template <bool kCurvature>
[[gnu::always_inline]] inline void BinBoundsLoop(const ScalarBins& B, int p, int q, double* lb_f, double* lb_h,
                                                 int first, int last) {
  const BinView v(B);
  const double h = v.h, z2 = v.z2, c2min = v.c2min;
  const double *W = v.W, *T0 = v.T0, *T2 = v.T2;
  const int *idx = v.idx, kmax = v.kmax;
  double f = 0, c = 0;
#pragma omp simd reduction(+ : f, c)
  for (int k = first; k < last; ++k) {
    const int j = idx[k];
    const int kd = std::min(kmax, std::max(0, std::max(p - 1 - j, j - q)));
    if (!kCurvature) {
      f += W[k] * T0[kd];
    } else {
      const int ku = std::min(kmax, std::max(q - j, j + 1 - p));
      // φ'' decreases on [0, z₂] and increases after: the minimum over [kd·h, ku·h] is φ''(z₂) if z₂ is inside,
      // else the table value at the end nearer to z₂.
      const double kd_h = kd * h, ku_h = ku * h;
      const bool contains = kd_h <= z2 && z2 <= ku_h;
      const double c2 = contains ? c2min : (ku_h < z2 ? T2[ku] : T2[kd]);
      c += W[k] * c2;
    }
  }
  if (!kCurvature) *lb_f = f;
  if (kCurvature) *lb_h = c;
}

// Baseline and AVX2 copies, over the nonempty bins [first, last); the curvature bound is only computed for cells
// that the value bound cannot prune (`far_f` is added to the value bound before that test).
void BinBoundsBaseline(const ScalarBins& B, int p, int q, int first, int last, double far_f, double best_f,
                       double* lb_f, double* lb_h) {
  BinBoundsLoop<false>(B, p, q, lb_f, lb_h, first, last);
  *lb_f += far_f;
  if (*lb_f < best_f) BinBoundsLoop<true>(B, p, q, lb_f, lb_h, first, last);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
// BinBoundsLoop written with AVX2 intrinsics, four bins at a time: GCC does not vectorise the table lookups
// (gathers) inside a target("avx2") function. Same arithmetic, same order within each lane; the tail (m mod 4
// bins) goes through the scalar loop.
[[gnu::target("avx2,fma")]] void BinBoundsAvx2(const ScalarBins& B, int p, int q, int first, int last, double far_f,
                                               double best_f, double* lb_f, double* lb_h) {
  const BinView v(B);
  const double *W = v.W, *T0 = v.T0, *T2 = v.T2;
  const int* idx = v.idx;
  const int m4 = last - (last - first) % 4;
  const __m128i vp1 = _mm_set1_epi32(p - 1), vq = _mm_set1_epi32(q), vp = _mm_set1_epi32(p), one = _mm_set1_epi32(1),
                izero = _mm_setzero_si128(), vkmax = _mm_set1_epi32(v.kmax);
  const __m256d zero = _mm256_setzero_pd(), vh = _mm256_set1_pd(v.h), vz2 = _mm256_set1_pd(v.z2);
  const __m256d vc2min = _mm256_set1_pd(v.c2min);
  const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
  // T[i[0..3]] (the masked form with every lane on: the plain one trips -Wmaybe-uninitialized in GCC 12).
#define DDN_GATHER(table, i) _mm256_mask_i32gather_pd(zero, table, i, all, 8)
  // kd = min(kmax, max(0, p − 1 − j, j − q)), as in the scalar loop (a lambda would not inherit the target).
#define DDN_GAP(j) \
  _mm_min_epi32(vkmax, _mm_max_epi32(izero, _mm_max_epi32(_mm_sub_epi32(vp1, j), _mm_sub_epi32(j, vq))))
  __m256d f4 = zero;
  for (int k = first; k < m4; k += 4) {
    const __m128i j = _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + k));
    f4 = _mm256_fmadd_pd(_mm256_loadu_pd(W + k), DDN_GATHER(T0, DDN_GAP(j)), f4);
  }
  double f = 0, c = 0;
  BinBoundsLoop<false>(B, p, q, &f, &c, m4, last);
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, f4);
  *lb_f = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + f + far_f;
  if (*lb_f >= best_f) return;

  __m256d c4 = zero;
  for (int k = first; k < m4; k += 4) {
    const __m128i j = _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + k));
    const __m128i kd = DDN_GAP(j);
    const __m128i ku =
        _mm_min_epi32(vkmax, _mm_max_epi32(_mm_sub_epi32(vq, j), _mm_sub_epi32(_mm_add_epi32(j, one), vp)));
    const __m256d kd_h = _mm256_mul_pd(_mm256_cvtepi32_pd(kd), vh), ku_h = _mm256_mul_pd(_mm256_cvtepi32_pd(ku), vh);
    const __m256d contains = _mm256_and_pd(_mm256_cmp_pd(kd_h, vz2, _CMP_LE_OQ), _mm256_cmp_pd(vz2, ku_h, _CMP_LE_OQ));
    const __m256d left = _mm256_cmp_pd(ku_h, vz2, _CMP_LT_OQ);
    const __m256d t_left = DDN_GATHER(T2, ku);
    const __m256d t_right = DDN_GATHER(T2, kd);
    const __m256d c2 = _mm256_blendv_pd(_mm256_blendv_pd(t_right, t_left, left), vc2min, contains);
    c4 = _mm256_fmadd_pd(_mm256_loadu_pd(W + k), c2, c4);
  }
  BinBoundsLoop<true>(B, p, q, &f, &c, m4, last);
  _mm256_store_pd(lanes, c4);
  *lb_h = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + c;
#undef DDN_GAP
#undef DDN_GATHER
}
#endif

// The bounds of the cell [p, q). For the bounded penalties (welsch, geman_mcclure: B.reach > 0), the bins whose gap
// to the cell is reach or more are taken together: φ(gap·h) ≥ φ(reach·h) and, as reach·h ≥ z₂ where φ'' increases
// with |z|, min φ'' ≥ φ''(reach·h), times their total weight (from the prefix sums). Slightly looser than bin by
// bin (by less than 4e-4 per point in φ at 4α), and the loops only see the bins within reach of the cell.
void BinBounds(const ScalarBins& B, int p, int q, double best_f, double* lb_f, double* lb_h) {
  int first = 0, last = static_cast<int>(B.W.size());
  double far_w = 0;
  if (B.reach > 0) {
    first = static_cast<int>(std::lower_bound(B.idx.begin(), B.idx.end(), p - B.reach) - B.idx.begin());
    last = static_cast<int>(std::lower_bound(B.idx.begin() + first, B.idx.end(), q + B.reach) - B.idx.begin());
    far_w = std::max(0.0, B.Wcum[first] + (B.Wcum.back() - B.Wcum[last]));
  }
  const int r = std::min(B.reach, B.kt - 1);
  const double far_f = far_w > 0 ? far_w * B.T0[r] : 0.0;
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) {
    BinBoundsAvx2(B, p, q, first, last, far_f, best_f, lb_f, lb_h);
  } else {
    BinBoundsBaseline(B, p, q, first, last, far_f, best_f, lb_f, lb_h);
  }
#else
  BinBoundsBaseline(B, p, q, first, last, far_f, best_f, lb_f, lb_h);
#endif
  if (far_w > 0 && *lb_f < best_f) *lb_h += far_w * B.T2[r];
}

// The same bounds point by point (for cells narrower than a bin).
void PointBounds(const PoolingProblem& p, const PenaltyEval& pen, double a, double b, double* lb_f, double* lb_h) {
  double f = 0, c = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    const double wi = Weight(p.w, i);
    if (wi == 0) continue;
    const double xi = p.x[i];
    double dist, ul, uh;
    if (xi < a) {
      dist = a - xi;
      ul = dist;
      uh = b - xi;
    } else if (xi > b) {
      dist = xi - b;
      ul = dist;
      uh = xi - a;
    } else {
      dist = 0;
      ul = 0;
      uh = std::max(xi - a, b - xi);
    }
    f += wi * pen.Phi(dist);
    c += wi * pen.MinCurvature(ul, uh);
  }
  *lb_f = f;
  *lb_h = c;
}

// The branch and bound of pooling_solvers.h, in steps: a start from the densest window, a search over cells
// (prune, prove convex, look at a fine cell's centre, or split), the convex runs resolved by Newton, the
// incumbent polished, and the smallest of the tied global minima reported.
template <PenaltyKind K>
class ScalarBranchAndBound {
 public:
  ScalarBranchAndBound(const PoolingProblem& p, double xmin, double xmax, const PoolingOptions& o, PoolingWorkspace* ws)
      : p_(p),
        o_(o),
        ws_(ws),
        B_(ws->bins),
        pen_(p.kind, p.alpha),
        xmin_(xmin),
        xmax_(xmax),
        xscale_(std::max(-xmin, xmax) + p.alpha),
        tie_scale_(TotalWeight(p) * pen_.Phi(p.alpha)),
        curvature_bound_(TotalWeight(p) * pen_.D2(0.0)),
        minima_(ws->search.minima),
        stack_(ws->search.stack),
        convex_(ws->search.convex) {
    minima_.clear();
    stack_.clear();
    convex_.clear();
  }

  void Solve(double* y_out, ProblemStatus* s) {
    BuildBins<K>(p_, xmin_, xmax_, ws_);
    best_y_ = LocalScalar<K>(p_, xscale_, BinnedNewton(DensestWindowStart()), &best_f_, &iterations_, &best_res_);
    minima_.push_back({best_y_, best_f_, best_res_});
    SearchCells();
    ResolveConvexRuns();
    PolishIncumbent();
    Report(y_out, s);
  }

 private:
  using Minimum = SearchLists::Minimum;
  using Cell = SearchLists::Cell;

  // The start: the weighted mean of the densest window of 2α (16 bins at the default width), from prefix sums
  // of the bins' weights and Σ w x.
  double DensestWindowStart() {
    const int win = std::max(1, static_cast<int>(std::lround(2 * p_.alpha / B_.width)));
    if (B_.sorted) {
      // Over the nonempty bins in increasing order (the dense histogram): a window may start at a nonempty bin
      // (moving a window's start up to its first nonempty bin loses no weight), and its end moves forward only.
      const int m = static_cast<int>(B_.W.size());
      int best_k = 0, best_e = 0;
      double best_w = -1;
      for (int k = 0, e = 0; k < m; ++k) {
        e = std::max(e, k);
        while (e < m && B_.idx[e] < B_.idx[k] + win) ++e;
        const double w = B_.Wcum[e] - B_.Wcum[k];
        if (w > best_w) {
          best_w = w;
          best_k = k;
          best_e = e;
        }
      }
      double w = 0, sx = 0;
      for (int k = best_k; k < best_e; ++k) {
        w += B_.W[k];
        sx += B_.S1[k];
      }
      return sx / w;
    }
    std::vector<double>&wb = ws_->window_w, &sb = ws_->window_s;
    wb.assign(B_.nb + 1, 0.0);
    sb.assign(B_.nb + 1, 0.0);
    for (size_t k = 0; k < B_.idx.size(); ++k) {
      wb[B_.idx[k] + 1] += B_.W[k];
      sb[B_.idx[k] + 1] += B_.S1[k];
    }
    for (int j = 0; j < B_.nb; ++j) {
      wb[j + 1] += wb[j];
      sb[j + 1] += sb[j];
    }
    int best_j = 0;
    double best_w = -1;
    for (int j = 0; j < B_.nb; ++j) {
      const int e = std::min(B_.nb, j + win);
      if (wb[e] - wb[j] > best_w) {
        best_w = wb[e] - wb[j];
        best_j = j;
      }
    }
    const int e = std::min(B_.nb, best_j + win);
    return (sb[e] - sb[best_j]) / (wb[e] - wb[best_j]);
  }

  // The start polished by Newton steps on the histogram (each nonempty bin as its weight at its mean Σwx/W): a
  // few evaluations per bin instead of passes over the points. The binned objective differs from f by the spread
  // inside the bins (width α/4; the first-order term cancels at the bins' means), so its minimiser is within
  // ~1e-4·α of f's in the benchmarks' clusters, where the window's mean was ~4e-2·α away: one pass over the
  // points fewer for the local solve. Only the start changes (the search below certifies the answer whatever
  // it is); steps stop at the first one that is not a clear descent step of a convex model (f'' ≤ 0, or longer
  // than α/2), and after one below 1e-3·α (Newton then leaves an error of ~1e-6·α on the binned objective, far
  // inside the ~1e-4·α that separates its minimiser from f's: a further step would not save a pass).
  double BinnedNewton(double y) {
    const int m = static_cast<int>(B_.W.size());
    std::vector<double>& mean = ws_->bin_mean;
    mean.resize(m);
    for (int k = 0; k < m; ++k) mean[k] = B_.S1[k] / B_.W[k];
    PoolingProblem q = p_;  // the bins as weighted points: the vectorised pass of the points
    q.x = mean.data();
    q.w = B_.W.data();
    q.n = m;
    for (int it = 0; it < 4; ++it) {
      const ScalarSums S = ScalarNewtonPass<K>(q, y);
      const double g = S.g, h = S.h;
      if (!(h > 0)) break;
      const double step = g / h;
      if (!(std::abs(step) <= 0.5 * p_.alpha)) break;
      y -= step;
      if (std::abs(step) <= 1e-3 * p_.alpha) break;
    }
    return y;
  }

  // Minima within this of the best are ties (the same tolerance as in Report): cells that may hold one are
  // kept, so that a tie is found and flagged (kNonUnique) rather than pruned as "not below the incumbent".
  double PruneLevel() const { return best_f_ + 1e-12 * (std::abs(best_f_) + tie_scale_); }

  // Depth first over cells of 4α (then halves): prune by the value bound, keep cells proved convex for
  // ResolveConvexRuns, look at the centre of fine cells, split the rest. Out of budget: not certified.
  void SearchCells() {
    const int chunk = std::max(1, static_cast<int>(std::lround(4 * p_.alpha / B_.width)));  // initial cells: 4α
    for (int j = B_.nb; j > 0; j -= chunk) {
      const int a = std::max(0, j - chunk);
      stack_.push_back({B_.origin + a * B_.width, B_.origin + j * B_.width, a, j});
    }
    const double min_width = 1e-10 * (p_.alpha + std::abs(best_y_));
    while (!stack_.empty()) {
      const Cell c = stack_.back();
      stack_.pop_back();
      if (++cells_ > o_.max_cells) {
        certified_ = false;
        break;
      }
      double lb_f = 0, lb_h = 0;
      const double level = PruneLevel();
      if (c.p >= 0) {
        BinBounds(B_, c.p, c.q, level, &lb_f, &lb_h);
      } else {
        PointBounds(p_, pen_, c.a, c.b, &lb_f, &lb_h);
      }
      if (lb_f >= level) continue;  // nothing below the incumbent (or tied with it) here
      if (lb_h >= 0) {
        convex_.push_back({c.a, c.b});  // resolved below, merged with its convex neighbours
        continue;
      }
      if ((c.p < 0 || c.q - c.p < 2) && FineCellIsMonotone(c, level)) continue;
      Split(c, min_width);
    }
  }

  // A fine cell (one bin or less) that is neither pruned nor convex: look at its centre. A point below the
  // incumbent starts a local solve; |f'(centre)| > L·r (L bounds |f''|) means f is monotone on the cell, so its
  // minimum is at an endpoint, which the neighbouring cell covers (returns true: nothing more to do here).
  bool FineCellIsMonotone(const Cell& c, double level) {
    const double yc = 0.5 * (c.a + c.b), r = 0.5 * (c.b - c.a);
    const ScalarSums S = ScalarPass<K, true>(p_, yc);
    ++iterations_;
    if (S.f < level) {
      double fl, rl;
      const double yl = LocalScalar<K>(p_, xscale_, yc, &fl, &iterations_, &rl);
      minima_.push_back({yl, fl, rl});
      if (fl < best_f_) {
        best_f_ = fl;
        best_y_ = yl;
      }
    }
    return std::abs(S.g) > curvature_bound_ * r * (1 + 1e-12);
  }

  // Halves a cell: at the middle bin while it spans two bins or more, else at its centre down to `min_width`;
  // a cell that cannot be split further is a degenerate stationary point (f'' = 0): not certified.
  void Split(const Cell& c, double min_width) {
    if (c.p >= 0 && c.q - c.p >= 2) {
      const int mid = (c.p + c.q) / 2;
      const double xm = B_.origin + mid * B_.width;
      stack_.push_back({xm, c.b, mid, c.q});
      stack_.push_back({c.a, xm, c.p, mid});
    } else if (c.b - c.a > min_width) {
      const double xm = 0.5 * (c.a + c.b);
      stack_.push_back({xm, c.b, -1, -1});
      stack_.push_back({c.a, xm, -1, -1});
    } else {
      certified_ = false;  // a degenerate stationary point (f'' = 0) or a budget too small
    }
  }

  // Convex cells: merge touching ones into runs (f is convex on a run). A run holding a stationary point found
  // before has it as its minimiser; otherwise its minimum is an endpoint (f' ≥ 0 at the left end, or ≤ 0 at
  // the right end) or the root of f' inside, found by Newton.
  void ResolveConvexRuns() {
    std::sort(convex_.begin(), convex_.end());
    for (size_t r = 0; r < convex_.size();) {
      double a = convex_[r].first, b = convex_[r].second;
      size_t e = r + 1;
      while (e < convex_.size() && convex_[e].first <= b) b = std::max(b, convex_[e++].second);
      r = e;
      bool known = false;
      for (const Minimum& m : minima_) known |= (m.y >= a && m.y <= b);
      if (known) continue;
      const ScalarSums Sa = ScalarPass<K, true>(p_, a), Sb = ScalarPass<K, true>(p_, b);
      iterations_ += 2;
      double yc, fc;
      if (Sa.g >= 0) {
        yc = a;
        fc = Sa.f;
      } else if (Sb.g <= 0) {
        yc = b;
        fc = Sb.f;
      } else {
        yc = BracketedNewton<K>(p_, a, b, 0.5 * (a + b), nullptr, &iterations_);
        const ScalarSums Sc = ScalarPass<K, true>(p_, yc);
        fc = Sc.f;
        minima_.push_back({yc, fc, ScaledResidual(Sc.g, Sc.gabs, Sc.h, xscale_)});
      }
      if (fc < best_f_) {
        best_f_ = fc;
        best_y_ = yc;
      }
    }
  }

  // The incumbent may be an endpoint candidate: polish it to a stationary point (it is a local minimum).
  void PolishIncumbent() {
    bool stationary = false;
    for (const Minimum& m : minima_) stationary |= (m.y == best_y_);
    if (stationary) return;
    double f2, r2;
    const double y2 = LocalScalar<K>(p_, xscale_, best_y_, &f2, &iterations_, &r2);
    if (f2 <= best_f_) minima_.push_back({y2, f2, r2});
  }

  // Among the minima found, those within the tie tolerance of the best are global minima: the smallest is
  // returned (kNonUnique if another is more than 1e-8·(α + |y|) away); kNotCertified if the search stopped.
  void Report(double* y_out, ProblemStatus* s) {
    best_f_ = std::numeric_limits<double>::infinity();
    for (const Minimum& m : minima_) best_f_ = std::min(best_f_, m.f);
    const double tie_tol = 1e-12 * (std::abs(best_f_) + tie_scale_);
    best_y_ = std::numeric_limits<double>::infinity();
    for (const Minimum& m : minima_) {
      if (m.f <= best_f_ + tie_tol && m.y < best_y_) {
        best_y_ = m.y;
        best_res_ = m.residual;
      }
    }
    for (const Minimum& m : minima_) {
      if (m.f <= best_f_ + tie_tol && std::abs(m.y - best_y_) > 1e-8 * (p_.alpha + std::abs(best_y_))) {
        s->Set(kNonUnique, PenaltyName(p_.kind) + ": several global minima (within 1e-12); the smallest is returned");
        break;
      }
    }
    if (!certified_) {
      s->Set(kNotCertified, PenaltyName(p_.kind) + ": branch and bound did not finish (" + std::to_string(cells_) +
                                " cells); best local minimum returned");
    }
    *y_out = best_y_;
    s->iterations = iterations_ + cells_;
    s->residual = best_res_;  // at the last iterate of the local solve that found y (see LocalScalar)
  }

  const PoolingProblem& p_;
  const PoolingOptions& o_;
  PoolingWorkspace* ws_;
  const ScalarBins& B_;
  const PenaltyEval pen_;
  const double xmin_, xmax_, xscale_;
  const double tie_scale_;        // Σw·φ(α): the scale of the tie tolerance 1e-12·(|f| + Σw·φ(α))
  const double curvature_bound_;  // |f''| ≤ Σ w max |φ''| = Σw·φ''(0) for welsch, cauchy and geman_mcclure
  int iterations_ = 0;
  int cells_ = 0;
  bool certified_ = true;
  double best_f_ = 0, best_y_ = 0, best_res_ = 0;   // the incumbent
  std::vector<Minimum>& minima_;                    // every local minimum found (the workspace's lists)
  std::vector<Cell>& stack_;                        // cells still to examine
  std::vector<std::pair<double, double>>& convex_;  // cells where f is proved convex
};

}  // namespace

void SolveScalarNonConvex(const PoolingProblem& p, double xmin, double xmax, double* y, ProblemStatus* s,
                          const PoolingOptions& o, PoolingWorkspace* ws) {
  if (xmin == xmax) {
    *y = xmin;
    s->residual = 0;
    return;
  }
  DispatchPenalty(p.kind, [&](auto kc) {
    constexpr PenaltyKind K = decltype(kc)::value;
    if constexpr (K == PenaltyKind::kWelsch || K == PenaltyKind::kCauchy || K == PenaltyKind::kGemanMcClure) {
      ScalarBranchAndBound<K>(p, xmin, xmax, o, ws).Solve(y, s);
    } else {
      throw InternalError("SolveScalarNonConvex: " + PenaltyName(K) + " is not a smooth non-convex penalty");
    }
  });
}

}  // namespace ddn::pooling::internal
