// Tests of the specialised solvers as plain functions: global optimality against dense brute force for every
// penalty and several α, stationarity, the awkward cases (flat Huber, isolated points of the truncated
// quadratic, two competing clusters), and validation.
#include "nodes/pooling/pooling_solvers.h"
#include "nodes/pooling/pooling_kernels.h"
#include "nodes/pooling/pooling_workspace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "ddn/error.h"

namespace ddn::pooling {
namespace {

const PenaltyKind kAll[] = {PenaltyKind::kQuadratic,   PenaltyKind::kPseudoHuber,        PenaltyKind::kHuber,
                            PenaltyKind::kWelsch,      PenaltyKind::kTruncatedQuadratic, PenaltyKind::kCauchy,
                            PenaltyKind::kGemanMcClure};

// A cluster of n points (σ = spread) with about 20 % outliers up to 8 away, or several clusters.
std::vector<double> Points(std::mt19937_64* rng, int n, int d, double spread, int clusters = 1) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uni(-8, 8);
  std::bernoulli_distribution outlier(0.2);
  std::vector<std::vector<double>> centres(clusters, std::vector<double>(d));
  for (auto& c : centres)
    for (auto& v : c) v = 2 * normal(*rng);
  std::vector<double> x(n * d);
  for (int i = 0; i < n; ++i) {
    const bool out = outlier(*rng);
    const auto& c = centres[i % clusters];
    for (int k = 0; k < d; ++k) x[i * d + k] = out ? uni(*rng) : c[k] + spread * normal(*rng);
  }
  return x;
}

// min f over a dense grid (then a finer grid around the best cell): an upper bound of the global minimum.
double BruteForceScalar(const PoolingProblem& p, int m = 40000) {
  const double lo = *std::min_element(p.x, p.x + p.n) - 1, hi = *std::max_element(p.x, p.x + p.n) + 1;
  double best = 1e300, best_y = lo;
  for (int i = 0; i <= m; ++i) {
    const double y = lo + (hi - lo) * i / m;
    const double f = PoolingObjective(p, &y);
    if (f < best) {
      best = f;
      best_y = y;
    }
  }
  const double h = (hi - lo) / m;
  for (int i = -1000; i <= 1000; ++i) {
    const double y = best_y + h * i / 1000.0;
    best = std::min(best, PoolingObjective(p, &y));
  }
  return best;
}

double BruteForce2d(const PoolingProblem& p) {
  double lo[2] = {1e300, 1e300}, hi[2] = {-1e300, -1e300};
  for (int i = 0; i < p.n; ++i)
    for (int k = 0; k < 2; ++k) {
      lo[k] = std::min(lo[k], p.x[2 * i + k]);
      hi[k] = std::max(hi[k], p.x[2 * i + k]);
    }
  double best = 1e300, by[2] = {0, 0};
  const int m = 300;
  for (int i = 0; i <= m; ++i)
    for (int j = 0; j <= m; ++j) {
      const double y[2] = {lo[0] + (hi[0] - lo[0]) * i / m, lo[1] + (hi[1] - lo[1]) * j / m};
      const double f = PoolingObjective(p, y);
      if (f < best) {
        best = f;
        by[0] = y[0];
        by[1] = y[1];
      }
    }
  // Refine around the best grid point, and around every data point (the minima of the redescending
  // penalties sit near data).
  auto refine = [&](double cx, double cy, double r) {
    for (int i = -40; i <= 40; ++i)
      for (int j = -40; j <= 40; ++j) {
        const double y[2] = {cx + r * i / 40, cy + r * j / 40};
        best = std::min(best, PoolingObjective(p, y));
      }
  };
  refine(by[0], by[1], 2 * (hi[0] - lo[0]) / m + 2 * (hi[1] - lo[1]) / m);
  return best;
}

// The median start's selection is exactly std::nth_element's order statistic, for every k, on sizes around the
// small-array cut-off, with many ties (values rounded to a coarse grid), all equal, sorted and reversed input.
TEST(SelectKth, EqualsNthElement) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  for (int64_t n = 1; n <= 140; n += (n < 40 ? 1 : 7)) {
    for (int pattern = 0; pattern < 5; ++pattern) {
      std::vector<double> x(n);
      for (int64_t i = 0; i < n; ++i) {
        const double v = normal(rng);
        x[i] = pattern == 0 ? v : pattern == 1 ? std::round(2 * v) : pattern == 2 ? 1.5 : static_cast<double>(i);
      }
      if (pattern == 4) std::reverse(x.begin(), x.end());
      for (int64_t k = 0; k < n; ++k) {
        std::vector<double> expected = x, v = x, scratch(n);
        std::nth_element(expected.begin(), expected.begin() + k, expected.end());
        ASSERT_EQ(SelectKth(v.data(), scratch.data(), n, k), expected[k])
            << "n " << n << " k " << k << " pattern " << pattern;
      }
    }
  }
}

// The vector starts' sample medians (eight coordinates at a time, sorted in single precision, the double recovered
// from the float median): SelectKth's value exactly, for every sample length the network takes (16 to 128, the
// padding to a power of two), D with and without a tail of fewer than eight lanes, strided rows, and the data that
// make the float copy ambiguous: values that differ only past float's precision (ties in float), exact ties,
// values beyond float's range (±Inf in float) and below its smallest normal (zeros in float). The other copy of the
// kernel runs in this suite's baseline_kernels variant (DDN_DISABLE_AVX2=1).
TEST(SampleMedians, EqualSelectKthExactlyAlsoWhereFloatTies) {
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal;
  for (const int64_t d : {2, 3, 8, 9, 17}) {
    for (const int64_t count : {16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128}) {
      for (const int64_t stride : {1, 3}) {
        for (int pattern = 0; pattern < 5; ++pattern) {
          const int64_t n = (count - 1) * stride + 1;
          std::vector<double> x(n * d);
          for (double& v : x) {
            const double g = normal(rng);
            v = pattern == 0   ? g
                : pattern == 1 ? 1.0 + std::ldexp(std::round(4 * g), -40)         // equal in float
                : pattern == 2 ? std::round(2 * g)                                // equal in double
                : pattern == 3 ? (std::abs(g) > 1 ? std::copysign(1e300, g) : g)  // ±Inf in float
                               : 1e-300 * g;                                      // 0 in float
          }
          std::vector<double> median(d), scratch(2 * count);
          internal::SampleMedians(x.data(), d, stride, count, median.data(), scratch.data());
          for (int64_t k = 0; k < d; ++k) {
            std::vector<double> column(count), work(count);
            for (int64_t j = 0; j < count; ++j) column[j] = x[j * stride * d + k];
            const double want = SelectKth(column.data(), work.data(), count, (count - 1) / 2);
            ASSERT_EQ(median[k], want) << "D " << d << " count " << count << " stride " << stride << " pattern "
                                       << pattern << " coordinate " << k;
          }
        }
      }
    }
  }
}

// The scalar solvers' first pass: min, max and Σ against plain loops, both copies (baseline and AVX2), on every n
// around its 8-wide steps and tail, extremes at the first, last and a middle place; a NaN or an Inf makes the sum
// non-finite (the finiteness fold relies on it).
TEST(MinMaxSum, EqualsPlainLoopsInBothCopies) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal;
  using Pass = void (*)(const double*, int64_t, double*, double*, double*);
  std::vector<Pass> copies{internal::MinMaxSumBaseline};
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (UseAvx2()) copies.push_back(internal::MinMaxSumAvx2);
#endif
  for (int64_t n = 1; n <= 41; ++n) {
    for (int64_t where : {int64_t{0}, n / 2, n - 1}) {
      std::vector<double> x(n);
      for (auto& v : x) v = normal(rng);
      x[where] = 100.0;                                          // the maximum
      x[(where + 1) % n] = n > 1 ? -100.0 : x[(where + 1) % n];  // the minimum (unless n = 1)
      double sum = 0;
      for (double v : x) sum += v;
      for (Pass pass : copies) {
        double lo, hi, s;
        pass(x.data(), n, &lo, &hi, &s);
        EXPECT_EQ(lo, *std::min_element(x.begin(), x.end())) << "n " << n;
        EXPECT_EQ(hi, *std::max_element(x.begin(), x.end())) << "n " << n;
        EXPECT_NEAR(s, sum, 1e-12 * 100 * n) << "n " << n;
        for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
          std::vector<double> y = x;
          y[where] = bad;
          pass(y.data(), n, &lo, &hi, &s);
          EXPECT_FALSE(std::isfinite(s)) << "n " << n << " bad " << bad;
        }
      }
    }
  }
}

// A clustered vector problem for the single-precision copies' tests: N(offset, scale²) per coordinate, α = 0.7·scale,
// weights weight_scale·U(0.2, 2) (used if `weighted`); with `far`, the cluster a million α from the origin (the copies
// are centred on it) and one point 1e30·α away, beyond the copies' clamp; else near the origin and nothing clamped.
// Owns the arrays that `problem` points into; the points by coordinate are in `ws`.
struct FloatTestProblem {
  FloatTestProblem(PenaltyKind kind, double scale, double weight_scale, bool weighted, int64_t n, int64_t d,
                   uint64_t seed, bool far)
      : x(n * d), w(n), offset(far ? 1e6 * scale : 5 * scale) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uw(0.2, 2);
    for (auto& v : x) v = offset + scale * normal(rng);
    if (far) x[0] = offset + 1e30 * scale;
    for (auto& v : w) v = weight_scale * uw(rng);
    problem.kind = kind;
    problem.x = x.data();
    problem.w = weighted ? w.data() : nullptr;
    problem.n = n;
    problem.d = d;
    problem.alpha = 0.7 * scale;
    points = internal::ByCoordinate(problem, &ws);
  }
  std::vector<double> x, w;
  double offset;
  PoolingProblem problem;
  PoolingWorkspace ws;
  internal::VectorPoints points;
};

// The single-precision scores of the vector pools' candidate starts (welsch, Geman–McClure) against the double
// scores of the same sample, both copies: f at every sample point (the symmetric loop) and at other points, sample
// sizes around the eight-wide steps, D = 1, 3, 8, with weights, and at the scales of the envelope's ends (x and α
// near 2^±190, weights near 2^±190), where float alone would overflow or underflow, with the points a million α
// from the origin and one 1e30·α from the others (its squared distance would overflow float). The float copy is in
// units of α and of the largest weight, so it is compared after scaling back; one ulp of float per term allows 1e-6 of
// Σ w.
template <PenaltyKind K>
void CheckFloatScores(double scale, double weight_scale, bool weighted, int64_t n, int64_t d, uint64_t seed,
                      bool far = true) {
  FloatTestProblem t(K, scale, weight_scale, weighted, n, d, seed, far);
  const PoolingProblem& p = t.problem;
  const internal::VectorPoints& points = t.points;
  const std::vector<double>& x = t.x;
  std::vector<double> center(d, t.offset);
  ScoreSample sample;
  internal::BuildScoreSample(points, center.data(), &sample);
  double wsum = 0;
  for (int64_t j = 0; j < sample.m; ++j) wsum += sample.w[j];
  const double wmax = sample.frame.wmax;                                            // the largest weight of the problem
  const double unit = K == PenaltyKind::kWelsch ? wmax : wmax * p.alpha * p.alpha;  // float f × unit = f
  const double tolerance = 1e-6 * wsum * (K == PenaltyKind::kWelsch ? 1 : p.alpha * p.alpha);
  const double inv_a2 = 1 / (p.alpha * p.alpha);
  std::vector<double> expected(sample.m), got(sample.m);
  internal::SymmetricScoreBaseline<K>(sample.cols.data(), sample.w.data(), sample.m, d, p.alpha, inv_a2,
                                      expected.data());
  using Symmetric = void (*)(const float*, const float*, int64_t, int64_t, int64_t, double*);
  using AtY = double (*)(const float*, const float*, int64_t, int64_t, int64_t, const float*);
  std::vector<std::pair<Symmetric, AtY>> copies{
      {internal::SymmetricScoreFloatBaseline<K>, internal::ScoreFloatBaseline<K>}};
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (UseAvx2()) copies.push_back({internal::SymmetricScoreFloatAvx2<K>, internal::ScoreFloatAvx2<K>});
#endif
  for (const auto& [symmetric, at_y] : copies) {
    symmetric(sample.cols_f.data(), sample.w_f.data(), sample.m, sample.m_f, d, got.data());
    for (int64_t c = 0; c < sample.m; ++c) {
      ASSERT_TRUE(std::isfinite(got[c]));
      EXPECT_NEAR(got[c] * unit, expected[c], tolerance) << "n " << n << " d " << d << " c " << c;
    }
    // At a point of the problem that is not in the sample (the sample takes every stride-th point).
    const double* y = x.data() + (n - 1) * d;
    std::vector<float> yf(d);
    for (int64_t k = 0; k < d; ++k) yf[k] = sample.frame.ToFloat(y[k], k);
    const double f = at_y(sample.cols_f.data(), sample.w_f.data(), sample.m, sample.m_f, d, yf.data());
    const double want =
        internal::ScoreBaseline<K>(sample.cols.data(), sample.w.data(), sample.m, d, y, p.alpha, inv_a2);
    EXPECT_NEAR(f * unit, want, tolerance) << "n " << n << " d " << d;
  }
}

TEST(VectorScores, SinglePrecisionMatchesDoubleInBothCopiesAndAtExtremeScales) {
  uint64_t seed = 1;
  for (int64_t n : {2, 7, 8, 9, 16, 63, 64, 65, 130, 256, 300}) {
    for (int64_t d : {1, 3, 8}) {
      for (bool far : {false, true}) {
        CheckFloatScores<PenaltyKind::kWelsch>(1.0, 1.0, n % 2 == 0, n, d, ++seed, far);
        CheckFloatScores<PenaltyKind::kGemanMcClure>(1.0, 1.0, n % 2 == 1, n, d, ++seed, far);
      }
    }
  }
  for (double scale : {0x1p-190, 0x1p190}) {
    for (double weight_scale : {0x1p-190, 0x1p190}) {
      CheckFloatScores<PenaltyKind::kWelsch>(scale, weight_scale, true, 64, 3, ++seed);
      CheckFloatScores<PenaltyKind::kGemanMcClure>(scale, weight_scale, true, 75, 8, ++seed);
    }
  }
}

// The single-precision screening pass (f, g and Σ w ψ in the problem's units) against the double pass, both copies
// (DDN_DISABLE_AVX2 runs the suite again with the baseline), at points near and far from the cluster, N around the
// eight-wide steps, D = 1, 3, 8, with and without weights, and at the envelope's scales with an offset of a million
// α and one point 1e30·α away (clamped). It steers steps only: 1e-5 of the scale of each sum is its tolerance.
template <PenaltyKind K>
void CheckFloatScreening(double scale, double weight_scale, bool weighted, int64_t n, int64_t d, uint64_t seed,
                         bool far = true) {
  FloatTestProblem t(K, scale, weight_scale, weighted, n, d, seed, far);
  const PoolingProblem& p = t.problem;
  const internal::VectorPoints& points = t.points;
  const std::vector<double>&x = t.x, &w = t.w;
  const double offset = t.offset;
  PoolingWorkspace& ws = t.ws;
  std::vector<double> center(d, offset);
  internal::BuildScoreSample(points, center.data(), &ws.score_sample);
  internal::BuildFloatPoints(points, ws.score_sample.frame, &ws.points_f);
  double wsum = 0;
  for (int64_t i = 0; i < n; ++i) wsum += weighted ? w[i] : 1.0;
  const double a2 = p.alpha * p.alpha;
  for (double distance : {0.0, 0.3, 1.0, 3.0}) {  // in α, from the cluster's centre
    std::vector<double> y(d);
    for (int64_t k = 0; k < d; ++k) y[k] = offset + distance * p.alpha * (k == 0 ? 1.0 : 0.5);
    VectorSums want;
    internal::VectorPass<K, false, false>(points, y.data(), &want, &ws);
    double f, spsi;
    std::vector<double> g(d);
    std::vector<float> y_f;
    internal::FloatScreeningSums<K>(ws.points_f, ws.score_sample.frame, p.alpha, d, y.data(), &y_f, &f, g.data(),
                                    &spsi);
    // Tolerances: Σ w ψ and the sum of |w ψ r| (g's terms) to 1e-5 of themselves (positive terms summed in float
    // lose about 1e-6), f to 1e-5 of Σ w (welsch) or Σ w α²/2 (the descent tests compare such values).
    double gscale = 0;
    for (int64_t i = 0; i < n; ++i) {
      double zz = 0;
      for (int64_t k = 0; k < d; ++k) zz += (y[k] - x[i * d + k]) * (y[k] - x[i * d + k]);
      const double psi = internal::PenaltyOfSquaredLength<K>(zz, p.alpha, 1 / a2).psi;
      gscale += (weighted ? w[i] : 1.0) * psi * std::sqrt(zz);
    }
    EXPECT_NEAR(spsi, want.spsi, 1e-5 * want.spsi) << "n " << n << " d " << d << " at " << distance;
    EXPECT_NEAR(f, want.f, 1e-5 * (K == PenaltyKind::kWelsch ? wsum : wsum * a2)) << "n " << n << " d " << d;
    for (int64_t k = 0; k < d; ++k)
      EXPECT_NEAR(g[k], want.g[k], 1e-5 * gscale) << "n " << n << " d " << d << " k " << k << " at " << distance;
  }
}

TEST(VectorScreening, SinglePrecisionPassMatchesDoubleAtEveryScale) {
  uint64_t seed = 100;
  for (int64_t n : {2, 7, 8, 9, 64, 255, 256, 257, 300}) {
    for (int64_t d : {1, 3, 8}) {
      for (bool far : {false, true}) {
        CheckFloatScreening<PenaltyKind::kWelsch>(1.0, 1.0, n % 2 == 0, n, d, ++seed, far);
        CheckFloatScreening<PenaltyKind::kGemanMcClure>(1.0, 1.0, n % 2 == 1, n, d, ++seed, far);
      }
    }
  }
  for (double scale : {0x1p-190, 0x1p190}) {
    for (double weight_scale : {0x1p-190, 0x1p190}) {
      CheckFloatScreening<PenaltyKind::kWelsch>(scale, weight_scale, true, 256, 8, ++seed);
      CheckFloatScreening<PenaltyKind::kGemanMcClure>(scale, weight_scale, true, 300, 3, ++seed);
    }
  }
}

TEST(ScalarPool, GlobalMinimumBeatsDenseBruteForce) {
  std::mt19937_64 rng(11);
  for (PenaltyKind k : kAll) {
    for (double alpha : {0.25, 1.0, 3.0}) {
      for (int trial = 0; trial < 6; ++trial) {
        const int clusters = 1 + trial % 3;
        std::vector<double> x = Points(&rng, 15 + trial, 1, 0.3 + 0.4 * trial, clusters);
        std::vector<double> w(x.size());
        std::uniform_real_distribution<double> uw(0.1, 2);
        for (auto& v : w) v = uw(rng);
        PoolingProblem p{k, alpha, x.data(), trial % 2 ? w.data() : nullptr, static_cast<int64_t>(x.size()), 1};
        double y;
        ProblemStatus s;
        SolveScalarPool(p, &y, &s);
        const double f = PoolingObjective(p, &y), brute = BruteForceScalar(p);
        SCOPED_TRACE(PenaltyName(k) + " alpha=" + std::to_string(alpha) + " trial=" + std::to_string(trial));
        EXPECT_LE(f, brute + 1e-12 * (1 + std::abs(brute)));
        EXPECT_FALSE(s.flags & kNotCertified) << s.note;
        if (IsSmooth(k)) {
          EXPECT_LE(s.residual, 1e-11);  // measured before the last (tiny) Newton step
        }
      }
    }
  }
}

// The same on problems large enough for the branch and bound's dense histogram (more points than bins; the test
// above, with N ≤ 20, takes the sparse one): several clusters of different weights and spreads, so that local
// minima compete, and points on bin edges (pattern 3: values on a grid of α/8).
TEST(ScalarPool, CertifiedMinimumOfLargeProblemsBeatsBruteForce) {
  std::mt19937_64 rng(23);
  for (PenaltyKind k : {PenaltyKind::kWelsch, PenaltyKind::kCauchy, PenaltyKind::kGemanMcClure}) {
    for (double alpha : {0.5, 1.0, 2.0}) {
      for (int trial = 0; trial < 4; ++trial) {
        const int n = trial % 2 ? 400 : 257;
        std::vector<double> x = Points(&rng, n, 1, 0.4 + 0.3 * trial, 2 + trial % 2);
        if (trial == 3) {
          for (double& v : x) v = std::round(v * 8 / alpha) * alpha / 8;
        }
        std::vector<double> w(x.size());
        std::uniform_real_distribution<double> uw(0.1, 2);
        for (auto& v : w) v = uw(rng);
        PoolingProblem p{k, alpha, x.data(), trial % 2 ? nullptr : w.data(), static_cast<int64_t>(x.size()), 1};
        double y;
        ProblemStatus s;
        SolveScalarPool(p, &y, &s);
        const double f = PoolingObjective(p, &y), brute = BruteForceScalar(p, 6000);
        SCOPED_TRACE(PenaltyName(k) + " alpha=" + std::to_string(alpha) + " trial=" + std::to_string(trial));
        EXPECT_LE(f, brute + 1e-12 * (1 + std::abs(brute)));
        EXPECT_FALSE(s.flags & kNotCertified) << s.note;
      }
    }
  }
}

TEST(ScalarPool, ConvexPenaltiesReachMachinePrecision) {
  std::mt19937_64 rng(5);
  for (PenaltyKind k : {PenaltyKind::kPseudoHuber, PenaltyKind::kHuber}) {
    std::vector<double> x = Points(&rng, 200, 1, 1.0);
    PoolingProblem p{k, 0.7, x.data(), nullptr, 200, 1};
    double y;
    ProblemStatus s;
    SolveScalarPool(p, &y, &s);
    const PenaltyEval pen(k, 0.7);
    double g = 0, gabs = 0;
    for (double xi : x) {
      g += pen.D1(y - xi);
      gabs += std::abs(pen.D1(y - xi));
    }
    EXPECT_LE(std::abs(g), 1e-14 * gabs) << PenaltyName(k);
  }
}

// Newton from the sample median converges quadratically: a few passes, also when the last step rounds to an end
// of the bracket (which once sent the safeguard into dozens of bisection-like steps on a quarter of the problems).
TEST(ScalarPool, ConvexPenaltiesConvergeInAFewPasses) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uni(0, 1);
  for (PenaltyKind k : {PenaltyKind::kPseudoHuber, PenaltyKind::kHuber}) {
    int most = 0;
    for (int b = 0; b < 64; ++b) {
      // The benchmark's clusters: N(c, 1) with 20 % outliers at c ± U(5, 10).
      const double c = normal(rng);
      std::vector<double> x(1024);
      for (auto& v : x) v = uni(rng) < 0.2 ? c + (uni(rng) < 0.5 ? -1 : 1) * (5 + 5 * uni(rng)) : c + normal(rng);
      PoolingProblem p{k, 1.0, x.data(), nullptr, 1024, 1};
      double y;
      ProblemStatus s;
      SolveScalarPool(p, &y, &s);
      EXPECT_LE(s.residual, 1e-14);
      most = std::max(most, s.iterations);
    }
    EXPECT_LE(most, 6) << PenaltyName(k);
  }
}

TEST(ScalarPool, WelschFindsTheHeavierOfTwoClustersWhereMeanAndMedianStartsFail) {
  // 10 points at 0, 11 at 6, plus a point between: the mean and the median are in the wrong basin or between.
  std::vector<double> x;
  for (int i = 0; i < 10; ++i) x.push_back(0.01 * i);
  for (int i = 0; i < 11; ++i) x.push_back(6 + 0.01 * i);
  x.push_back(2.5);
  for (PenaltyKind k : {PenaltyKind::kWelsch, PenaltyKind::kCauchy, PenaltyKind::kGemanMcClure}) {
    PoolingProblem p{k, 0.5, x.data(), nullptr, static_cast<int64_t>(x.size()), 1};
    double y;
    ProblemStatus s;
    SolveScalarPool(p, &y, &s);
    EXPECT_NEAR(y, 6.05, 0.05) << PenaltyName(k);
    EXPECT_EQ(s.flags, 0u) << s.note;
  }
}

TEST(ScalarPool, TiedClustersAreFlaggedNonUnique) {
  const std::vector<double> x = {0, 0.1, 0.2, 10, 10.1, 10.2};
  for (PenaltyKind k : {PenaltyKind::kWelsch, PenaltyKind::kTruncatedQuadratic, PenaltyKind::kGemanMcClure}) {
    PoolingProblem p{k, 0.5, x.data(), nullptr, 6, 1};
    double y;
    ProblemStatus s;
    SolveScalarPool(p, &y, &s);
    EXPECT_TRUE(s.flags & kNonUnique) << PenaltyName(k);
    // geman_mcclure's heavy tail pulls y slightly towards the far cluster.
    EXPECT_NEAR(y, 0.1, k == PenaltyKind::kGemanMcClure ? 1e-3 : 1e-9) << PenaltyName(k);
  }
}

TEST(ScalarPool, FlatHuberIsAllOutliersWithMidpointAndZeroGradient) {
  const std::vector<double> x = {0, 10};
  PoolingProblem p{PenaltyKind::kHuber, 1.0, x.data(), nullptr, 2, 1};
  double y;
  ProblemStatus s;
  SolveScalarPool(p, &y, &s);
  EXPECT_DOUBLE_EQ(y, 5.0);
  EXPECT_TRUE(s.flags & kAllOutliers);
  EXPECT_TRUE(s.flags & kNonUnique);
  double dx[2] = {0, 0}, v = 1;
  PoolingBackward(p, &y, &v, dx, nullptr, &s);
  EXPECT_EQ(dx[0], 0.0);
  EXPECT_EQ(dx[1], 0.0);
}

TEST(ScalarPool, TruncatedQuadraticIsolatedPointsPickTheSmallest) {
  const std::vector<double> x = {7, 1, 4};
  PoolingProblem p{PenaltyKind::kTruncatedQuadratic, 1.0, x.data(), nullptr, 3, 1};
  double y;
  ProblemStatus s;
  SolveScalarPool(p, &y, &s);
  EXPECT_EQ(y, 1.0);
  EXPECT_TRUE(s.flags & kNonUnique);
  double dx[3] = {0, 0, 0}, v = 1;
  PoolingBackward(p, &y, &v, dx, nullptr, &s);
  EXPECT_EQ(dx[0], 0.0);
  EXPECT_EQ(dx[1], 1.0);
  EXPECT_EQ(dx[2], 0.0);
}

TEST(ScalarPool, AllPointsEqual) {
  const std::vector<double> x = {2.5, 2.5, 2.5};
  for (PenaltyKind k : kAll) {
    PoolingProblem p{k, 1.0, x.data(), nullptr, 3, 1};
    double y;
    ProblemStatus s;
    SolveScalarPool(p, &y, &s);
    EXPECT_EQ(y, 2.5) << PenaltyName(k);
  }
}

TEST(VectorPool, LocalSolutionsBeatBruteForceIn2d) {
  std::mt19937_64 rng(3);
  for (PenaltyKind k : kAll) {
    for (double alpha : {0.5, 1.0, 2.0}) {
      for (int trial = 0; trial < 3; ++trial) {
        std::vector<double> x = Points(&rng, 12, 2, 0.5 + 0.5 * trial, 1 + trial % 2);
        std::vector<double> w(12);
        std::uniform_real_distribution<double> uw(0.1, 2);
        for (auto& v : w) v = uw(rng);
        PoolingProblem p{k, alpha, x.data(), trial == 1 ? w.data() : nullptr, 12, 2};
        double y[2];
        ProblemStatus s;
        SolveVectorPool(p, y, &s);
        const double f = PoolingObjective(p, y), brute = BruteForce2d(p);
        SCOPED_TRACE(PenaltyName(k) + " alpha=" + std::to_string(alpha) + " trial=" + std::to_string(trial));
        EXPECT_LE(f, brute + 1e-9 * (1 + std::abs(brute)));
        if (IsSmooth(k)) {
          EXPECT_LE(s.residual, 1e-11);
        }
        // The truncated quadratic is certified (truncated_vector.h); the other non-convex penalties are not in D > 1.
        EXPECT_EQ(static_cast<bool>(s.flags & kNotCertified), !IsConvex(k) && k != PenaltyKind::kTruncatedQuadratic)
            << s.note;
      }
    }
  }
}

// Large enough (N = 256) for the multi-start's screening on the score sample: a tight cluster of a third of the
// points, away from the median's and the mean's cluster, holds the global minimum; only the data-point starts lead
// there, and the screening must not drop them.
TEST(VectorPool, ScreenedStartsStillFindATightClusterTheMedianMisses) {
  std::mt19937_64 rng(41);
  std::normal_distribution<double> normal;
  for (PenaltyKind k : {PenaltyKind::kWelsch, PenaltyKind::kGemanMcClure}) {
    for (int trial = 0; trial < 2; ++trial) {
      const int n = 256;
      std::vector<double> x(2 * n);
      for (int i = 0; i < n; ++i) {
        const int c = i % 3;  // 0: wide at the origin, 1: tight at (6, 0), 2: wide at (−6, 1)
        const double spread = c == 1 ? 0.3 : 1.0, cx = c == 0 ? 0 : c == 1 ? 6 : -6, cy = c == 2 ? 1 : 0;
        x[2 * i] = cx + spread * normal(rng) + (c == 0 ? 0.05 * trial : 0);
        x[2 * i + 1] = cy + spread * normal(rng);
      }
      PoolingProblem p{k, 1.0, x.data(), nullptr, n, 2};
      double y[2];
      ProblemStatus s;
      SolveVectorPool(p, y, &s);
      const double f = PoolingObjective(p, y), brute = BruteForce2d(p);
      SCOPED_TRACE(PenaltyName(k) + " trial=" + std::to_string(trial));
      EXPECT_LE(f, brute + 1e-9 * (1 + std::abs(brute)));
      EXPECT_NEAR(y[0], 6, 0.5);  // the tight cluster
      EXPECT_LE(s.residual, 1e-11);
    }
  }
}

// D ≥ 4 takes the vector kernels' four-wide paths (the points' 4 × 4 register transposes, the backward's
// transposed writes of dx, the Hessian's tiles) and D > 16 Eigen's factorisation instead of the small Cholesky;
// N not a multiple of 4 or 16 their tails. For each: y is stationary (∇f by plain loops), the backward agrees
// with central finite differences of the solve, and writing dx, dw (assign) gives the bits of adding them to
// zeros.
TEST(VectorPool, WideProblemsAreStationaryAndTheirGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(23);
  std::uniform_real_distribution<double> uw(0.2, 2);
  for (PenaltyKind k : {PenaltyKind::kPseudoHuber, PenaltyKind::kWelsch}) {
    for (int d : {4, 5, 8, 17}) {
      for (int n : {6, 37, 256}) {
        const bool weighted = (n + d) % 2 == 1;
        std::vector<double> x = Points(&rng, n, d, 0.4), w(n);
        for (auto& v : w) v = uw(rng);
        PoolingProblem p{k, 1.0, x.data(), weighted ? w.data() : nullptr, n, d};
        SCOPED_TRACE(PenaltyName(k) + " n=" + std::to_string(n) + " d=" + std::to_string(d));
        std::vector<double> y(d);
        ProblemStatus s;
        SolveVectorPool(p, y.data(), &s);
        const PenaltyEval pen(k, 1.0);
        std::vector<double> g(d, 0.0);
        double gabs = 0;
        for (int i = 0; i < n; ++i) {
          double z2 = 0;
          for (int c = 0; c < d; ++c) z2 += (y[c] - x[i * d + c]) * (y[c] - x[i * d + c]);
          const PenaltyValues v = pen(std::sqrt(z2));
          const double wi = weighted ? w[i] : 1.0;
          for (int c = 0; c < d; ++c) g[c] += wi * v.psi * (y[c] - x[i * d + c]);
          gabs += wi * std::abs(v.d1);
        }
        for (int c = 0; c < d; ++c) EXPECT_LE(std::abs(g[c]), 1e-10 * gabs);

        std::vector<double> v(d);
        for (auto& e : v) e = std::normal_distribution<double>()(rng);
        std::vector<double> dx(n * d, 0.0), dw(n, 0.0), dx_set(n * d, NAN), dw_set(n, NAN);
        PoolingBackward(p, y.data(), v.data(), dx.data(), weighted ? dw.data() : nullptr, &s);
        PoolingBackward(p, y.data(), v.data(), dx_set.data(), weighted ? dw_set.data() : nullptr, &s, nullptr,
                        /*assign=*/true);
        EXPECT_EQ(dx, dx_set);
        if (weighted) {
          EXPECT_EQ(dw, dw_set);
        }

        double worst = 0, largest = 0;
        for (double e : dx) largest = std::max(largest, std::abs(e));
        for (int t = 0; t < 6; ++t) {
          const int i = static_cast<int>((t * 7919 + 3) % n), c = (t * 5 + 1) % d;
          const double h = 1e-6, saved = x[i * d + c];
          std::vector<double> yp(d), ym(d);
          ProblemStatus sp, sm;
          x[i * d + c] = saved + h;
          SolveVectorPool(p, yp.data(), &sp);
          x[i * d + c] = saved - h;
          SolveVectorPool(p, ym.data(), &sm);
          x[i * d + c] = saved;
          double fd = 0;
          for (int a = 0; a < d; ++a) fd += v[a] * (yp[a] - ym[a]) / (2 * h);
          worst = std::max(worst, std::abs(fd - dx[i * d + c]));
        }
        EXPECT_LE(worst, 1e-6 * largest);
      }
    }
  }
}

// One workspace reused over problems of every penalty, shrinking and growing N and D, with and without weights,
// at ordinary and extreme scales, forward and backward, gives the bits of a fresh workspace per call: nothing
// left in it by one problem leaks into the next.
TEST(Workspace, ReusedWorkspaceGivesTheBitsOfAFreshOne) {
  std::mt19937_64 rng(11);
  PoolingWorkspace reused;
  int compared = 0;
  for (PenaltyKind k : kAll) {
    for (int n : {300, 17, 600, 5}) {
      for (int d : {1, 3, 2}) {
        for (double scale : {1.0, 0x1p-700}) {
          std::vector<double> x = Points(&rng, n, d, 0.7, 1 + n % 2);
          for (double& v : x) v *= scale;
          std::vector<double> w(n);
          std::uniform_real_distribution<double> uw(0.1, 2);
          for (auto& v : w) v = uw(rng);
          const bool weighted = (n + d) % 2 == 0;
          PoolingProblem p{k, scale, x.data(), weighted ? w.data() : nullptr, n, d};
          std::vector<double> y_fresh(d), y_reused(d), v(d, 0.5);
          ProblemStatus s_fresh, s_reused;
          std::vector<double> dx_fresh(n * d), dx_reused(n * d), dw_fresh(n), dw_reused(n);
          if (d == 1) {
            SolveScalarPool(p, y_fresh.data(), &s_fresh);
            SolveScalarPool(p, y_reused.data(), &s_reused, {}, &reused);
          } else {
            SolveVectorPool(p, y_fresh.data(), &s_fresh);
            SolveVectorPool(p, y_reused.data(), &s_reused, {}, nullptr, &reused);
          }
          PoolingBackward(p, y_fresh.data(), v.data(), dx_fresh.data(), dw_fresh.data(), &s_fresh);
          PoolingBackward(p, y_reused.data(), v.data(), dx_reused.data(), dw_reused.data(), &s_reused, &reused);
          SCOPED_TRACE(PenaltyName(k) + " n=" + std::to_string(n) + " d=" + std::to_string(d));
          EXPECT_EQ(y_fresh, y_reused);
          EXPECT_EQ(dx_fresh, dx_reused);
          EXPECT_EQ(dw_fresh, dw_reused);
          EXPECT_EQ(s_fresh.flags, s_reused.flags);
          EXPECT_EQ(s_fresh.residual, s_reused.residual);
          EXPECT_EQ(s_fresh.iterations, s_reused.iterations);
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 7 * 4 * 3 * 2);
}

TEST(Validation, BadProblemsAreInvalidInput) {
  const std::vector<double> x = {1, 2, 3};
  std::vector<double> w = {1, -1, 1};
  auto expect_invalid = [](const PoolingProblem& p, const std::string& part) {
    try {
      ValidatePoolingProblem(p);
      ADD_FAILURE() << "no error for " << part;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_invalid({PenaltyKind::kWelsch, 1.0, x.data(), nullptr, 0, 1}, "N = 0");
  expect_invalid({PenaltyKind::kWelsch, 0.0, x.data(), nullptr, 3, 1}, "alpha");
  expect_invalid({PenaltyKind::kWelsch, -1.0, x.data(), nullptr, 3, 1}, "alpha");
  expect_invalid({PenaltyKind::kWelsch, 1.0, x.data(), w.data(), 3, 1}, "'w' must be >= 0");
  w = {0, 0, 0};
  expect_invalid({PenaltyKind::kWelsch, 1.0, x.data(), w.data(), 3, 1}, "all zero");
  const std::vector<double> bad = {1, NAN, 3};
  expect_invalid({PenaltyKind::kWelsch, 1.0, bad.data(), nullptr, 3, 1}, "non-finite");
}

}  // namespace
}  // namespace ddn::pooling
