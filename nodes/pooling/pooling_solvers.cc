// Specialised robust pooling solvers and closed-form gradients; see pooling_solvers.h for the math and the
// guarantees.
#include "nodes/pooling/pooling_solvers.h"
#include "nodes/pooling/truncated_vector.h"

#include <Eigen/Dense>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ddn/error.h"
#include "ddn/lane_sum.h"
#include "ddn/params.h"

namespace ddn::pooling {

// SelectKth (pooling_solvers.h): the k-th smallest of v[0..n) by a quickselect whose
// partition has no data-dependent branch: every value is written to both ends of `scratch` and kept at the end
// whose cursor it advances, so that values below, above and equal to the pivot (a median of three) separate in
// one pass without mispredicted branches (on 64 normal values about half the time of std::nth_element). The
// answer is the order statistic itself, so the result is exactly nth_element's. `v` and `scratch` (both of n
// values) are overwritten. Worst case O(n²) (pivots at the extremes every time): meant for short arrays (the
// ≤ 127-point samples of SampleMedian; WeightedMedian uses std::nth_element above 256 values).
double SelectKth(double* v, double* scratch, int64_t n, int64_t k) {
  while (n > 16) {
    const double a = v[0], b = v[n / 2], c = v[n - 1];
    const double pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    int64_t lo = 0, hi = n - 1;
    for (int64_t i = 0; i < n; ++i) {
      const double x = v[i];
      scratch[lo] = x;
      scratch[hi] = x;
      lo += x < pivot;
      hi -= x > pivot;
    }
    // scratch[0, lo) < pivot, scratch(hi, n) > pivot, everything else equals it.
    if (k < lo) {
      n = lo;
      std::swap(v, scratch);
    } else if (k > hi) {
      k -= hi + 1;
      n -= hi + 1;
      double* rest = scratch + hi + 1;
      scratch = v;
      v = rest;
    } else {
      return pivot;
    }
  }
  // Insertion sort of the last few.
  for (int64_t i = 1; i < n; ++i) {
    const double x = v[i];
    int64_t j = i;
    for (; j > 0 && v[j - 1] > x; --j) v[j] = v[j - 1];
    v[j] = x;
  }
  return v[k];
}

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

inline double Weight(const double* w, int64_t i) { return w ? w[i] : 1.0; }

double TotalWeight(const PoolingProblem& p) {
  if (!p.w) return static_cast<double>(p.n);
  double s = 0;
  for (int64_t i = 0; i < p.n; ++i) s += p.w[i];
  return s;
}

// ---- Scalar passes ------------------------------------------------------------------------------------------

struct ScalarSums {
  double f = 0;     // Σ w φ
  double g = 0;     // Σ w φ'
  double h = 0;     // Σ w φ''
  double gabs = 0;  // Σ w |φ'|
  double spsi = 0;  // Σ w ψ
};

// The loop over points; inlined into a baseline and an AVX2+FMA copy (chosen at run time), so that the same
// source vectorises 2 or 4 wide. The two copies may differ in the last bits (reduction order); each is deterministic.
template <PenaltyKind K, bool kPhi, bool kWeighted>
[[gnu::always_inline]] inline ScalarSums ScalarLoop(const double* x, const double* w, int64_t n, double y,
                                                    double alpha, double inv_a2) {
  double f = 0, g = 0, h = 0, gabs = 0, spsi = 0;
#pragma omp simd reduction(+ : f, g, h, gabs, spsi)
  for (int64_t i = 0; i < n; ++i) {
    const PenaltyValues v = EvaluatePenalty<K, kPhi>(y - x[i], alpha, inv_a2);
    const double wi = kWeighted ? w[i] : 1.0;
    if (kPhi) f += wi * v.phi;
    g += wi * v.d1;
    h += wi * v.d2;
    gabs += wi * std::abs(v.d1);
    spsi += wi * v.psi;
  }
  return {f, g, h, gabs, spsi};
}

template <PenaltyKind K, bool kPhi, bool kWeighted>
ScalarSums ScalarPassBaseline(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2) {
  return ScalarLoop<K, kPhi, kWeighted>(x, w, n, y, alpha, inv_a2);
}

#if defined(__GNUC__) && defined(__x86_64__)
template <PenaltyKind K, bool kPhi, bool kWeighted>
[[gnu::target("avx2,fma")]] ScalarSums ScalarPassAvx2(const double* x, const double* w, int64_t n, double y,
                                                    double alpha, double inv_a2) {
  return ScalarLoop<K, kPhi, kWeighted>(x, w, n, y, alpha, inv_a2);
}
// DDN_DISABLE_AVX2=1 in the environment forces the baseline copies (the tests run both).
bool UseAvx2() {
  const char* off = std::getenv("DDN_DISABLE_AVX2");
  if (off && std::string(off) == "1") return false;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
const bool kHaveAvx2 = UseAvx2();
#endif

template <PenaltyKind K, bool kPhi, bool kWeighted>
ScalarSums ScalarPassT(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (kHaveAvx2) return ScalarPassAvx2<K, kPhi, kWeighted>(x, w, n, y, alpha, inv_a2);
#endif
  return ScalarPassBaseline<K, kPhi, kWeighted>(x, w, n, y, alpha, inv_a2);
}

template <PenaltyKind K, bool kPhi>
ScalarSums ScalarPass(const PoolingProblem& p, double y) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  if (p.w) return ScalarPassT<K, kPhi, true>(p.x, p.w, p.n, y, p.alpha, inv_a2);
  return ScalarPassT<K, kPhi, false>(p.x, p.w, p.n, y, p.alpha, inv_a2);
}

// The backward's pass: d2[i] = w_i φ''(y − x_i), d1[i] = φ'(y − x_i) (if d1 is not null), *h = Σ d2, *habs = Σ |d2|,
// *zmax = max |y − x_i| (for the check of the scale envelope, below). Baseline and AVX2+FMA copies, as for ScalarPass.
struct CurvatureSums {
  double h = 0, habs = 0, zmax = 0;
};

template <PenaltyKind K, bool kWeighted, bool kD1>
[[gnu::always_inline]] inline CurvatureSums CurvatureLoop(const double* x, const double* w, int64_t n, double y,
                                                          double alpha, double inv_a2, double* d1, double* d2) {
  double h = 0, habs = 0, zmax = 0;
#pragma omp simd reduction(+ : h, habs) reduction(max : zmax)
  for (int64_t i = 0; i < n; ++i) {
    const double z = y - x[i];
    const PenaltyValues v = EvaluatePenalty<K, false>(z, alpha, inv_a2);
    const double wd2 = (kWeighted ? w[i] : 1.0) * v.d2;
    if (kD1) d1[i] = v.d1;
    d2[i] = wd2;
    h += wd2;
    habs += std::abs(wd2);
    zmax = std::max(zmax, std::abs(z));
  }
  return {h, habs, zmax};
}

template <PenaltyKind K, bool kWeighted, bool kD1>
CurvatureSums CurvatureBaseline(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2,
                                double* d1, double* d2) {
  return CurvatureLoop<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
}

#if defined(__GNUC__) && defined(__x86_64__)
template <PenaltyKind K, bool kWeighted, bool kD1>
[[gnu::target("avx2,fma")]] CurvatureSums CurvatureAvx2(const double* x, const double* w, int64_t n, double y,
                                                        double alpha, double inv_a2, double* d1, double* d2) {
  return CurvatureLoop<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
}
#endif

template <PenaltyKind K, bool kWeighted, bool kD1>
CurvatureSums CurvatureT(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2, double* d1,
                         double* d2) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (kHaveAvx2) return CurvatureAvx2<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
#endif
  return CurvatureBaseline<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
}

template <PenaltyKind K>
CurvatureSums ScalarCurvatures(const PoolingProblem& p, double y, double* d1, double* d2) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  if (p.w && d1) return CurvatureT<K, true, true>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
  if (p.w) return CurvatureT<K, true, false>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
  if (d1) return CurvatureT<K, false, true>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
  return CurvatureT<K, false, false>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
}

// |f'| / max(Σ w|φ'|, 1e-6·|f''|·(max|x| + α)): the optimality residual of pooling_solvers.h. The second term
// matters only when the points' pulls are themselves tiny (every other point far beyond a redescending penalty's
// reach, or a single inlier): |f'| of a y exact to rounding is then of the order of |f''|·ε·(max|x| + α) (the
// differences y − x_i are rounded at the scale of the data), and the residual stays near 1e-10 instead of O(1).
// `scale` is max|x| + α; the residual is |f'| / Σ w|φ'| whenever that sum is the larger.
double ScaledResidual(double g, double gabs, double curvature = 0, double scale = 0) {
  const double denominator = std::max(gabs, 1e-6 * std::abs(curvature) * scale);
  return denominator > 0 ? std::abs(g) / denominator : 0.0;
}

// Weighted median (lower): the smallest x_(k) with Σ_{j≤k} w_(j) ≥ W/2.
double WeightedMedian(const PoolingProblem& p) {
  if (!p.w && p.n > 256) {  // long arrays: introselect's O(n) worst case
    thread_local std::vector<double> buf;
    buf.assign(p.x, p.x + p.n);
    auto mid = buf.begin() + (p.n - 1) / 2;
    std::nth_element(buf.begin(), mid, buf.end());
    return *mid;
  }
  if (!p.w) {
    thread_local std::vector<double> buf;
    buf.resize(2 * p.n);
    std::copy(p.x, p.x + p.n, buf.begin());
    return SelectKth(buf.data(), buf.data() + p.n, p.n, (p.n - 1) / 2);
  }
  thread_local std::vector<std::pair<double, double>> pairs;
  pairs.resize(p.n);
  double total = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    pairs[i] = {p.x[i], p.w[i]};
    total += p.w[i];
  }
  std::sort(pairs.begin(), pairs.end());
  double acc = 0;
  for (const auto& [xi, wi] : pairs) {
    acc += wi;
    if (acc >= 0.5 * total) return xi;
  }
  return pairs.back().first;
}

// The weighted median of a stride sample of at most 127 points: a start for Newton, which need not be exact
// (selecting the median of all N points costs more than the solve).
double SampleMedian(const PoolingProblem& p) {
  const int64_t stride = std::max<int64_t>(1, p.n / 64);
  const int64_t m = (p.n + stride - 1) / stride;
  if (!p.w) {
    // Unweighted: the sample goes straight into the selection's buffer.
    thread_local std::vector<double> buf;
    buf.resize(2 * m);
    for (int64_t i = 0, j = 0; i < p.n; i += stride, ++j) buf[j] = p.x[i];
    return SelectKth(buf.data(), buf.data() + m, m, (m - 1) / 2);
  }
  thread_local std::vector<double> xs, ws;
  xs.clear();
  ws.clear();
  for (int64_t i = 0; i < p.n; i += stride) {
    xs.push_back(p.x[i]);
    ws.push_back(p.w[i]);
  }
  PoolingProblem q = p;
  q.x = xs.data();
  q.w = ws.data();
  q.n = static_cast<int64_t>(xs.size());
  return WeightedMedian(q);
}

void MinMax(const PoolingProblem& p, double* lo, double* hi) {
  double a = p.x[0], b = p.x[0];
#pragma omp simd reduction(min : a) reduction(max : b)
  for (int64_t i = 1; i < p.n; ++i) {
    a = std::min(a, p.x[i]);
    b = std::max(b, p.x[i]);
  }
  *lo = a;
  *hi = b;
}

// Weighted mean, two-pass (the second pass removes the first one's rounding error).
double WeightedMeanScalar(const PoolingProblem& p) {
  const double W = TotalWeight(p);
  double s = 0;
  for (int64_t i = 0; i < p.n; ++i) s += Weight(p.w, i) * p.x[i];
  double m = s / W, c = 0;
  for (int64_t i = 0; i < p.n; ++i) c += Weight(p.w, i) * (p.x[i] - m);
  return m + c / W;
}

// Flags points at the kink |y − x_i| = α of huber and truncated_quadratic.
void FlagScalarKinks(const PoolingProblem& p, double y, ProblemStatus* s) {
  if (p.kind != PenaltyKind::kHuber && p.kind != PenaltyKind::kTruncatedQuadratic) return;
  const double tol = 1e-9 * (p.alpha + std::abs(y));
  for (int64_t i = 0; i < p.n; ++i) {
    if (Weight(p.w, i) > 0 && std::abs(std::abs(y - p.x[i]) - p.alpha) <= tol) {
      s->Set(kNonSmooth, "a point sits at the penalty's kink |y - x_i| = alpha: one-sided derivatives");
      return;
    }
  }
}

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

// ---- Scalar: convex penalties ------------------------------------------------------------------------------

template <PenaltyKind K>
void SolveScalarConvex(const PoolingProblem& p, double lo, double hi, double* y_out, ProblemStatus* s) {
  if (lo == hi) {
    *y_out = lo;
    s->residual = 0;
    return;
  }
  double y = std::clamp(SampleMedian(p), lo, hi);
  ScalarSums S;
  int iterations = 0;
  y = BracketedNewton<K>(p, lo, hi, y, &S, &iterations);
  s->iterations = iterations;
  S = ScalarPass<K, false>(p, y);
  const double xscale = std::max(-lo, hi) + p.alpha;
  s->residual = ScaledResidual(S.g, S.gabs, S.h, xscale);
  if (K == PenaltyKind::kHuber) {
    // A flat minimum: no point strictly within α of y, and f' ≡ 0 between the neighbouring breakpoints
    // a = max_{x_i < y} x_i + α and b = min_{x_i > y} x_i − α.
    double a = -std::numeric_limits<double>::infinity(), b = std::numeric_limits<double>::infinity();
    bool inside = false;
    for (int64_t i = 0; i < p.n; ++i) {
      if (Weight(p.w, i) == 0) continue;
      const double z = y - p.x[i];
      if (std::abs(z) < p.alpha) {
        inside = true;
        break;
      }
      if (z > 0) {
        a = std::max(a, p.x[i] + p.alpha);
      } else {
        b = std::min(b, p.x[i] - p.alpha);
      }
    }
    if (!inside && b > a) {
      const double mid = 0.5 * (a + b);
      const ScalarSums M = ScalarPass<K, false>(p, mid);
      if (std::abs(M.g) <= 1e-9 * M.gabs) {
        y = mid;
        s->residual = ScaledResidual(M.g, M.gabs, M.h, xscale);
        s->Set(kAllOutliers, "huber: every point is beyond alpha at the minimum (H = 0)");
        s->Set(kNonUnique, "huber: f is flat on [" + FormatDouble(a) + ", " + FormatDouble(b) +
                               "]; the midpoint is returned");
      }
    }
  }
  *y_out = y;
  FlagScalarKinks(p, y, s);
}

// ---- Scalar: truncated quadratic, exact sweep ------------------------------------------------------------------

void SolveScalarTruncated(const PoolingProblem& p, double* y_out, ProblemStatus* s) {
  thread_local std::vector<std::pair<double, double>> pts;
  pts.resize(p.n);
  for (int64_t i = 0; i < p.n; ++i) pts[i] = {p.x[i], Weight(p.w, i)};
  std::sort(pts.begin(), pts.end());
  const int64_t n = p.n;
  const double alpha = p.alpha, half_a2 = 0.5 * alpha * alpha;
  // Shift by the middle point so that the running sums of x² keep their precision.
  const double shift = pts[n / 2].first;
  double W = 0;
  for (const auto& pt : pts) W += pt.second;
  // Sweep the breakpoints in order: point e enters at x_e − α, point l leaves at x_l + α. Between two
  // consecutive breakpoints the inliers are the sorted range [l, e).
  int64_t e = 0, l = 0;
  double s0 = 0, s1 = 0, s2 = 0;
  double best_f = std::numeric_limits<double>::infinity(), best_y = 0;
  int64_t best_l = 0, best_e = 0;
  const double tie_tol = 1e-12 * (half_a2 * W);
  bool tie = false;
  double prev = -std::numeric_limits<double>::infinity();
  while (l < n) {
    const double enter = e < n ? pts[e].first - alpha : std::numeric_limits<double>::infinity();
    const double leave = pts[l].first + alpha;
    double next;
    // Interval (prev, next) with inliers [l, e).
    next = std::min(enter, leave);
    if (s0 > 0 && next > prev) {
      const double m = s1 / s0 + shift;
      if (m > prev && m < next) {
        const double ms = m - shift;
        const double f = 0.5 * (s2 - 2 * ms * s1 + ms * ms * s0) + half_a2 * (W - s0);
        if (f < best_f - tie_tol) {
          best_f = f;
          best_y = m;
          best_l = l;
          best_e = e;
          tie = false;
        } else if (f <= best_f + tie_tol) {
          tie = true;
        }
      }
    }
    if (enter <= leave) {
      const double xs = pts[e].first - shift, w = pts[e].second;
      s0 += w;
      s1 += w * xs;
      s2 += w * xs * xs;
      ++e;
    } else {
      const double xs = pts[l].first - shift, w = pts[l].second;
      s0 -= w;
      s1 -= w * xs;
      s2 -= w * xs * xs;
      ++l;
      if (l == e) s0 = s1 = s2 = 0;  // no inliers: clear the rounding residue
    }
    prev = next;
  }
  // Recompute the winner's mean exactly (two-pass over its inliers).
  double sw = 0, sx = 0;
  for (int64_t i = best_l; i < best_e; ++i) {
    sw += pts[i].second;
    sx += pts[i].second * (pts[i].first - shift);
  }
  if (sw > 0) {
    double m = sx / sw, c = 0;
    for (int64_t i = best_l; i < best_e; ++i) c += pts[i].second * (pts[i].first - shift - m);
    best_y = shift + m + c / sw;
  }
  *y_out = best_y;
  s->iterations = 0;
  const ScalarSums S = ScalarPass<PenaltyKind::kTruncatedQuadratic, false>(p, best_y);
  s->residual = ScaledResidual(S.g, S.gabs, S.h,
                               std::max(std::abs(pts.front().first), std::abs(pts.back().first)) + p.alpha);
  if (tie) s->Set(kNonUnique, "truncated_quadratic: several global minima; the smallest y is returned");
  FlagScalarKinks(p, best_y, s);
}

// ---- Scalar: smooth non-convex penalties, branch and bound -----------------------------------------------------

// Local minimisation from y: Newton where f'' > 0, else the IRLS step y − f'/Σwψ (a descent step because φ is
// concave in z²); a step that raises f is replaced by the IRLS step. Returns y; *f = f(y), *residual = the
// scaled |f'| at the last evaluated iterate. After a final step below 1e-12·(|y| + α), f is taken from the
// last pass (the step changes it by O(step²·f''), far below rounding).
template <PenaltyKind K>
double LocalScalar(const PoolingProblem& p, double xscale, double y, double* f, int* iterations,
                   double* residual = nullptr) {
  double f_prev = std::numeric_limits<double>::infinity(), irls_prev = y;
  bool newton_prev = false, converged = false;
  ScalarSums S;
  for (int it = 0; it < 300; ++it) {
    S = ScalarPass<K, true>(p, y);
    ++*iterations;
    if (newton_prev && S.f > f_prev + 1e-13 * std::abs(f_prev)) {
      y = irls_prev;  // reject the Newton step
      newton_prev = false;
      continue;
    }
    if (S.spsi <= 0) break;  // every point beyond reach (cannot happen for these penalties)
    const double irls = y - S.g / S.spsi;
    newton_prev = S.h > 0;
    const double yn = newton_prev ? y - S.g / S.h : irls;
    f_prev = S.f;
    irls_prev = irls;
    const double step = yn - y;
    y = yn;
    if (std::abs(step) <= 1e-12 * (std::abs(y) + p.alpha)) {
      converged = true;
      break;
    }
  }
  if (!converged) {
    S = ScalarPass<K, true>(p, y);
    ++*iterations;
  }
  double r = ScaledResidual(S.g, S.gabs);
  if (converged && r > 1e-9) {
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

struct Bins {
  double origin = 0, width = 0;
  int nb = 0;
  std::vector<int> idx;         // nonempty bins
  std::vector<double> W, lo, hi, S1;  // per nonempty bin: weight, extent, Σ w x
  std::vector<double> T0, T2;   // φ(k·width), φ''(k·width), k = 0..K−1
  double c2min = 0;             // min φ''
  double z2 = 0;
};

template <PenaltyKind K>
void BuildBins(const PoolingProblem& p, double xmin, double xmax, Bins* B) {
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
  B->lo.clear();
  B->hi.clear();
  B->S1.clear();
  const double inv_h = 1.0 / h;  // any assignment of points to bins is valid: bounds use each bin's extent
  auto bin_of = [&](double xi) { return std::clamp(static_cast<int>((xi - xmin) * inv_h), 0, B->nb - 1); };
  if (B->nb <= 2 * p.n) {
    // Dense histogram in four interleaved copies (point i goes to copy i mod 4): consecutive points often fall
    // in the same bin, and one copy would chain every update through the previous one's store. Bins come out
    // in increasing order.
    const int nb = B->nb;
    thread_local std::vector<double> acc;
    acc.resize(static_cast<size_t>(16) * nb);
    for (int l = 0; l < 4; ++l) {
      std::fill_n(acc.data() + (4 * l + 0) * nb, 2 * nb, 0.0);  // weight, Σ w x
      std::fill_n(acc.data() + (4 * l + 2) * nb, nb, std::numeric_limits<double>::infinity());
      std::fill_n(acc.data() + (4 * l + 3) * nb, nb, -std::numeric_limits<double>::infinity());
    }
    auto add = [&](int l, int64_t i) {
      const double xi = p.x[i], wi = Weight(p.w, i);
      if (wi == 0) return;
      const int j = bin_of(xi);
      double* lane = acc.data() + 4 * l * nb;
      lane[j] += wi;
      lane[nb + j] += wi * xi;
      lane[2 * nb + j] = std::min(lane[2 * nb + j], xi);
      lane[3 * nb + j] = std::max(lane[3 * nb + j], xi);
    };
    int64_t i = 0;
    for (; i + 4 <= p.n; i += 4) {
      add(0, i);
      add(1, i + 1);
      add(2, i + 2);
      add(3, i + 3);
    }
    for (; i < p.n; ++i) add(0, i);
    for (int j = 0; j < nb; ++j) {
      double w = 0, s1 = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (int l = 0; l < 4; ++l) {
        const double* lane = acc.data() + 4 * l * nb;
        w += lane[j];
        s1 += lane[nb + j];
        lo = std::min(lo, lane[2 * nb + j]);
        hi = std::max(hi, lane[3 * nb + j]);
      }
      if (!(lo <= hi)) continue;  // no point of positive weight
      B->idx.push_back(j);
      B->W.push_back(w);
      B->S1.push_back(s1);
      B->lo.push_back(lo);
      B->hi.push_back(hi);
    }
  } else {
    // Sparse data (far more bins than points): slots for the nonempty bins only.
    thread_local std::vector<int> slot;
    slot.assign(B->nb, -1);
    for (int64_t i = 0; i < p.n; ++i) {
      const double wi = Weight(p.w, i);
      if (wi == 0) continue;
      int& k = slot[bin_of(p.x[i])];
      if (k < 0) {
        k = static_cast<int>(B->idx.size());
        B->idx.push_back(bin_of(p.x[i]));
        B->W.push_back(0);
        B->lo.push_back(p.x[i]);
        B->hi.push_back(p.x[i]);
        B->S1.push_back(0);
      }
      B->W[k] += wi;
      B->S1[k] += wi * p.x[i];
      B->lo[k] = std::min(B->lo[k], p.x[i]);
      B->hi[k] = std::max(B->hi[k], p.x[i]);
    }
  }
  B->z2 = pen.CurvatureMinimiser();
  B->c2min = pen.D2(B->z2);
  // Tables up to the larger of the data span and z₂ (at most 512 entries; beyond them φ and φ'' are bounded
  // below by their last entries because both increase with |z| past z₂).
  const int kt = std::min(std::max(B->nb + 2, static_cast<int>(std::ceil(B->z2 / h)) + 2), 512);
  B->T0.resize(kt);
  B->T2.resize(kt);
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  for (int k = 0; k < kt; ++k) {
    const PenaltyValues v = EvaluatePenalty<K>(k * h, p.alpha, inv_a2);
    B->T0[k] = v.phi;
    B->T2[k] = v.d2;
  }
}

// Lower bounds on one cell [a, b]: lb_f ≤ min f, lb_h ≤ min f''. For a bin with points in [lo, hi]:
// |y − x| ∈ [dist, uh] with dist = max(0, a − hi, lo − b) and uh = max(b − lo, hi − a); φ(dist) (rounded down
// to the table grid) bounds its points' φ, and the minimum of φ'' over [dist, uh] (grid-rounded outwards) their
// φ''. Branch-free, so that it vectorises (baseline and AVX2 copies as for the passes).
// Over the bins k ≥ `first` (the AVX2 copy below does the tail, m mod 4 bins, with this loop).
// The bins and tables as raw pointers and scalars, shared by the scalar loop and the AVX2 copy.
struct BinView {
  explicit BinView(const Bins& B)
      : W(B.W.data()), LO(B.lo.data()), HI(B.hi.data()), T0(B.T0.data()), T2(B.T2.data()), h(B.width),
        inv_h(1.0 / B.width), z2(B.z2), c2min(B.c2min), kmax(static_cast<double>(B.T0.size()) - 1),
        m(static_cast<int>(B.W.size())) {}
  const double *W, *LO, *HI, *T0, *T2;
  double h, inv_h, z2, c2min, kmax;
  int m;
};

template <bool kCurvature>
[[gnu::always_inline]] inline void BinBoundsLoop(const Bins& B, double a, double b, double* lb_f, double* lb_h,
                                                 int first = 0) {
  const BinView v(B);
  const double h = v.h, inv_h = v.inv_h, z2 = v.z2, c2min = v.c2min, kmax = v.kmax;
  const double *W = v.W, *LO = v.LO, *HI = v.HI, *T0 = v.T0, *T2 = v.T2;
  const int m = v.m;
  const double shrink = 1 - 1e-12, grow = 1 + 1e-12;
  double f = 0, c = 0;
#pragma omp simd reduction(+ : f, c)
  for (int k = first; k < m; ++k) {
    const double lo = LO[k], hi = HI[k];
    const double dist = std::max(0.0, std::max(a - hi, lo - b));
    const double kd = std::min(kmax, std::floor(dist * inv_h * shrink));
    if (!kCurvature) {
      f += W[k] * T0[static_cast<int>(kd)];
    } else {
      const double uh = std::max(b - lo, hi - a);
      const double ku = std::min(kmax, std::ceil(uh * inv_h * grow));
      // φ'' decreases on [0, z₂] and increases after: the minimum over [kd·h, ku·h] is φ''(z₂) if z₂ is inside,
      // else the table value at the end nearer to z₂ (past the table, the last entry bounds it from below).
      const bool contains = kd * h <= z2 && z2 <= ku * h;
      const double t_left = T2[static_cast<int>(ku)], t_right = T2[static_cast<int>(kd)];
      const double c2 = contains ? c2min : (ku * h < z2 ? t_left : t_right);
      c += W[k] * c2;
    }
  }
  if (!kCurvature) *lb_f = f;
  if (kCurvature) *lb_h = c;
}

// Baseline and AVX2 copies; the curvature bound is only computed for cells that the value bound cannot prune.
void BinBoundsBaseline(const Bins& B, double a, double b, double best_f, double* lb_f, double* lb_h) {
  BinBoundsLoop<false>(B, a, b, lb_f, lb_h);
  if (*lb_f < best_f) BinBoundsLoop<true>(B, a, b, lb_f, lb_h);
}

#if defined(__GNUC__) && defined(__x86_64__)
// BinBoundsLoop written with AVX2 intrinsics, four bins at a time: GCC does not vectorise the table lookups
// (gathers) inside a target("avx2") function, and the scalar loop mispredicts its selects. Same arithmetic,
// same order within each lane; the tail (m mod 4 bins) goes through the scalar loop.
[[gnu::target("avx2,fma")]] void BinBoundsAvx2(const Bins& B, double a, double b, double best_f, double* lb_f,
                                               double* lb_h) {
  const BinView v(B);
  const double h = v.h, inv_h = v.inv_h, z2 = v.z2, c2min = v.c2min, kmax = v.kmax;
  const double *W = v.W, *LO = v.LO, *HI = v.HI, *T0 = v.T0, *T2 = v.T2;
  const int m = v.m, m4 = m - m % 4;
  const __m256d va = _mm256_set1_pd(a), vb = _mm256_set1_pd(b), zero = _mm256_setzero_pd();
  const __m256d scale_down = _mm256_set1_pd(inv_h * (1 - 1e-12)), scale_up = _mm256_set1_pd(inv_h * (1 + 1e-12));
  const __m256d vkmax = _mm256_set1_pd(kmax), vh = _mm256_set1_pd(h), vz2 = _mm256_set1_pd(z2);
  const __m256d vc2min = _mm256_set1_pd(c2min);
  const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
  // Gathers T[idx[0..3]] (the masked form with every lane on: the plain one trips -Wmaybe-uninitialized in GCC 12).
#define DDN_GATHER(table, idx) _mm256_mask_i32gather_pd(zero, table, _mm256_cvttpd_epi32(idx), all, 8)
  // Index of the table entry below the distance: kd = min(kmax, floor(dist·(1 − 1e-12)/h)), as in the scalar
  // loop (a lambda would not inherit the target attribute).
#define DDN_LOWER_INDEX(lo, hi)                                                                                  \
  _mm256_min_pd(vkmax, _mm256_floor_pd(_mm256_mul_pd(                                                          \
                           _mm256_max_pd(zero, _mm256_max_pd(_mm256_sub_pd(va, hi), _mm256_sub_pd(lo, vb))), \
                           scale_down)))
  __m256d f4 = zero;
  for (int k = 0; k < m4; k += 4) {
    const __m256d kd = DDN_LOWER_INDEX(_mm256_loadu_pd(LO + k), _mm256_loadu_pd(HI + k));
    const __m256d t0 = DDN_GATHER(T0, kd);
    f4 = _mm256_fmadd_pd(_mm256_loadu_pd(W + k), t0, f4);
  }
  double f = 0, c = 0;
  BinBoundsLoop<false>(B, a, b, &f, &c, m4);
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, f4);
  *lb_f = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + f;
  if (*lb_f >= best_f) return;

  __m256d c4 = zero;
  for (int k = 0; k < m4; k += 4) {
    const __m256d lo = _mm256_loadu_pd(LO + k), hi = _mm256_loadu_pd(HI + k);
    const __m256d kd = DDN_LOWER_INDEX(lo, hi);
    const __m256d uh = _mm256_max_pd(_mm256_sub_pd(vb, lo), _mm256_sub_pd(hi, va));
    const __m256d ku = _mm256_min_pd(vkmax, _mm256_ceil_pd(_mm256_mul_pd(uh, scale_up)));
    const __m256d kd_h = _mm256_mul_pd(kd, vh), ku_h = _mm256_mul_pd(ku, vh);
    const __m256d contains =
        _mm256_and_pd(_mm256_cmp_pd(kd_h, vz2, _CMP_LE_OQ), _mm256_cmp_pd(vz2, ku_h, _CMP_LE_OQ));
    const __m256d left = _mm256_cmp_pd(ku_h, vz2, _CMP_LT_OQ);
    const __m256d t_left = DDN_GATHER(T2, ku);
    const __m256d t_right = DDN_GATHER(T2, kd);
    const __m256d c2 = _mm256_blendv_pd(_mm256_blendv_pd(t_right, t_left, left), vc2min, contains);
    c4 = _mm256_fmadd_pd(_mm256_loadu_pd(W + k), c2, c4);
  }
  BinBoundsLoop<true>(B, a, b, &f, &c, m4);
  _mm256_store_pd(lanes, c4);
  *lb_h = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + c;
#undef DDN_LOWER_INDEX
#undef DDN_GATHER
}
#endif

void BinBounds(const Bins& B, double a, double b, double best_f, double* lb_f, double* lb_h) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (kHaveAvx2) return BinBoundsAvx2(B, a, b, best_f, lb_f, lb_h);
#endif
  BinBoundsBaseline(B, a, b, best_f, lb_f, lb_h);
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

template <PenaltyKind K>
void SolveScalarNonConvex(const PoolingProblem& p, double xmin, double xmax, double* y_out, ProblemStatus* s,
                          const PoolingOptions& o) {
  if (xmin == xmax) {
    *y_out = xmin;
    s->residual = 0;
    return;
  }
  const double xscale = std::max(-xmin, xmax) + p.alpha;
  thread_local Bins B;
  BuildBins<K>(p, xmin, xmax, &B);
  int iterations = 0;

  // Start: the weighted mean of the densest window of 2α (16 bins at the default width).
  const int win = std::max(1, static_cast<int>(std::lround(2 * p.alpha / B.width)));
  double y0;
  {
    thread_local std::vector<double> wb, sb;
    wb.assign(B.nb + 1, 0.0);
    sb.assign(B.nb + 1, 0.0);
    for (size_t k = 0; k < B.idx.size(); ++k) {
      wb[B.idx[k] + 1] += B.W[k];
      sb[B.idx[k] + 1] += B.S1[k];
    }
    for (int j = 0; j < B.nb; ++j) {
      wb[j + 1] += wb[j];
      sb[j + 1] += sb[j];
    }
    int best_j = 0;
    double best_w = -1;
    for (int j = 0; j < B.nb; ++j) {
      const int e = std::min(B.nb, j + win);
      if (wb[e] - wb[j] > best_w) {
        best_w = wb[e] - wb[j];
        best_j = j;
      }
    }
    const int e = std::min(B.nb, best_j + win);
    y0 = (sb[e] - sb[best_j]) / (wb[e] - wb[best_j]);
  }
  double best_f;
  double best_res;
  double best_y = LocalScalar<K>(p, xscale, y0, &best_f, &iterations, &best_res);

  struct Minimum {
    double y, f, residual;
  };
  std::vector<Minimum> minima{{best_y, best_f, best_res}};
  struct Cell {
    double a, b;
    int p, q;  // bin range [p, q); p < 0 for a point-level cell
  };
  std::vector<Cell> stack;
  std::vector<std::pair<double, double>> convex;  // cells where f is proved convex
  const int chunk = std::max(1, static_cast<int>(std::lround(4 * p.alpha / B.width)));  // initial cells: 4α
  for (int j = B.nb; j > 0; j -= chunk) {
    const int a = std::max(0, j - chunk);
    stack.push_back({B.origin + a * B.width, B.origin + j * B.width, a, j});
  }
  const PenaltyEval pen(p.kind, p.alpha);
  int cells = 0;
  bool certified = true;
  const double min_width = 1e-10 * (p.alpha + std::abs(best_y));
  // |f''| ≤ Σ w max |φ''| = W·φ''(0) for welsch, cauchy and geman_mcclure (|φ''(z₂)| < φ''(0)).
  const double curvature_bound = TotalWeight(p) * pen.D2(0.0);
  // Minima within this of the best are ties (the same tolerance as below): cells that may hold one are kept, so
  // that a tie is found and flagged (kNonUnique) rather than pruned as "not below the incumbent".
  const double tie_scale = TotalWeight(p) * pen.Phi(p.alpha);
  auto prune_level = [&]() { return best_f + 1e-12 * (std::abs(best_f) + tie_scale); };
  while (!stack.empty()) {
    const Cell c = stack.back();
    stack.pop_back();
    if (++cells > o.max_cells) {
      certified = false;
      break;
    }
    double lb_f = 0, lb_h = 0;
    const double level = prune_level();
    if (c.p >= 0) {
      BinBounds(B, c.a, c.b, level, &lb_f, &lb_h);
    } else {
      PointBounds(p, pen, c.a, c.b, &lb_f, &lb_h);
    }
    if (lb_f >= level) continue;  // nothing below the incumbent (or tied with it) here
    if (lb_h >= 0) {
      convex.push_back({c.a, c.b});  // resolved below, merged with its convex neighbours
      continue;
    }
    if (c.p < 0 || c.q - c.p < 2) {
      // A fine cell (one bin or less) that is neither pruned nor convex: look at its centre. A point below the
      // incumbent starts a local solve; |f'(centre)| > L·r (L bounds |f''|) means f is monotone on the cell, so
      // its minimum is at an endpoint, which the neighbouring cell covers.
      const double yc = 0.5 * (c.a + c.b), r = 0.5 * (c.b - c.a);
      const ScalarSums S = ScalarPass<K, true>(p, yc);
      ++iterations;
      if (S.f < level) {
        double fl, rl;
        const double yl = LocalScalar<K>(p, xscale, yc, &fl, &iterations, &rl);
        minima.push_back({yl, fl, rl});
        if (fl < best_f) {
          best_f = fl;
          best_y = yl;
        }
      }
      if (std::abs(S.g) > curvature_bound * r * (1 + 1e-12)) continue;
    }
    if (c.p >= 0 && c.q - c.p >= 2) {
      const int mid = (c.p + c.q) / 2;
      const double xm = B.origin + mid * B.width;
      stack.push_back({xm, c.b, mid, c.q});
      stack.push_back({c.a, xm, c.p, mid});
    } else if (c.b - c.a > min_width) {
      const double xm = 0.5 * (c.a + c.b);
      stack.push_back({xm, c.b, -1, -1});
      stack.push_back({c.a, xm, -1, -1});
    } else {
      certified = false;  // a degenerate stationary point (f'' = 0) or a budget too small
    }
  }
  // Convex cells: merge touching ones into runs (f is convex on a run). A run holding a stationary point found
  // before has it as its minimiser; otherwise its minimum is an endpoint (f' ≥ 0 at the left end, or ≤ 0 at
  // the right end) or the root of f' inside, found by Newton.
  std::sort(convex.begin(), convex.end());
  for (size_t r = 0; r < convex.size();) {
    double a = convex[r].first, b = convex[r].second;
    size_t e = r + 1;
    while (e < convex.size() && convex[e].first <= b) b = std::max(b, convex[e++].second);
    r = e;
    bool known = false;
    for (const Minimum& m : minima) known |= (m.y >= a && m.y <= b);
    if (known) continue;
    const ScalarSums Sa = ScalarPass<K, true>(p, a), Sb = ScalarPass<K, true>(p, b);
    iterations += 2;
    double yc, fc;
    if (Sa.g >= 0) {
      yc = a;
      fc = Sa.f;
    } else if (Sb.g <= 0) {
      yc = b;
      fc = Sb.f;
    } else {
      yc = BracketedNewton<K>(p, a, b, 0.5 * (a + b), nullptr, &iterations);
      const ScalarSums Sc = ScalarPass<K, true>(p, yc);
      fc = Sc.f;
      minima.push_back({yc, fc, ScaledResidual(Sc.g, Sc.gabs, Sc.h, xscale)});
    }
    if (fc < best_f) {
      best_f = fc;
      best_y = yc;
    }
  }
  // The incumbent may be an endpoint candidate: polish it to a stationary point (it is a local minimum).
  bool stationary = false;
  for (const Minimum& m : minima) stationary |= (m.y == best_y);
  if (!stationary) {
    double f2, r2;
    const double y2 = LocalScalar<K>(p, xscale, best_y, &f2, &iterations, &r2);
    if (f2 <= best_f) minima.push_back({y2, f2, r2});
  }
  // Among the minima found, those within the tie tolerance of the best are global minima: return the smallest.
  best_f = std::numeric_limits<double>::infinity();
  for (const Minimum& m : minima) best_f = std::min(best_f, m.f);
  const double tie_tol = 1e-12 * (std::abs(best_f) + TotalWeight(p) * pen.Phi(p.alpha));
  best_y = std::numeric_limits<double>::infinity();
  for (const Minimum& m : minima) {
    if (m.f <= best_f + tie_tol && m.y < best_y) {
      best_y = m.y;
      best_res = m.residual;
    }
  }
  for (const Minimum& m : minima) {
    if (m.f <= best_f + tie_tol && std::abs(m.y - best_y) > 1e-8 * (p.alpha + std::abs(best_y))) {
      s->Set(kNonUnique, PenaltyName(p.kind) + ": several global minima (within 1e-12); the smallest is returned");
      break;
    }
  }
  if (!certified) {
    s->Set(kNotCertified, PenaltyName(p.kind) + ": branch and bound did not finish (" + std::to_string(cells) +
                              " cells); best local minimum returned");
  }
  *y_out = best_y;
  s->iterations = iterations + cells;
  s->residual = best_res;  // at the last iterate of the local solve that found y (see LocalScalar)
}

// ---- Vector -----------------------------------------------------------------------------------------------------

struct VectorSums {
  double f = 0;
  Eigen::VectorXd g;  // Σ w ψ r
  Eigen::MatrixXd M;  // Σ w (φ'' − ψ)/‖r‖² r rᵀ
  double spsi = 0;    // Σ w ψ
  double gabs = 0;    // Σ w |φ'|
  double hsum = 0;    // Σ w (|ψ| + |φ''|)
};

// The points of a vector problem stored by coordinate (D rows of N, a copy made once per problem): the passes
// then run over contiguous memory, vectorised across points.
struct VectorPoints {
  const PoolingProblem* problem = nullptr;
  const double* cols = nullptr;  // cols[k·N + i] = x_i[k]
  double xmax = 0;               // max |x_i[k]|
};

VectorPoints ByCoordinate(const PoolingProblem& p) {
  thread_local std::vector<double> cols;
  cols.resize(static_cast<size_t>(p.n * p.d));
  double m = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    for (int64_t k = 0; k < p.d; ++k) {
      const double v = p.x[i * p.d + k];
      cols[k * p.n + i] = v;
      m = std::max(m, std::abs(v));
    }
  }
  return {&p, cols.data(), m};
}

// The raw sums of one pass (the lower triangle of M only).
struct VectorPassOut {
  double f, spsi, gabs, hsum;
};

// One pass over the points in blocks of kVectorBlock: residuals R = y − x (by coordinate), the penalty of every
// ‖r_i‖, then g = Σ wψ r and the lower triangle of M = Σ c r rᵀ as dot products over the block's points. Every
// loop runs over contiguous points; inlined into a baseline and an AVX2+FMA copy as the scalar passes.
constexpr int64_t kVectorBlock = 256;

template <PenaltyKind K, bool kHessian, bool kWeighted>
[[gnu::always_inline]] inline VectorPassOut VectorLoop(const double* cols, const double* w, int64_t n, int64_t d,
                                                       const double* y, double alpha, double inv_a2, double* R,
                                                       double* g, double* M) {
  double f = 0, spsi = 0, gabs = 0, hsum = 0;
  double z2[kVectorBlock], wpsi[kVectorBlock], cw[kVectorBlock];
  double* CR = R + d * kVectorBlock;
  for (int64_t k = 0; k < d; ++k) g[k] = 0;
  if (kHessian)
    for (int64_t k = 0; k < d * d; ++k) M[k] = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kVectorBlock) {
    const int64_t nb = std::min(kVectorBlock, n - i0);
    for (int64_t j = 0; j < nb; ++j) z2[j] = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double* xk = cols + k * n + i0;
      double* rk = R + k * kVectorBlock;
      const double yk = y[k];
#pragma omp simd
      for (int64_t j = 0; j < nb; ++j) {
        rk[j] = yk - xk[j];
        z2[j] += rk[j] * rk[j];
      }
    }
#pragma omp simd reduction(+ : f, spsi, gabs, hsum)
    for (int64_t j = 0; j < nb; ++j) {
      const double zz = z2[j];
      const PenaltyValues v = EvaluatePenalty<K>(std::sqrt(zz), alpha, inv_a2);
      const double wi = kWeighted ? w[i0 + j] : 1.0;
      f += wi * v.phi;
      spsi += wi * v.psi;
      gabs += wi * std::abs(v.d1);
      hsum += wi * (std::abs(v.psi) + std::abs(v.d2));
      wpsi[j] = wi * v.psi;
      cw[j] = zz > 0 ? wi * (v.d2 - v.psi) / (zz > 0 ? zz : 1.0) : 0.0;
    }
    for (int64_t k = 0; k < d; ++k) {
      const double* rk = R + k * kVectorBlock;
      double gk = 0;
#pragma omp simd reduction(+ : gk)
      for (int64_t j = 0; j < nb; ++j) gk += wpsi[j] * rk[j];
      g[k] += gk;
      if (!kHessian) continue;
      double* crk = CR + k * kVectorBlock;  // c ⊙ r_k, so that each M(k, l) is one dot product
#pragma omp simd
      for (int64_t j = 0; j < nb; ++j) crk[j] = cw[j] * rk[j];
      for (int64_t l = 0; l <= k; ++l) {
        const double* rl = R + l * kVectorBlock;
        double mkl = 0;
#pragma omp simd reduction(+ : mkl)
        for (int64_t j = 0; j < nb; ++j) mkl += crk[j] * rl[j];
        M[k + l * d] += mkl;  // column-major (Eigen's default), lower triangle
      }
    }
  }
  return {f, spsi, gabs, hsum};
}

template <PenaltyKind K, bool kHessian, bool kWeighted>
VectorPassOut VectorPassBaseline(const double* cols, const double* w, int64_t n, int64_t d, const double* y,
                                 double alpha, double inv_a2, double* R, double* g, double* M) {
  return VectorLoop<K, kHessian, kWeighted>(cols, w, n, d, y, alpha, inv_a2, R, g, M);
}

#if defined(__GNUC__) && defined(__x86_64__)
template <PenaltyKind K, bool kHessian, bool kWeighted>
[[gnu::target("avx2,fma")]] VectorPassOut VectorPassAvx2(const double* cols, const double* w, int64_t n, int64_t d,
                                                         const double* y, double alpha, double inv_a2, double* R,
                                                         double* g, double* M) {
  return VectorLoop<K, kHessian, kWeighted>(cols, w, n, d, y, alpha, inv_a2, R, g, M);
}
#endif

template <PenaltyKind K, bool kHessian>
void VectorPass(const VectorPoints& points, const double* y, VectorSums* S) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  thread_local std::vector<double> R;
  R.resize(static_cast<size_t>(2 * d * kVectorBlock));  // residuals, then c ⊙ residuals
  S->g.resize(d);
  if (kHessian) S->M.resize(d, d);
  double* M = kHessian ? S->M.data() : nullptr;
  VectorPassOut out;
#if defined(__GNUC__) && defined(__x86_64__)
  if (kHaveAvx2) {
    out = p.w ? VectorPassAvx2<K, kHessian, true>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2, R.data(),
                                                  S->g.data(), M)
              : VectorPassAvx2<K, kHessian, false>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2, R.data(),
                                                   S->g.data(), M);
  } else
#endif
  {
    out = p.w ? VectorPassBaseline<K, kHessian, true>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2, R.data(),
                                                      S->g.data(), M)
              : VectorPassBaseline<K, kHessian, false>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2, R.data(),
                                                       S->g.data(), M);
  }
  S->f = out.f;
  S->spsi = out.spsi;
  S->gabs = out.gabs;
  S->hsum = out.hsum;
}

double Norm(const Eigen::VectorXd& v) { return v.lpNorm<Eigen::Infinity>(); }

// Local minimisation (all penalties but the truncated quadratic): Newton when H is positive definite, else
// the IRLS step y − g/Σwψ; a step that raises f is replaced by the IRLS step. Returns f(y).
template <PenaltyKind K>
double LocalVector(const VectorPoints& points, Eigen::VectorXd* y, int* iterations,
                   const std::vector<std::pair<Eigen::VectorXd, double>>* known = nullptr) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  VectorSums S;
  Eigen::VectorXd y_prev = *y, irls_prev = *y, step(d);
  double f_prev = std::numeric_limits<double>::infinity();
  bool newton_prev = false;
  Eigen::MatrixXd H(d, d);
  Eigen::LLT<Eigen::MatrixXd> llt(d);
  for (int it = 0; it < 500; ++it) {
    VectorPass<K, true>(points, y->data(), &S);
    ++*iterations;
    if (newton_prev && S.f > f_prev + 1e-13 * std::abs(f_prev)) {
      *y = irls_prev;
      newton_prev = false;
      continue;
    }
    if (S.spsi <= 0) break;
    if (known) {
      // A start that enters the neighbourhood (1e-2·α, deep inside its basin) of a minimum found from an
      // earlier start ends there: it would converge to the same point.
      for (const auto& [yy, ff] : *known) {
        if ((*y - yy).norm() <= 1e-2 * p.alpha) {
          *y = yy;
          return ff;
        }
      }
    }
    irls_prev = *y - S.g / S.spsi;
    H = S.M.selfadjointView<Eigen::Lower>();
    H.diagonal().array() += S.spsi;
    llt.compute(H);
    newton_prev = llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > 1e-8 * std::sqrt(S.hsum);
    if (newton_prev) {
      step = -llt.solve(S.g);
    } else {
      step = irls_prev - *y;
    }
    y_prev = *y;
    f_prev = S.f;
    *y += step;
    if (Norm(step) <= 1e-12 * (Norm(*y) + p.alpha)) break;
  }
  VectorPass<K, false>(points, y->data(), &S);
  return S.f;
}

// Scoring candidate starts: f(y) over a stride sample of at most kScoreSample·2 points (i = 0, s, 2s, ...),
// stored by coordinate (d rows of m) once per problem; the loop runs over the sample's points (baseline and
// AVX2+FMA copies as the passes).
constexpr int64_t kScoreSample = 64;

struct ScoreSample {
  std::vector<double> cols, w;  // cols[k·m + j]
  int64_t m = 0;
};

void BuildScoreSample(const VectorPoints& points, ScoreSample* S) {
  const PoolingProblem& p = *points.problem;
  const int64_t stride = std::max<int64_t>(1, p.n / kScoreSample);
  S->m = (p.n + stride - 1) / stride;  // < 2·kScoreSample
  S->cols.resize(static_cast<size_t>(S->m * p.d));
  S->w.resize(static_cast<size_t>(S->m));
  for (int64_t j = 0; j < S->m; ++j) S->w[j] = Weight(p.w, j * stride);
  for (int64_t k = 0; k < p.d; ++k)
    for (int64_t j = 0; j < S->m; ++j) S->cols[k * S->m + j] = points.cols[k * p.n + j * stride];
}

template <PenaltyKind K>
[[gnu::always_inline]] inline double ScoreLoop(const double* cols, const double* w, int64_t m, int64_t d,
                                               const double* y, double alpha, double inv_a2) {
  double z2[2 * kScoreSample];
  for (int64_t j = 0; j < m; ++j) z2[j] = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double* ck = cols + k * m;
    const double yk = y[k];
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) z2[j] += (yk - ck[j]) * (yk - ck[j]);
  }
  double f = 0;
#pragma omp simd reduction(+ : f)
  for (int64_t j = 0; j < m; ++j) f += w[j] * EvaluatePenalty<K>(std::sqrt(z2[j]), alpha, inv_a2).phi;
  return f;
}

template <PenaltyKind K>
double ScoreBaseline(const double* cols, const double* w, int64_t m, int64_t d, const double* y, double alpha,
                     double inv_a2) {
  return ScoreLoop<K>(cols, w, m, d, y, alpha, inv_a2);
}

#if defined(__GNUC__) && defined(__x86_64__)
template <PenaltyKind K>
[[gnu::target("avx2,fma")]] double ScoreAvx2(const double* cols, const double* w, int64_t m, int64_t d,
                                             const double* y, double alpha, double inv_a2) {
  return ScoreLoop<K>(cols, w, m, d, y, alpha, inv_a2);
}
#endif

template <PenaltyKind K>
double SampleObjective(const PoolingProblem& p, const ScoreSample& S, const double* y) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
#if defined(__GNUC__) && defined(__x86_64__)
  if (kHaveAvx2) return ScoreAvx2<K>(S.cols.data(), S.w.data(), S.m, p.d, y, p.alpha, inv_a2);
#endif
  return ScoreBaseline<K>(S.cols.data(), S.w.data(), S.m, p.d, y, p.alpha, inv_a2);
}

// The coordinate-wise (weighted, lower) median of a stride sample of at most kMedianSample points: a robust start
// for the local solves, which need not be exact (N selections of N values cost more than the solve itself).
constexpr int64_t kMedianSample = 64;

Eigen::VectorXd CoordinateMedian(const VectorPoints& points) {
  const PoolingProblem& p = *points.problem;
  const int64_t stride = std::max<int64_t>(1, p.n / kMedianSample);
  thread_local std::vector<double> col, weights;
  Eigen::VectorXd m(p.d);
  for (int64_t k = 0; k < p.d; ++k) {
    col.clear();
    weights.clear();
    for (int64_t i = 0; i < p.n; i += stride) {
      col.push_back(points.cols[k * p.n + i]);
      weights.push_back(Weight(p.w, i));
    }
    PoolingProblem q = p;
    q.x = col.data();
    q.w = p.w ? weights.data() : nullptr;
    q.n = static_cast<int64_t>(col.size());
    q.d = 1;
    m[k] = WeightedMedian(q);
  }
  return m;
}

Eigen::VectorXd WeightedMeanVector(const PoolingProblem& p) {
  const double W = TotalWeight(p);
  Eigen::VectorXd m = Eigen::VectorXd::Zero(p.d), c = Eigen::VectorXd::Zero(p.d);
  for (int64_t i = 0; i < p.n; ++i)
    for (int64_t k = 0; k < p.d; ++k) m[k] += Weight(p.w, i) * p.x[i * p.d + k];
  m /= W;
  for (int64_t i = 0; i < p.n; ++i)
    for (int64_t k = 0; k < p.d; ++k) c[k] += Weight(p.w, i) * (p.x[i * p.d + k] - m[k]);
  return m + c / W;
}

void FlagVectorKinks(const PoolingProblem& p, const double* y, ProblemStatus* s) {
  if (p.kind != PenaltyKind::kHuber && p.kind != PenaltyKind::kTruncatedQuadratic) return;
  double ymax = 0;
  for (int64_t k = 0; k < p.d; ++k) ymax = std::max(ymax, std::abs(y[k]));
  const double tol = 1e-9 * (p.alpha + ymax);
  for (int64_t i = 0; i < p.n; ++i) {
    if (Weight(p.w, i) == 0) continue;
    double z2 = 0;
    for (int64_t k = 0; k < p.d; ++k) z2 += (y[k] - p.x[i * p.d + k]) * (y[k] - p.x[i * p.d + k]);
    if (std::abs(std::sqrt(z2) - p.alpha) <= tol) {
      s->Set(kNonSmooth, "a point sits at the penalty's kink |y - x_i| = alpha: one-sided derivatives");
      return;
    }
  }
}

template <PenaltyKind K>
void SolveVectorT(const VectorPoints& points, double* y_out, ProblemStatus* s, const PoolingOptions& o,
                  VectorStart* start) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  int iterations = 0;
  Eigen::VectorXd best;
  double best_f;
  if constexpr (K == PenaltyKind::kQuadratic) {
    best = WeightedMeanVector(p);
    best_f = 0;
  } else if constexpr (K == PenaltyKind::kPseudoHuber || K == PenaltyKind::kHuber) {
    best = CoordinateMedian(points);
    if (start) *start = {VectorStart::kMedian, -1, std::vector<double>(best.data(), best.data() + d)};
    best_f = LocalVector<K>(points, &best, &iterations);
  } else if constexpr (K == PenaltyKind::kTruncatedQuadratic) {
    // Exact (truncated_vector.h): every data point and the median and mean start the inlier-mean iteration, then a
    // branch and bound certifies the best fixed point.
    const Eigen::VectorXd median = CoordinateMedian(points), mean = WeightedMeanVector(p);
    const std::vector<std::vector<double>> starts{{median.data(), median.data() + d}, {mean.data(), mean.data() + d}};
    TruncatedVectorOptions to;
    to.max_cells = o.vector_max_cells;
    best.resize(d);
    const TruncatedVectorResult r = SolveTruncatedVector(p, points.cols, starts, best.data(), to);
    best_f = r.f;
    iterations = static_cast<int>(std::min<int64_t>(r.iterations + r.cells, std::numeric_limits<int>::max()));
    if (r.tie) {
      s->Set(kNonUnique, "truncated_quadratic: distinct minima with equal objective; the first found is returned");
    }
    if (!r.certified) {
      s->Set(kNotCertified, "truncated_quadratic (vector): best of " + std::to_string(r.starts) +
                                " inlier-mean iterations; the branch and bound ran out of its budget of " +
                                std::to_string(o.vector_max_cells) + " cells, or N is too large to start from every point");
    }
  } else {
    // Starts: coordinate-wise median, weighted mean, and the data points of lowest f among a stride sample.
    std::vector<Eigen::VectorXd> starts{CoordinateMedian(points), WeightedMeanVector(p)};
    const int64_t m = std::min<int64_t>(p.n, o.vector_candidates);
    std::vector<std::pair<double, int64_t>> scored;
    thread_local ScoreSample sample;
    BuildScoreSample(points, &sample);
    for (int64_t c = 0; c < m; ++c) {
      const int64_t i = (c * p.n) / m;
      if (Weight(p.w, i) == 0) continue;
      scored.push_back({SampleObjective<K>(p, sample, p.x + i * d), i});
    }
    std::sort(scored.begin(), scored.end());
    for (int k = 0; k < o.vector_starts && k < static_cast<int>(scored.size()); ++k) {
      starts.push_back(Eigen::Map<const Eigen::VectorXd>(p.x + scored[k].second * d, d));
    }
    std::vector<std::pair<Eigen::VectorXd, double>> found;
    best_f = std::numeric_limits<double>::infinity();
    for (size_t j = 0; j < starts.size(); ++j) {
      Eigen::VectorXd y = starts[j];
      const double f = LocalVector<K>(points, &y, &iterations, &found);
      bool dup = false;
      for (const auto& [yy, ff] : found) dup |= (y - yy).norm() <= 1e-7 * (p.alpha + Norm(y));
      if (!dup) found.push_back({y, f});
      if (f < best_f) {
        best_f = f;
        best = y;
        if (start) {
          *start = {j == 0 ? VectorStart::kMedian : j == 1 ? VectorStart::kMean : VectorStart::kPoint,
                    j < 2 ? -1 : scored[j - 2].second,
                    std::vector<double>(starts[j].data(), starts[j].data() + d)};
        }
      }
    }
    if (best.size() != d) {
      // No start reached a finite objective (cannot happen inside the scale envelope; kept as a guard).
      throw NumericalFailure(PenaltyName(p.kind) + " (vector): no local solve reached a finite objective");
    }
    const double tie_tol = 1e-12 * (std::abs(best_f) + TotalWeight(p) * PenaltyEval(p.kind, p.alpha).Phi(p.alpha));
    for (const auto& [yy, ff] : found) {
      if ((yy - best).norm() > 1e-7 * (p.alpha + Norm(best)) && ff <= best_f + tie_tol) {
        s->Set(kNonUnique, PenaltyName(p.kind) + ": distinct minima with equal objective; the first found is returned");
        break;
      }
    }
    s->Set(kNotCertified, PenaltyName(p.kind) + " (vector): best of " + std::to_string(starts.size()) +
                              " local solves; global optimality is not certified");
  }
  (void)best_f;
  for (int64_t k = 0; k < d; ++k) y_out[k] = best[k];
  s->iterations = iterations;
  VectorSums S;
  VectorPass<K, false>(points, y_out, &S);
  s->residual = ScaledResidual(Norm(S.g), S.gabs, S.hsum, points.xmax + p.alpha);
  FlagVectorKinks(p, y_out, s);
}

// ---- Extreme scales -----------------------------------------------------------------------------------------------
//
// Robust pooling is covariant under a joint scaling of the points and α, y(s·x; s·α) = s·y(x; α), and invariant
// under a scaling of the weights, y(x; c·w) = y(x; w). The passes compute z², u = (z/α)², α² and 1/α², which
// overflow or lose their precision to underflow when α, max|x|/α or the weights are far from 1 (z² overflows for
// |z| above 1.3e154). A problem inside the envelope below (every ordinary one) is solved as given; one outside it
// is solved on a copy rescaled by powers of two (exact): x' = x·2^-e with 2^e ≤ max|x| < 2^(e+1), α' = α·2^-e,
// w' = w·2^-e_w with max w' in [1, 2); then y = y'·2^e, dx = dx' and dw = dw'·2^(e−e_w). Two ends need more:
//   - α > 2^60·max|x|: every point is deep inside every penalty's quadratic region (u < 2^-120, where φ is ½z²
//     times a constant to double precision: 1 − exp(−u/2) = (u/2)(1 − u/4 + ...)), so α is replaced by
//     2^60·max|x|, which gives the same answer (the weighted mean) to rounding.
//   - max|x| > 2^450·α (2^450 ≈ 2.9e135): (z/α)² of the far points cannot be represented. Refused, InvalidInput.
constexpr double kEnvelope = 0x1p200;
constexpr double kQuadraticRegime = 0x1p60;
constexpr double kRefusedRatio = 0x1p450;

double MaxWeight(const PoolingProblem& p) {
  double m = 0;
  for (int64_t i = 0; i < p.n; ++i) m = std::max(m, p.w[i]);
  return m;
}

// α, x (through max|x|, or an upper bound of it) and the weights (max w; 1 without weights) within 2^±200 of
// each other and of 1, where the passes neither overflow nor underflow.
bool InEnvelope(double alpha, double xmax, double wmax) {
  return alpha >= 1 / kEnvelope && alpha <= kEnvelope &&
         (xmax == 0 || (xmax >= alpha / kEnvelope && xmax <= alpha * kEnvelope)) && wmax >= 1 / kEnvelope &&
         wmax <= kEnvelope;
}

struct Rescaled {
  PoolingProblem q;    // x, w in thread-local buffers (valid until the next Rescale on this thread)
  int x_exponent = 0;  // x = x'·2^x_exponent, y = y'·2^x_exponent
  int w_exponent = 0;  // w = w'·2^w_exponent
};

Rescaled Rescale(const PoolingProblem& p) {
  thread_local std::vector<double> xs, ws;
  Rescaled r;
  r.q = p;
  const int64_t size = p.n * p.d;
  double xmax = 0;
  for (int64_t i = 0; i < size; ++i) xmax = std::max(xmax, std::abs(p.x[i]));
  double alpha = p.alpha;
  if (xmax == 0) {
    alpha = 1;  // every point at 0: y = 0 whatever α is
  } else {
    alpha = std::min(alpha, kQuadraticRegime * xmax);
    if (xmax > kRefusedRatio * alpha) {
      throw InvalidInput("robust pooling: max|x| = " + FormatDouble(xmax) + " is more than 2^450 (about 2.9e135) " +
                         "times alpha = " + FormatDouble(p.alpha) + ": (x/alpha)^2 cannot be represented in double " +
                         "precision; use a larger alpha or centre x");
    }
    r.x_exponent = std::ilogb(xmax);
  }
  xs.resize(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) xs[i] = std::ldexp(p.x[i], -r.x_exponent);
  r.q.x = xs.data();
  r.q.alpha = std::ldexp(alpha, -r.x_exponent);
  if (p.w) {
    r.w_exponent = std::ilogb(MaxWeight(p));
    ws.resize(static_cast<size_t>(p.n));
    for (int64_t i = 0; i < p.n; ++i) ws[i] = std::ldexp(p.w[i], -r.w_exponent);
    r.q.w = ws.data();
  }
  return r;
}

// The solvers on a problem inside the envelope (or rescaled); lo, hi = min and max of x, lo < hi.
void SolveScalarScaled(const PoolingProblem& p, double lo, double hi, double* y, ProblemStatus* s,
                       const PoolingOptions& o) {
  switch (p.kind) {
    case PenaltyKind::kQuadratic:
      *y = WeightedMeanScalar(p);
      s->residual = 0;
      return;
    case PenaltyKind::kPseudoHuber:
      return SolveScalarConvex<PenaltyKind::kPseudoHuber>(p, lo, hi, y, s);
    case PenaltyKind::kHuber:
      return SolveScalarConvex<PenaltyKind::kHuber>(p, lo, hi, y, s);
    case PenaltyKind::kTruncatedQuadratic:
      return SolveScalarTruncated(p, y, s);
    case PenaltyKind::kWelsch:
      return SolveScalarNonConvex<PenaltyKind::kWelsch>(p, lo, hi, y, s, o);
    case PenaltyKind::kCauchy:
      return SolveScalarNonConvex<PenaltyKind::kCauchy>(p, lo, hi, y, s, o);
    case PenaltyKind::kGemanMcClure:
      return SolveScalarNonConvex<PenaltyKind::kGemanMcClure>(p, lo, hi, y, s, o);
  }
}

// No answer whose optimality residual is far from zero is returned (the solvers reach ~1e-15; a residual above
// 1e-6 means a solve that did not converge).
// Not at a kink (kNonSmooth), where the residual uses one-sided derivatives: the truncated quadratic's mean of the
// inliers counts a point at |y − x_i| = α in, its φ' counts it out.
void RequireConverged(const PoolingProblem& p, const ProblemStatus& s) {
  if (s.residual > 1e-6 && !(s.flags & kNonSmooth)) {
    throw NumericalFailure("robust pooling (" + PenaltyName(p.kind) + ") did not converge: optimality residual " +
                           FormatDouble(s.residual) + " after " + std::to_string(s.iterations) + " iterations");
  }
}

// The backward of a problem inside the envelope (or rescaled). With `check`, returns false (and adds nothing)
// when the problem is outside the envelope; the scalar case sees that from the same pass.
bool BackwardScaled(const PoolingProblem& p, const double* y, const double* v, double* dx, double* dw,
                    ProblemStatus* s, bool check) {
  const double wmax = (check && p.w) ? MaxWeight(p) : 1.0;
  if (p.d == 1) {
    return DispatchPenalty(p.kind, [&](auto kc) {
      constexpr PenaltyKind K = decltype(kc)::value;
      // One pass stores w_i φ''_i (and φ'_i if w has a gradient); the second only scales.
      thread_local std::vector<double> d1s, d2s;
      d2s.resize(p.n);
      if (dw) d1s.resize(p.n);
      const CurvatureSums c = ScalarCurvatures<K>(p, y[0], dw ? d1s.data() : nullptr, d2s.data());
      // |y| + max|y − x_i| bounds max|x| from above.
      if (check && !InEnvelope(p.alpha, std::abs(y[0]) + c.zmax, wmax)) return false;
      const double h = c.h, habs = c.habs;
      const double* d1p = d1s.data();
      const double* d2p = d2s.data();
      if (habs == 0) {
        s->Set(kAllOutliers, "every point is beyond the penalty's reach (H = 0): gradient 0");
        return true;
      }
      if (!(h > 1e-12 * habs)) {
        s->Set(kNonRegular, "H = sum w phi'' is not positive at the solution: minimum-norm gradient 0");
        return true;
      }
      const double vh = v[0] / h;
#pragma omp simd
      for (int64_t i = 0; i < p.n; ++i) dx[i] += vh * d2p[i];
      if (dw) {
#pragma omp simd
        for (int64_t i = 0; i < p.n; ++i) dw[i] -= vh * d1p[i];
      }
      return true;
    });
  }
  const int64_t d = p.d;
  const VectorPoints points = ByCoordinate(p);
  if (check && !InEnvelope(p.alpha, points.xmax, wmax)) return false;
  DispatchPenalty(p.kind, [&](auto kc) {
    constexpr PenaltyKind K = decltype(kc)::value;
    VectorSums S;
    VectorPass<K, true>(points, y, &S);
    Eigen::MatrixXd H = S.M.selfadjointView<Eigen::Lower>();
    H.diagonal().array() += S.spsi;
    const Eigen::Map<const Eigen::VectorXd> vv(v, d);
    Eigen::VectorXd u;
    if (H.cwiseAbs().maxCoeff() == 0) {
      s->Set(kAllOutliers, "every point is beyond the penalty's reach (H = 0): gradient 0");
      return;
    }
    Eigen::LLT<Eigen::MatrixXd> llt(H);
    const double hmax = H.diagonal().cwiseAbs().maxCoeff();
    if (llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > std::sqrt(1e-10 * hmax)) {
      u = llt.solve(vv);
    } else {
      Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod;
      cod.setThreshold(1e-10);
      cod.compute(H);
      u = cod.solve(vv);
      s->Set(kNonRegular, "H is singular or ill-conditioned at the solution: minimum-norm gradient");
    }
    const double inv_a2 = 1.0 / (p.alpha * p.alpha);
    for (int64_t i = 0; i < p.n; ++i) {
      const double* xi = p.x + i * d;
      double z2 = 0, ru = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double r = y[k] - xi[k];
        z2 += r * r;
        ru += r * u[k];
      }
      const PenaltyValues pv = EvaluatePenalty<K, false>(std::sqrt(z2), p.alpha, inv_a2);
      const double wi = Weight(p.w, i);
      const double c = z2 > 0 ? (pv.d2 - pv.psi) / z2 * ru : 0.0;
      for (int64_t k = 0; k < d; ++k) dx[i * d + k] += wi * (pv.psi * u[k] + c * (y[k] - xi[k]));
      if (dw) dw[i] -= pv.psi * ru;
    }
  });
  return true;
}

}  // namespace

void ValidatePoolingProblem(const PoolingProblem& p) {
  if (p.n < 1) throw InvalidInput("robust pooling needs at least one point (N = 0)");
  if (p.d < 1) throw InvalidInput("robust pooling needs D >= 1");
  if (!(p.alpha > 0) || !std::isfinite(p.alpha)) {
    throw InvalidInput("robust pooling: alpha must be a finite number > 0, got " + FormatDouble(p.alpha));
  }
  // x·0 sums to 0 iff every x is finite: a vectorised pass (ddn::Forward has checked already; direct callers
  // of the solvers have not), then the slow search only to name the index.
  if (LaneSum(p.n * p.d, [&](int64_t i) { return p.x[i] * 0.0; }) != 0.0) {
    for (int64_t i = 0; i < p.n * p.d; ++i) {
      if (!std::isfinite(p.x[i])) {
        throw InvalidInput("input 'x' contains a non-finite value at index " + std::to_string(i));
      }
    }
  }
  if (p.w) {
    double total = 0;
    for (int64_t i = 0; i < p.n; ++i) {
      if (!std::isfinite(p.w[i])) {
        throw InvalidInput("input 'w' contains a non-finite value at index " + std::to_string(i));
      }
      if (p.w[i] < 0) {
        throw InvalidInput("input 'w' must be >= 0, got " + FormatDouble(p.w[i]) + " at index " + std::to_string(i));
      }
      total += p.w[i];
    }
    if (!(total > 0)) throw InvalidInput("input 'w' must not be all zero");
  }
}

double PoolingObjective(const PoolingProblem& p, const double* y) {
  const PenaltyEval pen(p.kind, p.alpha);
  double f = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    double z2 = 0;
    for (int64_t k = 0; k < p.d; ++k) z2 += (y[k] - p.x[i * p.d + k]) * (y[k] - p.x[i * p.d + k]);
    f += Weight(p.w, i) * pen.Phi(std::sqrt(z2));
  }
  return f;
}

void SolveScalarPool(const PoolingProblem& p, double* y, ProblemStatus* s, const PoolingOptions& o) {
  double lo, hi;
  MinMax(p, &lo, &hi);
  if (lo == hi) {  // every point at the same place (whatever the scale): y is that place
    *y = lo;
    s->residual = 0;
    return;
  }
  if (InEnvelope(p.alpha, std::max(-lo, hi), p.w ? MaxWeight(p) : 1.0)) {
    SolveScalarScaled(p, lo, hi, y, s, o);
  } else {
    const Rescaled r = Rescale(p);
    double y_scaled = 0;
    SolveScalarScaled(r.q, std::ldexp(lo, -r.x_exponent), std::ldexp(hi, -r.x_exponent), &y_scaled, s, o);
    *y = std::ldexp(y_scaled, r.x_exponent);
  }
  RequireConverged(p, *s);
}

void SolveVectorPool(const PoolingProblem& p, double* y, ProblemStatus* s, const PoolingOptions& o,
                     VectorStart* start) {
  if (start) *start = VectorStart{};
  const VectorPoints points = ByCoordinate(p);
  if (InEnvelope(p.alpha, points.xmax, p.w ? MaxWeight(p) : 1.0)) {
    DispatchPenalty(p.kind, [&](auto k) { SolveVectorT<decltype(k)::value>(points, y, s, o, start); });
  } else {
    const Rescaled r = Rescale(p);
    const VectorPoints scaled = ByCoordinate(r.q);
    DispatchPenalty(p.kind, [&](auto k) { SolveVectorT<decltype(k)::value>(scaled, y, s, o, start); });
    for (int64_t k = 0; k < p.d; ++k) y[k] = std::ldexp(y[k], r.x_exponent);
    if (start)
      for (double& v : start->y0) v = std::ldexp(v, r.x_exponent);
  }
  RequireConverged(p, *s);
}

void PoolingBackward(const PoolingProblem& p, const double* y, const double* v, double* dx, double* dw,
                     ProblemStatus* s) {
  if (BackwardScaled(p, y, v, dx, dw, s, /*check=*/true)) return;
  // Outside the envelope: the backward of the rescaled problem (see "Extreme scales").
  const Rescaled r = Rescale(p);
  thread_local std::vector<double> ys, dxs, dws;
  ys.resize(static_cast<size_t>(p.d));
  for (int64_t k = 0; k < p.d; ++k) ys[k] = std::ldexp(y[k], -r.x_exponent);
  dxs.assign(static_cast<size_t>(p.n * p.d), 0.0);
  if (dw) dws.assign(static_cast<size_t>(p.n), 0.0);
  BackwardScaled(r.q, ys.data(), v, dxs.data(), dw ? dws.data() : nullptr, s, /*check=*/false);
  for (int64_t i = 0; i < p.n * p.d; ++i) dx[i] += dxs[i];
  if (dw) {
    for (int64_t i = 0; i < p.n; ++i) dw[i] += std::ldexp(dws[i], r.x_exponent - r.w_exponent);
  }
}

}  // namespace ddn::pooling
