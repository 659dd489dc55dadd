// nodes/pooling/scalar_convex.cc: the scalar solvers that need no search (pooling_solvers.h): the robust start
// (a sampled weighted median), safeguarded Newton for pseudo_huber and huber, and the exact sweep of the truncated
// quadratic.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ddn/params.h"
#include "nodes/pooling/solver_parts.h"

namespace ddn::pooling::internal {

// Weighted median (lower): the smallest x_(k) with Σ_{j≤k} w_(j) ≥ W/2.
double WeightedMedian(const PoolingProblem& p, PoolingWorkspace* ws) {
  if (!p.w && p.n > 256) {  // long arrays: introselect's O(n) worst case
    std::vector<double>& buf = ws->select;
    buf.assign(p.x, p.x + p.n);
    auto mid = buf.begin() + (p.n - 1) / 2;
    std::nth_element(buf.begin(), mid, buf.end());
    return *mid;
  }
  if (!p.w) {
    std::vector<double>& buf = ws->select;
    buf.resize(2 * p.n);
    std::copy(p.x, p.x + p.n, buf.begin());
    return SelectKth(buf.data(), buf.data() + p.n, p.n, (p.n - 1) / 2);
  }
  std::vector<std::pair<double, double>>& pairs = ws->pairs;
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
double SampleMedian(const PoolingProblem& p, PoolingWorkspace* ws) {
  const int64_t stride = std::max<int64_t>(1, p.n / 64);
  const int64_t m = (p.n + stride - 1) / stride;
  if (!p.w) {
    // Unweighted: the sample goes straight into the selection's buffer.
    std::vector<double>& buf = ws->select;
    buf.resize(2 * m);
    for (int64_t i = 0, j = 0; i < p.n; i += stride, ++j) buf[j] = p.x[i];
    return SelectKth(buf.data(), buf.data() + m, m, (m - 1) / 2);
  }
  std::vector<double>&xs = ws->sample_x, &weights = ws->sample_w;
  xs.clear();
  weights.clear();
  for (int64_t i = 0; i < p.n; i += stride) {
    xs.push_back(p.x[i]);
    weights.push_back(p.w[i]);
  }
  PoolingProblem q = p;
  q.x = xs.data();
  q.w = weights.data();
  q.n = static_cast<int64_t>(xs.size());
  return WeightedMedian(q, ws);
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

// ---- Convex penalties ------------------------------------------------------------------------------

template <PenaltyKind K>
void SolveScalarConvexT(const PoolingProblem& p, double lo, double hi, double* y_out, ProblemStatus* s,
                        PoolingWorkspace* ws) {
  if (lo == hi) {
    *y_out = lo;
    s->residual = 0;
    return;
  }
  double y = std::clamp(SampleMedian(p, ws), lo, hi);
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
        s->Set(kNonUnique,
               "huber: f is flat on [" + FormatDouble(a) + ", " + FormatDouble(b) + "]; the midpoint is returned");
      }
    }
  }
  *y_out = y;
  FlagScalarKinks(p, y, s);
}

void SolveScalarConvex(const PoolingProblem& p, double lo, double hi, double* y, ProblemStatus* s,
                       PoolingWorkspace* ws) {
  if (p.kind == PenaltyKind::kHuber) return SolveScalarConvexT<PenaltyKind::kHuber>(p, lo, hi, y, s, ws);
  SolveScalarConvexT<PenaltyKind::kPseudoHuber>(p, lo, hi, y, s, ws);
}

// ---- Truncated quadratic, exact sweep ------------------------------------------------------------------

// The points (x, w) sorted by x into ws->pairs: a counting sort into N buckets of equal width over [min x, max x]
// (the bucket index is monotone in x, so the buckets come out in order), then each bucket sorted by insertion
// (up to 16 points) or std::sort. O(N) for spread-out data (about one point per bucket; a comparison sort of N
// pairs was two thirds of the solve); a bucket holding many points (duplicates, or points squeezed together by
// far outliers) costs O(m log m). Points with equal x keep their input order.
void SortPoints(const PoolingProblem& p, PoolingWorkspace* ws) {
  const int64_t n = p.n;
  std::vector<std::pair<double, double>>& pts = ws->pairs;
  pts.resize(n);
  double lo = p.x[0], hi = p.x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, p.x[i]);
    hi = std::max(hi, p.x[i]);
  }
  std::vector<int>& bucket = ws->bucket_of;
  std::vector<int64_t>& first = ws->bucket_first;
  bucket.resize(n);
  first.assign(n + 1, 0);
  const double per_unit = hi > lo ? static_cast<double>(n - 1) / (hi - lo) : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const int b = static_cast<int>(std::min<double>(static_cast<double>(n - 1), (p.x[i] - lo) * per_unit));
    bucket[i] = b;
    ++first[b + 1];
  }
  for (int64_t b = 0; b < n; ++b) first[b + 1] += first[b];
  for (int64_t i = 0; i < n; ++i) pts[first[bucket[i]]++] = {p.x[i], Weight(p.w, i)};
  // first[b] is now the end of bucket b (the start of b + 1).
  int64_t begin = 0;
  for (int64_t b = 0; b < n; ++b) {
    const int64_t end = first[b];
    if (end - begin > 16) {
      std::sort(pts.begin() + begin, pts.begin() + end);
    } else {
      for (int64_t i = begin + 1; i < end; ++i) {
        const std::pair<double, double> v = pts[i];
        int64_t j = i;
        for (; j > begin && pts[j - 1].first > v.first; --j) pts[j] = pts[j - 1];
        pts[j] = v;
      }
    }
    begin = end;
  }
}

void SolveScalarTruncated(const PoolingProblem& p, double* y_out, ProblemStatus* s, PoolingWorkspace* ws) {
  SortPoints(p, ws);
  const std::vector<std::pair<double, double>>& pts = ws->pairs;
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
  s->residual =
      ScaledResidual(S.g, S.gabs, S.h, std::max(std::abs(pts.front().first), std::abs(pts.back().first)) + p.alpha);
  if (tie) s->Set(kNonUnique, "truncated_quadratic: several global minima; the smallest y is returned");
  FlagScalarKinks(p, best_y, s);
}

}  // namespace ddn::pooling::internal
