// nodes/pooling/truncated_vector.cc: see truncated_vector.h (the math and the search are described there).
#include "nodes/pooling/truncated_vector.h"
#include "nodes/pooling/pooling_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>

namespace ddn::pooling {
namespace {

// Boxes with at most kSubsetSearch undecided points (kSubsetSearchHighD in D ≥ 5, where halving a box decides
// few points) are solved by a search over their subsets; other boxes are split.
constexpr int kSubsetSearch = 12;
// The starts' squared distances are kept for the certificate up to this N (an N×N matrix).
constexpr int64_t kKeepRows = 1024;
constexpr int kSubsetSearchHighD = 1 << 30;

inline double WeightOf(const double* w, int64_t i) {
  return w ? w[i] : 1.0;
}

// z2[i] = ‖y − x_i‖² from the points stored by coordinate (cols[k·n + i]); a baseline and an AVX2+FMA copy, as
// the passes of pooling_kernels.h.
[[gnu::always_inline]] inline void DistancesLoop(const double* cols, int64_t n, int64_t d, const double* y,
                                                 double* z2) {
  internal::SquaredDistancesByCoordinate(cols, n, n, d, y, 1, z2);
}

void DistancesBaseline(const double* cols, int64_t n, int64_t d, const double* y, double* z2) {
  DistancesLoop(cols, n, d, y, z2);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
[[gnu::target("avx2,fma")]] void DistancesAvx2(const double* cols, int64_t n, int64_t d, const double* y, double* z2) {
  DistancesLoop(cols, n, d, y, z2);
}

// The copy is chosen by ddn::UseAvx2() (ddn/simd.h; DDN_DISABLE_AVX2=1 forces the baseline copies).
#endif

// f = Σ_i w_i·min(z2_i, α²) (unweighted when w is null) and the bitset of the points with z2_i < α² (and w_i > 0).
[[gnu::always_inline]] inline double ScanLoop(const double* z2, const double* w, int64_t n, double a2, uint64_t* bits) {
  double f = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 64) {
    const int64_t end = std::min<int64_t>(64, n - i0);
    uint64_t b = 0;
    double fb = 0;
#pragma omp simd reduction(+ : fb)
    for (int64_t t = 0; t < end; ++t) fb += (w ? w[i0 + t] : 1.0) * std::min(z2[i0 + t], a2);
    for (int64_t t = 0; t < end; ++t) b |= static_cast<uint64_t>(z2[i0 + t] < a2 && (!w || w[i0 + t] > 0)) << t;
    bits[i0 / 64] = b;
    f += fb;
  }
  return f;
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
[[gnu::target("avx2,fma")]] double ScanAvx2(const double* z2, const double* w, int64_t n, double a2, uint64_t* bits) {
  const __m256d va2 = _mm256_set1_pd(a2), zero = _mm256_setzero_pd();
  __m256d acc0 = zero, acc1 = zero;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d z0 = _mm256_loadu_pd(z2 + i), z1 = _mm256_loadu_pd(z2 + i + 4);
    __m256d m0 = _mm256_min_pd(z0, va2), m1 = _mm256_min_pd(z1, va2);
    __m256d in0 = _mm256_cmp_pd(z0, va2, _CMP_LT_OQ), in1 = _mm256_cmp_pd(z1, va2, _CMP_LT_OQ);
    if (w) {
      const __m256d w0 = _mm256_loadu_pd(w + i), w1 = _mm256_loadu_pd(w + i + 4);
      m0 = _mm256_mul_pd(m0, w0);
      m1 = _mm256_mul_pd(m1, w1);
      in0 = _mm256_and_pd(in0, _mm256_cmp_pd(w0, zero, _CMP_GT_OQ));
      in1 = _mm256_and_pd(in1, _mm256_cmp_pd(w1, zero, _CMP_GT_OQ));
    }
    acc0 = _mm256_add_pd(acc0, m0);
    acc1 = _mm256_add_pd(acc1, m1);
    const uint64_t b = static_cast<uint64_t>(_mm256_movemask_pd(in0) | (_mm256_movemask_pd(in1) << 4));
    if ((i & 63) == 0) bits[i >> 6] = 0;
    bits[i >> 6] |= b << (i & 63);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  double f = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) {
    if ((i & 63) == 0) bits[i >> 6] = 0;
    f += (w ? w[i] : 1.0) * std::min(z2[i], a2);
    bits[i >> 6] |= static_cast<uint64_t>(z2[i] < a2 && (!w || w[i] > 0)) << (i & 63);
  }
  return f;
}
#endif

double ScanBaseline(const double* z2, const double* w, int64_t n, double a2, uint64_t* bits) {
  return ScanLoop(z2, w, n, a2, bits);
}

double Scan(const double* z2, const double* w, int64_t n, double a2, uint64_t* bits) {
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) return ScanAvx2(z2, w, n, a2, bits);
#endif
  return ScanBaseline(z2, w, n, a2, bits);
}

void Distances(const double* cols, int64_t n, int64_t d, const double* y, double* z2) {
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) return DistancesAvx2(cols, n, d, y, z2);
#endif
  DistancesBaseline(cols, n, d, y, z2);
}

struct BitsHash {
  size_t operator()(const std::vector<uint64_t>& v) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t x : v) {
      h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
      h *= 0xff51afd7ed558ccdull;
    }
    return static_cast<size_t>(h ^ (h >> 33));
  }
};

class TruncatedSearch {
 public:
  TruncatedSearch(const PoolingProblem& p, const double* cols, const TruncatedVectorOptions& o)
      : p_(p), cols_(cols), o_(o), d_(p.d), a2_(p.alpha * p.alpha), words_((p.n + 63) / 64) {
    z2_.resize(p.n);
    for (int64_t i = 0; i < p.n; ++i) total_w_ += WeightOf(p.w, i);
    tau_ = 1e-12 * 0.5 * a2_ * total_w_;
    bits_.resize(words_);
    prev_bits_.resize(words_);
    sum_.resize(d_);
    next_.resize(d_);
    best_y_.assign(d_, 0.0);
    sub_c_.resize(d_);
  }

  // The inlier-mean iteration from y until it reaches an inlier set visited before (from any start).
  void Iterate(std::vector<double> y, const double* z2 = nullptr) {
    bool first = true;
    for (;;) {
      const double sw = Pass(y.data(), first ? z2 : nullptr);
      ++result_.iterations;
      if (first) ++result_.starts;
      Offer(y, f_);
      if (!visited_.insert(bits_).second) {
        if (!first && bits_ == prev_bits_) fixed_points_.push_back({y, f_});
        return;
      }
      if (sw == 0) return;
      prev_bits_ = bits_;
      first = false;
      next_y_ = y;
      Mean(sw, y.data());
      if (y == next_y_) {  // the mean of its own inliers: a fixed point, no pass needed
        fixed_points_.push_back({y, f_});
        return;
      }
    }
  }

  // Step 2 (see the header). Returns whether every box was resolved within the budget.
  bool Certify() {
    const int64_t n = p_.n;
    std::vector<int64_t> local_index;
    std::vector<double> rel, lw;
    for (int64_t j = 0; j < n; ++j) {
      if (WeightOf(p_.w, j) <= 0) continue;
      const double* xj = p_.x + j * d_;
      const double* row = z2_.data();
      if (!pairwise_.empty()) {
        row = pairwise_.data() + j * n;
      } else {
        Distances(cols_, n, d_, xj, z2_.data());
      }
      // Points of lower index count ½α²w: the part of this ball within α of such a point lies in that anchor's
      // ball and is searched there; in the rest they are outliers.
      double w_near = 0;
      for (int64_t i = j; i < n; ++i) w_near += row[i] < 4 * a2_ ? WeightOf(p_.w, i) : 0.0;
      const double w_far = std::max(0.0, total_w_ - w_near);
      if (0.5 * a2_ * w_far >= result_.f - tau_) continue;  // no box of this anchor can do better
      local_index.clear();
      rel.clear();
      lw.clear();
      w_near = 0;
      for (int64_t i = j; i < n; ++i) {
        const double wi = WeightOf(p_.w, i);
        if (wi <= 0 || row[i] >= 4 * a2_) continue;
        const double* xi = p_.x + i * d_;
        local_index.push_back(i);
        lw.push_back(wi);
        for (int64_t k = 0; k < d_; ++k) rel.push_back(xi[k] - xj[k]);
        w_near += wi;
      }
      if (!SearchAnchor(j, local_index, rel, lw, w_far)) return false;  // out of budget
    }
    return !unresolved_;
  }

  // Starts from the data point x_j, keeping its squared distances to every point (for Certify) when N ≤ kKeepRows.
  void StartAt(int64_t j) {
    const int64_t n = p_.n;
    if (n <= kKeepRows && pairwise_.empty()) pairwise_.assign(n * n, 0.0);
    double* row = pairwise_.empty() ? z2_.data() : pairwise_.data() + j * n;
    Distances(cols_, n, d_, p_.x + j * d_, row);
    if (WeightOf(p_.w, j) > 0) Iterate(std::vector<double>(p_.x + j * d_, p_.x + (j + 1) * d_), row);
  }

  const TruncatedVectorResult& result() const { return result_; }
  const std::vector<double>& best_y() const { return best_y_; }

  void FinishTies() {
    for (const auto& [y, f] : fixed_points_) {
      if (f > result_.f + tau_) continue;
      double dist2 = 0, ymax = 0;
      for (int64_t k = 0; k < d_; ++k) {
        dist2 += (y[k] - best_y_[k]) * (y[k] - best_y_[k]);
        ymax = std::max(ymax, std::abs(best_y_[k]));
      }
      if (std::sqrt(dist2) > 1e-7 * (p_.alpha + ymax)) result_.tie = true;
    }
  }

 private:
  // One pass at y: the inlier bitset (bits_), f(y) (f_), and the inliers' weighted sum (sum_); returns their weight.
  double Pass(const double* y, const double* z2 = nullptr) {
    if (!z2) {
      Distances(cols_, p_.n, d_, y, z2_.data());
      z2 = z2_.data();
    }
    f_ = 0.5 * Scan(z2, p_.w, p_.n, a2_, bits_.data());
    std::fill(sum_.begin(), sum_.end(), 0.0);
    double sw = 0;
    for (int64_t wd = 0; wd < words_; ++wd) {
      for (uint64_t b = bits_[wd]; b; b &= b - 1) {
        const int64_t i = wd * 64 + __builtin_ctzll(b);
        const double wi = WeightOf(p_.w, i);
        const double* xi = p_.x + i * d_;
        sw += wi;
        for (int64_t k = 0; k < d_; ++k) sum_[k] += wi * xi[k];
      }
    }
    return sw;
  }

  // y ← the weighted mean of the inliers of the last pass (two-pass: the mean, then the mean of the deviations).
  void Mean(double sw, double* y) {
    for (int64_t k = 0; k < d_; ++k) next_[k] = sum_[k] / sw;
    std::vector<double> c(d_, 0.0);
    for (int64_t wd = 0; wd < words_; ++wd) {
      for (uint64_t b = bits_[wd]; b; b &= b - 1) {
        const int64_t i = wd * 64 + __builtin_ctzll(b);
        const double wi = WeightOf(p_.w, i);
        for (int64_t k = 0; k < d_; ++k) c[k] += wi * (p_.x[i * d_ + k] - next_[k]);
      }
    }
    for (int64_t k = 0; k < d_; ++k) y[k] = next_[k] + c[k] / sw;
  }

  void Offer(const std::vector<double>& y, double f) {
    if (f < result_.f) {
      result_.f = f;
      best_y_ = y;
    }
  }

  struct Cell {
    int64_t u_begin, u_end;  // the parent's undecided points: arena_[u_begin, u_end)
    double w_in, q_in, w_out;
    bool lower;  // an always-in point is an anchor of lower index (the box lies in its ball)
  };

  bool SearchAnchor(int64_t j, const std::vector<int64_t>& index, const std::vector<double>& rel,
                    const std::vector<double>& lw, double w_far) {
    const int64_t m = static_cast<int64_t>(index.size());
    const int64_t d = d_;
    const double alpha = p_.alpha;
    std::vector<Cell> stack;
    std::vector<double> geo;  // per stack entry: lo (d), hi (d), s_in (d)
    std::vector<int32_t> arena(m);
    radius_.resize(m);
    for (int64_t u = 0; u < m; ++u) {
      double r2 = 0;
      for (int64_t k = 0; k < d; ++k) r2 += rel[u * d + k] * rel[u * d + k];
      radius_[u] = std::sqrt(r2);
    }
    local_index_ = &index;
    if (pairwise_.empty()) pair2_.resize(m * m);
    for (int64_t u = 0; u < m && pairwise_.empty(); ++u) {
      for (int64_t v = 0; v <= u; ++v) {
        double e2 = 0;
        for (int64_t k = 0; k < d; ++k) e2 += (rel[u * d + k] - rel[v * d + k]) * (rel[u * d + k] - rel[v * d + k]);
        pair2_[u * m + v] = pair2_[v * m + u] = e2;
      }
    }
    lambda_.assign(m, 0.0);
    dmax2_.assign(m, 0.0);
    for (int64_t u = 0; u < m; ++u) arena[u] = static_cast<int32_t>(u);
    stack.push_back({0, m, 0.0, 0.0, 0.0, false});
    geo.resize(3 * d);
    for (int64_t k = 0; k < d; ++k) {
      geo[k] = -alpha;
      geo[d + k] = alpha;
      geo[2 * d + k] = 0;
    }
    std::vector<double> lo(d), hi(d), s(d), su(d), c(d), tsum(d), best_c(d), y(d);
    while (!stack.empty()) {
      Cell cell = stack.back();
      const double* g = geo.data() + (stack.size() - 1) * 3 * d;
      std::copy(g, g + d, lo.begin());
      std::copy(g + d, g + 2 * d, hi.begin());
      std::copy(g + 2 * d, g + 3 * d, s.begin());
      stack.pop_back();
      geo.resize(stack.size() * 3 * d);
      arena.resize(cell.u_end);
      if (++result_.cells > o_.max_cells) return false;
      // Outside the anchor's closed ball ‖y‖ ≤ α (relative coordinates): nothing to search.
      double d0 = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double e = std::max({lo[k], 0.0, -hi[k]});
        d0 += e * e;
      }
      if (d0 > a2_) continue;
      // Classify the parent's undecided points against this box. An undecided point's term w·min(½‖y − x‖², ½α²)
      // lies above the secant (in ‖y − x‖² ∈ [dmin², dmax²]) ½w(α² − λ·dmax²) + ½wλ‖y − x‖², λ = (α² − dmin²) /
      // (dmax² − dmin²) ∈ (0, 1]: with the always-in points' terms, a quadratic whose minimum over the box (a clamped
      // weighted mean) bounds f jointly (tighter than each term's minimum on its own).
      double lb_und = 0, w_und = 0, wl_und = 0, q_und = 0;
      std::fill(su.begin(), su.end(), 0.0);
      for (int64_t t = cell.u_begin; t < cell.u_end; ++t) {
        const int32_t u = arena[t];
        const double* x = rel.data() + u * d;
        double dmin2 = 0, dmax2 = 0;
        for (int64_t k = 0; k < d; ++k) {
          const double e = std::max({lo[k] - x[k], 0.0, x[k] - hi[k]});
          const double f = std::max(std::abs(x[k] - lo[k]), std::abs(x[k] - hi[k]));
          dmin2 += e * e;
          dmax2 += f * f;
        }
        // Only box ∩ ball matters: the distances also lie in [‖x‖ − α, ‖x‖ + α].
        const double r = radius_[u];
        dmin2 = std::max(dmin2, r > alpha ? (r - alpha) * (r - alpha) : 0.0);
        dmax2 = std::min(dmax2, (r + alpha) * (r + alpha));
        const double wu = lw[u];
        if (dmax2 <= a2_) {
          cell.w_in += wu;
          double q = 0;
          for (int64_t k = 0; k < d; ++k) {
            s[k] += wu * x[k];
            q += x[k] * x[k];
          }
          cell.q_in += wu * q;
          if (index[u] < j) cell.lower = true;
        } else if (dmin2 >= a2_) {
          cell.w_out += wu;
        } else {
          arena.push_back(u);
          const double lambda = (a2_ - dmin2) / (dmax2 - dmin2);
          const double wl = wu * lambda;
          lambda_[u] = lambda;
          dmax2_[u] = dmax2;
          double q = 0;
          for (int64_t k = 0; k < d; ++k) {
            su[k] += wl * x[k];
            q += x[k] * x[k];
          }
          lb_und += wu * std::max(0.0, a2_ - lambda * dmax2);
          q_und += wl * q;
          wl_und += wl;
          w_und += wu;
        }
      }
      if (cell.lower) continue;  // searched from the lower anchor
      const double out_part = 0.5 * a2_ * (cell.w_out + w_far);
      for (int64_t k = 0; k < d; ++k) su[k] += s[k];
      const double lb = InPart(cell.w_in + wl_und, su.data(), cell.q_in + q_und, lo.data(), hi.data(), c.data()) +
                        out_part + 0.5 * lb_und;
      if (lb >= result_.f - tau_) continue;
      const int64_t nu = static_cast<int64_t>(arena.size()) - cell.u_end;
      if (nu <= (d >= 5 ? kSubsetSearchHighD : kSubsetSearch)) {
        // Over the subsets T of the undecided points: min_{y∈B} f = min_T min_{y∈B} g_{in∪T}, searched depth first
        // (each point in, then out) with the same bound, the points not yet chosen keeping their secant terms.
        order_.assign(arena.begin() + cell.u_end, arena.end());
        std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return lambda_[a] > lambda_[b]; });
        sub_s_.resize((nu + 1) * d);
        std::copy(su.begin(), su.end(), sub_s_.begin());
        ctx_ = {j, m, &rel, &lw, lo.data(), hi.data()};
        chosen_.clear();
        if (!Subset(0, cell.w_in + wl_und, cell.q_in + q_und, out_part + 0.5 * lb_und)) return false;
        continue;
      }
      int64_t split = 0;
      for (int64_t k = 1; k < d; ++k)
        if (hi[k] - lo[k] > hi[split] - lo[split]) split = k;
      if (hi[split] - lo[split] < 1e-10 * alpha) {
        unresolved_ = true;
        continue;
      }
      const double mid = 0.5 * (lo[split] + hi[split]);
      const int64_t end = static_cast<int64_t>(arena.size());
      for (int side = 0; side < 2; ++side) {
        stack.push_back({cell.u_end, end, cell.w_in, cell.q_in, cell.w_out, false});
        const size_t at = geo.size();
        geo.resize(at + 3 * d);
        double* gg = geo.data() + at;
        std::copy(lo.begin(), lo.end(), gg);
        std::copy(hi.begin(), hi.end(), gg + d);
        std::copy(s.begin(), s.end(), gg + 2 * d);
        (side == 0 ? gg[d + split] : gg[split]) = mid;
      }
    }
    return true;
  }

  // The subset search of one box: order_[depth..] are undecided; the sums W, S (sub_s_ at depth·D), Q and the constant
  // C hold the chosen points' full terms and the others' secant terms. Returns false when out of budget.
  bool Subset(int64_t depth, double w, double q, double c) {
    if (++result_.cells > o_.max_cells) return false;
    const int64_t d = d_;
    double* s = sub_s_.data() + depth * d;
    double* cc = sub_c_.data();
    const double bound =
        InPart(w, s, q, ctx_.lo, ctx_.hi, cc, chosen_.data(), static_cast<int64_t>(chosen_.size()), ctx_.rel->data()) +
        c;
    if (bound >= result_.f - tau_) return true;
    if (depth == static_cast<int64_t>(order_.size())) {
      // A leaf: the bound is min_{y∈B} g_T, attained at the clamped mean; f there is no larger.
      std::vector<double> start(d);
      const double* xj = p_.x + ctx_.anchor * d;
      for (int64_t k = 0; k < d; ++k) start[k] = xj[k] + cc[k];
      Iterate(start);
      return true;
    }
    const int32_t u = order_[depth];
    const double* x = ctx_.rel->data() + u * d;
    const double wu = (*ctx_.lw)[u], lambda = lambda_[u], wl = wu * lambda;
    double xx = 0;
    for (int64_t k = 0; k < d; ++k) xx += x[k] * x[k];
    const double secant_const = 0.5 * wu * std::max(0.0, a2_ - lambda * dmax2_[u]);
    double* next = s + d;
    // In: the full term ½w‖y − x‖², and y within α of x (of every point chosen in: none more than 2α apart).
    bool feasible = true;
    for (int32_t v : chosen_) feasible &= Pair2(u, v) <= 4 * a2_ * (1 + 1e-12);
    if (feasible) {
      for (int64_t k = 0; k < d; ++k) next[k] = s[k] + (wu - wl) * x[k];
      chosen_.push_back(u);
      const bool ok = Subset(depth + 1, w + (wu - wl), q + (wu - wl) * xx, c - secant_const);
      chosen_.pop_back();
      if (!ok) return false;
    }
    // Out: ½wα².
    for (int64_t k = 0; k < d; ++k) next[k] = s[k] - wl * x[k];
    return Subset(depth + 1, w - wl, q - wl * xx, c - secant_const + 0.5 * wu * a2_);
  }

  // min_{y∈B} ½ Σ_S w_i‖y − x_i‖² from the sums W = Σw, S = Σwx, Q = Σw‖x‖²: the mean clamped to the box (c).
  // Squared distance between the local points u and v of the anchor being searched.
  double Pair2(int32_t u, int32_t v) const {
    if (pairwise_.empty()) return pair2_[u * ctx_.m + v];
    return pairwise_[(*local_index_)[u] * p_.n + (*local_index_)[v]];
  }

  // min over y ∈ box ∩ ball(0, α) ∩ ball(x_u, α) for u in balls[0, nballs) of ½ Σ_S w_i‖y − x_i‖², from the sums
  // W = Σw, S = Σwx, Q = Σw‖x‖², bounded below by ½·SSE + ½W·(squared distance from the mean to each of these
  // convex sets), the largest of them (the box's: to the clamped mean; a ball's: (‖m − x_u‖ − α)₊²). c gets the
  // clamped mean.
  double InPart(double w, const double* s, double q, const double* lo, const double* hi, double* c,
                const int32_t* balls = nullptr, int64_t nballs = 0, const double* rel = nullptr) const {
    if (w <= 0) {
      for (int64_t k = 0; k < d_; ++k) c[k] = 0.5 * (lo[k] + hi[k]);
      return 0;
    }
    double mm = 0, box = 0;
    for (int64_t k = 0; k < d_; ++k) {
      const double m = s[k] / w;
      c[k] = std::clamp(m, lo[k], hi[k]);
      box += (c[k] - m) * (c[k] - m);
      mm += m * m;
    }
    const double alpha = p_.alpha;
    const double anchor = std::max(0.0, std::sqrt(mm) - alpha);
    double far = std::max(box, anchor * anchor);
    for (int64_t b = 0; b < nballs; ++b) {
      const double* x = rel + balls[b] * d_;
      double e2 = 0;
      for (int64_t k = 0; k < d_; ++k) e2 += (s[k] / w - x[k]) * (s[k] / w - x[k]);
      const double e = std::max(0.0, std::sqrt(e2) - alpha);
      far = std::max(far, e * e);
    }
    return std::max(0.0, 0.5 * (q - w * mm)) + 0.5 * w * far;
  }

  const PoolingProblem& p_;
  const double* cols_;
  const TruncatedVectorOptions& o_;
  const int64_t d_;
  const double a2_;
  const int64_t words_;
  double total_w_ = 0, tau_ = 0, f_ = 0;
  bool unresolved_ = false;
  std::vector<uint64_t> bits_, prev_bits_;
  std::vector<double> next_y_;
  std::vector<double> sum_, next_, best_y_, z2_, pairwise_;  // pairwise_: N×N squared distances (N ≤ kKeepRows)
  std::unordered_set<std::vector<uint64_t>, BitsHash> visited_;
  // The box being searched by Subset.
  struct {
    int64_t anchor, m;
    const std::vector<double>* rel;
    const std::vector<double>* lw;
    const double *lo, *hi;
  } ctx_{};
  std::vector<double> lambda_, dmax2_, radius_, pair2_, sub_s_, sub_c_;  // pair2_: m×m squared distances
  std::vector<int32_t> order_, chosen_;
  const std::vector<int64_t>* local_index_ = nullptr;
  std::vector<std::pair<std::vector<double>, double>> fixed_points_;
  TruncatedVectorResult result_{std::numeric_limits<double>::infinity()};
};

}  // namespace

TruncatedVectorResult SolveTruncatedVector(const PoolingProblem& p, const double* cols,
                                           const std::vector<std::vector<double>>& extra_starts, double* y,
                                           const TruncatedVectorOptions& options) {
  std::vector<double> own;
  if (!cols) {
    own.resize(p.n * p.d);
    for (int64_t i = 0; i < p.n; ++i)
      for (int64_t k = 0; k < p.d; ++k) own[k * p.n + i] = p.x[i * p.d + k];
    cols = own.data();
  }
  TruncatedSearch search(p, cols, options);
  for (const auto& s : extra_starts) search.Iterate(s);
  const int64_t stride =
      p.n <= options.max_all_starts ? 1 : (p.n + options.max_all_starts - 1) / options.max_all_starts;
  for (int64_t i = 0; i < p.n; i += stride) search.StartAt(i);
  const bool certified = options.max_cells > 0 && stride == 1 && search.Certify();
  search.FinishTies();
  TruncatedVectorResult r = search.result();
  r.certified = certified;
  std::copy(search.best_y().begin(), search.best_y().end(), y);
  return r;
}

}  // namespace ddn::pooling
