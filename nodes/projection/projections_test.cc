// Tests of the plain projections (projections.h): optimality checked independently of the algorithms
// (feasibility + the variational inequality for convex sets, brute force over faces for spheres),
// Condat's threshold against a sort-based one, the closed-form VJPs against central differences, and
// the status flags at awkward points.
#include "nodes/projection/projections.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn {
namespace projection {
namespace {

using Vec = std::vector<double>;
constexpr ProjectionSet kSets[] = {ProjectionSet::kSimplex,  ProjectionSet::kL1Sphere, ProjectionSet::kL1Ball,
                                   ProjectionSet::kL2Sphere, ProjectionSet::kL2Ball,   ProjectionSet::kLinfSphere,
                                   ProjectionSet::kLinfBall};

Vec Gaussian(Rng* rng, int64_t n, double scale) {
  Vec v(n);
  for (auto& e : v) e = scale * rng->Normal();
  return v;
}

double Dot(const Vec& a, const Vec& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}
double Dist2(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

Vec Proj(ProjectionSet set, const Vec& x, double r, ProblemStatus* status = nullptr) {
  Vec y(x.size());
  Project(set, x.data(), static_cast<int64_t>(x.size()), r, y.data(), status);
  return y;
}

// Sort-based simplex threshold (Held, Wolfe & Crowder 1974; Duchi et al. 2008, Fig. 1), as a reference.
double SortThreshold(Vec u, double r) {
  std::sort(u.begin(), u.end(), std::greater<double>());
  double sum = 0, tau = 0;
  for (size_t k = 0; k < u.size(); ++k) {
    sum += u[k];
    const double t = (sum - r) / static_cast<double>(k + 1);
    if (u[k] > t) tau = t;
  }
  return tau;
}

// Independent feasibility test (with a tolerance relative to r).
bool Feasible(ProjectionSet set, const Vec& y, double r, double tol = 1e-12) {
  double l1 = 0, l2 = 0, linf = 0, sum = 0, minimum = INFINITY;
  for (double v : y) {
    l1 += std::abs(v);
    l2 += v * v;
    linf = std::max(linf, std::abs(v));
    sum += v;
    minimum = std::min(minimum, v);
  }
  l2 = std::sqrt(l2);
  const double t = tol * r;
  switch (set) {
    case ProjectionSet::kSimplex:
      return std::abs(sum - r) <= t && minimum >= 0;
    case ProjectionSet::kL1Sphere:
      return std::abs(l1 - r) <= t;
    case ProjectionSet::kL1Ball:
      return l1 <= r + t;
    case ProjectionSet::kL2Sphere:
      return std::abs(l2 - r) <= t;
    case ProjectionSet::kL2Ball:
      return l2 <= r + t;
    case ProjectionSet::kLinfSphere:
      return std::abs(linf - r) <= t;
    case ProjectionSet::kLinfBall:
      return linf <= r + t;
  }
  return false;
}

// Feasible points of a convex set: its vertices (polytopes) and random points.
std::vector<Vec> FeasibleSamples(ProjectionSet set, int64_t n, double r, Rng* rng) {
  std::vector<Vec> z;
  for (int64_t i = 0; i < n; ++i) {
    Vec e(n, 0.0);
    e[i] = r;
    z.push_back(e);
    if (set != ProjectionSet::kSimplex) {
      e[i] = -r;
      z.push_back(e);
    }
  }
  if (set == ProjectionSet::kLinfBall && n <= 8) {
    for (int64_t mask = 0; mask < (int64_t{1} << n); ++mask) {
      Vec c(n);
      for (int64_t i = 0; i < n; ++i) c[i] = (mask >> i & 1) ? r : -r;
      z.push_back(c);
    }
  }
  for (int k = 0; k < 200; ++k) {
    Vec g = Gaussian(rng, n, 1.0);
    const double t = rng->Uniform(0, 1);
    if (set == ProjectionSet::kSimplex) {
      double s = 0;
      for (auto& v : g) s += (v = (-std::log(1.0 - rng->Uniform()) / (1.0)));
      for (auto& v : g) v *= r / s;
    } else if (set == ProjectionSet::kL1Ball) {
      double s = 0;
      for (double v : g) s += std::abs(v);
      for (auto& v : g) v *= t * r / s;
    } else if (set == ProjectionSet::kL2Ball) {
      const double s = std::sqrt(Dot(g, g));
      for (auto& v : g) v *= t * r / s;
    } else {
      for (auto& v : g) v = r * (2 * rng->Uniform(0, 1) - 1);
    }
    z.push_back(g);
  }
  return z;
}

TEST(SimplexThreshold, MatchesSortBased) {
  Rng rng(3);
  for (int64_t n : {1, 2, 3, 7, 64, 1000}) {
    for (double r : {0.1, 1.0, 30.0}) {
      for (int rep = 0; rep < 20; ++rep) {
        Vec x = Gaussian(&rng, n, rep % 3 == 0 ? 0.01 : 3.0);
        if (rep % 4 == 1)
          for (auto& v : x) v = std::round(v);  // many ties
        for (bool use_abs : {false, true}) {
          Vec u = x;
          if (use_abs)
            for (auto& v : u) v = std::abs(v);
          const double want = SortThreshold(u, r);
          const double got = SimplexThreshold(x.data(), n, r, use_abs);
          EXPECT_NEAR(got, want, 1e-13 * (1 + std::abs(want) + r)) << "n " << n << " r " << r << " rep " << rep;
        }
      }
    }
  }
}

TEST(Project, ConvexSetsSatisfyTheVariationalInequality) {
  Rng rng(5);
  for (ProjectionSet set : kSets) {
    if (!IsConvex(set)) continue;
    for (int64_t n : {1, 2, 5, 30}) {
      for (double scale : {0.05, 0.5, 3.0}) {
        const double r = 0.7;
        const Vec x = Gaussian(&rng, n, scale);
        const Vec y = Proj(set, x, r);
        ASSERT_TRUE(Feasible(set, y, r)) << ProjectionSetName(set) << " n " << n;
        Vec d(n);
        for (int64_t i = 0; i < n; ++i) d[i] = x[i] - y[i];
        for (const Vec& z : FeasibleSamples(set, n, r, &rng)) {
          Vec zy(n);
          for (int64_t i = 0; i < n; ++i) zy[i] = z[i] - y[i];
          EXPECT_LE(Dot(d, zy), 1e-12 * (1 + scale)) << ProjectionSetName(set) << " n " << n << " scale " << scale;
        }
      }
    }
  }
}

// Brute force over the faces of the spheres: the L1 sphere is the union of the 2^D faces
// {sᵀy = r, s ⊙ y ≥ 0}, each a sign-flipped simplex; the L∞ sphere the union of 2D faces {y_k = ±r, |y| ≤ r}.
double L1SphereBruteForce(const Vec& x, double r) {
  const int64_t n = static_cast<int64_t>(x.size());
  double best = INFINITY;
  for (int64_t mask = 0; mask < (int64_t{1} << n); ++mask) {
    Vec u(n);
    for (int64_t i = 0; i < n; ++i) u[i] = (mask >> i & 1) ? -x[i] : x[i];
    const double tau = SortThreshold(u, r);
    double d = 0;
    for (int64_t i = 0; i < n; ++i) d += std::pow(std::max(u[i] - tau, 0.0) - u[i], 2);
    best = std::min(best, d);
  }
  return best;
}
double LinfSphereBruteForce(const Vec& x, double r) {
  double best = INFINITY;
  for (size_t k = 0; k < x.size(); ++k) {
    for (double s : {-r, r}) {
      Vec y(x.size());
      for (size_t i = 0; i < x.size(); ++i) y[i] = std::clamp(x[i], -r, r);
      y[k] = s;
      best = std::min(best, Dist2(x, y));
    }
  }
  return best;
}
double L2SphereBruteForce(const Vec& x, double r, Rng* rng) {
  double best = INFINITY;
  for (int k = 0; k < 20000; ++k) {
    Vec g = Gaussian(rng, static_cast<int64_t>(x.size()), 1.0);
    const double s = std::sqrt(Dot(g, g));
    for (auto& v : g) v *= r / s;
    best = std::min(best, Dist2(x, g));
  }
  return best;
}

TEST(Project, SpheresMatchBruteForce) {
  Rng rng(7);
  for (int64_t n : {1, 2, 3, 4}) {
    for (double scale : {0.05, 0.4, 3.0}) {
      for (int rep = 0; rep < 5; ++rep) {
        const double r = 1.3;
        const Vec x = Gaussian(&rng, n, scale);
        const Vec y1 = Proj(ProjectionSet::kL1Sphere, x, r);
        ASSERT_TRUE(Feasible(ProjectionSet::kL1Sphere, y1, r));
        EXPECT_NEAR(Dist2(x, y1), L1SphereBruteForce(x, r), 1e-12);
        const Vec yi = Proj(ProjectionSet::kLinfSphere, x, r);
        ASSERT_TRUE(Feasible(ProjectionSet::kLinfSphere, yi, r));
        EXPECT_NEAR(Dist2(x, yi), LinfSphereBruteForce(x, r), 1e-12);
        const Vec y2 = Proj(ProjectionSet::kL2Sphere, x, r);
        ASSERT_TRUE(Feasible(ProjectionSet::kL2Sphere, y2, r));
        EXPECT_LE(Dist2(x, y2), L2SphereBruteForce(x, r, &rng) + 1e-12);
      }
    }
  }
}

// vᵀ(y(x + h d) − y(x − h d))/(2h) against dxᵀd, for random d, at random points away from kinks.
TEST(ProjectVjp, MatchesCentralDifferences) {
  Rng rng(11);
  for (ProjectionSet set : kSets) {
    for (int64_t n : {1, 3, 12}) {
      for (double scale : {0.1, 1.0, 4.0}) {
        const double r = 0.9;
        const Vec x = Gaussian(&rng, n, scale);
        const Vec y = Proj(set, x, r);
        const Vec v = Gaussian(&rng, n, 1.0), d = Gaussian(&rng, n, 1.0);
        // ProjectVjp assigns (the project node skips zeroing its gradients): start from NaN.
        Vec dx(n, std::nan(""));
        double dr = std::nan("");
        ProjectVjp(set, x.data(), y.data(), n, r, v.data(), dx.data(), &dr);
        const double h = 1e-6;
        Vec xp = x, xm = x;
        for (int64_t i = 0; i < n; ++i) {
          xp[i] += h * d[i];
          xm[i] -= h * d[i];
        }
        const double fd = (Dot(v, Proj(set, xp, r)) - Dot(v, Proj(set, xm, r))) / (2 * h);
        EXPECT_NEAR(Dot(dx, d), fd, 1e-6 * (1 + std::abs(fd))) << ProjectionSetName(set) << " n " << n;
        const double fdr = (Dot(v, Proj(set, x, r + h)) - Dot(v, Proj(set, x, r - h))) / (2 * h);
        EXPECT_NEAR(dr, fdr, 1e-6 * (1 + std::abs(fdr))) << ProjectionSetName(set) << " n " << n << " (radius)";
      }
    }
  }
}

TEST(Project, AwkwardPointsAreFlagged) {
  auto flags = [](ProjectionSet set, const Vec& x, double r, Vec* y = nullptr) {
    ProblemStatus s;
    Vec out = Proj(set, x, r, &s);
    if (y) *y = out;
    for (double v : out) EXPECT_TRUE(std::isfinite(v));
    return s.flags;
  };
  Vec y;
  // x = 0 on the L2 sphere: y = r e_1.
  EXPECT_EQ(flags(ProjectionSet::kL2Sphere, {0, 0, 0}, 2.0, &y), kNonUnique | kNonRegular);
  EXPECT_EQ(y, (Vec{2, 0, 0}));
  // L∞ sphere from inside with a tie: the first coordinate moves.
  EXPECT_EQ(flags(ProjectionSet::kLinfSphere, {0.5, -0.5, 0.1}, 1.0, &y), kNonUnique);
  EXPECT_EQ(y, (Vec{1.0, -0.5, 0.1}));
  // ... and without a tie, nothing.
  EXPECT_EQ(flags(ProjectionSet::kLinfSphere, {0.5, -0.6, 0.1}, 1.0, &y), 0u);
  EXPECT_EQ(y, (Vec{0.5, -1.0, 0.1}));
  // L∞ corners: from outside onto an edge of the sphere (non-smooth set), not for the ball (polytope).
  EXPECT_EQ(flags(ProjectionSet::kLinfSphere, {2, -3, 0.1}, 1.0, &y), kNonSmooth);
  EXPECT_EQ(y, (Vec{1, -1, 0.1}));
  EXPECT_EQ(flags(ProjectionSet::kLinfBall, {2, -3, 0.1}, 1.0), 0u);
  // Exactly on the boundary: degenerate (zero multiplier).
  EXPECT_EQ(flags(ProjectionSet::kLinfBall, {1, 0.3}, 1.0), kDegenerate);
  EXPECT_EQ(flags(ProjectionSet::kL2Ball, {0.6, 0.8}, 1.0), kDegenerate);
  EXPECT_EQ(flags(ProjectionSet::kL1Ball, {0.25, -0.75}, 1.0), kDegenerate);
  EXPECT_EQ(flags(ProjectionSet::kSimplex, {1, 0, 0}, 1.0), kDegenerate);
  EXPECT_EQ(flags(ProjectionSet::kL1Ball, {2, -1, 0.5}, 1.0), kDegenerate);  // τ = 1 = |x_2|
  // L1 sphere from inside with a zero coordinate: its sign is a free choice.
  EXPECT_EQ(flags(ProjectionSet::kL1Sphere, {0.2, 0.0, -0.1}, 1.0, &y), kNonUnique);
  EXPECT_NEAR(y[1], 0.7 / 3, 1e-15);
  // Regular points: no flags.
  EXPECT_EQ(flags(ProjectionSet::kL1Sphere, {0.2, 0.1, -0.1}, 1.0), 0u);
  EXPECT_EQ(flags(ProjectionSet::kL2Ball, {0.3, 0.4}, 1.0), 0u);
  EXPECT_EQ(flags(ProjectionSet::kSimplex, {0.3, 0.4, 2.0}, 1.0), 0u);
}

TEST(Project, BadArgumentsThrow) {
  Vec x{1, 2}, y(2);
  EXPECT_THROW(Project(ProjectionSet::kL2Ball, x.data(), 2, 0.0, y.data(), nullptr), InvalidInput);
  EXPECT_THROW(Project(ProjectionSet::kL2Ball, x.data(), 2, -1.0, y.data(), nullptr), InvalidInput);
  EXPECT_THROW(Project(ProjectionSet::kL2Ball, x.data(), 2, NAN, y.data(), nullptr), InvalidInput);
  EXPECT_THROW(ParseProjectionSet("l3_ball"), InvalidInput);
  EXPECT_EQ(ParseProjectionSet("linf_sphere"), ProjectionSet::kLinfSphere);
}

// Large coordinates: no overflow in the L2 norm, exact thresholds far from the origin.
TEST(Project, ExtremeScales) {
  const Vec big{1e200, -1e200};
  const Vec y = Proj(ProjectionSet::kL2Sphere, big, 1.0);
  EXPECT_NEAR(y[0], std::sqrt(0.5), 1e-15);
  EXPECT_NEAR(y[1], -std::sqrt(0.5), 1e-15);
  const Vec s = Proj(ProjectionSet::kSimplex, {1e6 + 0.3, 1e6, -1e6}, 1.0);
  EXPECT_NEAR(s[0], 0.65, 1e-9);
  EXPECT_NEAR(s[1], 0.35, 1e-9);
  EXPECT_EQ(s[2], 0.0);
}

// The kernels work four coordinates at a time in blocks of 16, with a shorter last chunk. Rows of every length
// around those sizes against plain scalar formulas: y from the sort-based threshold, dx and dr from the VJP
// formulas of projections.h written element by element.
Vec ScalarProjection(ProjectionSet set, const Vec& x, double r) {
  const size_t n = x.size();
  Vec y(n), u(n);
  double l1 = 0, l2 = 0;
  for (size_t i = 0; i < n; ++i) {
    u[i] = std::abs(x[i]);
    l1 += u[i];
    l2 += x[i] * x[i];
  }
  l2 = std::sqrt(l2);
  switch (set) {
    case ProjectionSet::kSimplex: {
      const double tau = SortThreshold(x, r);
      for (size_t i = 0; i < n; ++i) y[i] = std::max(x[i] - tau, 0.0);
      return y;
    }
    case ProjectionSet::kL1Ball:
      if (l1 <= r) return x;
      [[fallthrough]];
    case ProjectionSet::kL1Sphere: {
      const double tau = SortThreshold(u, r);
      for (size_t i = 0; i < n; ++i) y[i] = std::copysign(std::max(u[i] - tau, 0.0), x[i]);
      return y;
    }
    case ProjectionSet::kL2Ball:
      if (l2 <= r) return x;
      [[fallthrough]];
    case ProjectionSet::kL2Sphere:
      for (size_t i = 0; i < n; ++i) y[i] = r * x[i] / l2;
      return y;
    case ProjectionSet::kLinfBall:
    case ProjectionSet::kLinfSphere:  // rows drawn outside the cube only
      for (size_t i = 0; i < n; ++i) y[i] = std::clamp(x[i], -r, r);
      return y;
  }
  return y;
}

void ScalarVjp(ProjectionSet set, const Vec& x, const Vec& y, double r, const Vec& v, Vec* dx, double* dr) {
  const size_t n = x.size();
  dx->assign(n, 0.0);
  double l1 = 0, l2 = 0;
  for (double e : x) {
    l1 += std::abs(e);
    l2 += e * e;
  }
  l2 = std::sqrt(l2);
  switch (set) {
    case ProjectionSet::kL1Ball:
      if (l1 < r) {
        *dx = v;
        *dr = 0;
        return;
      }
      [[fallthrough]];
    case ProjectionSet::kSimplex:
    case ProjectionSet::kL1Sphere: {
      double sum = 0, count = 0;
      for (size_t i = 0; i < n; ++i)
        if (y[i] != 0) {
          sum += (y[i] > 0 ? 1 : -1) * v[i];
          ++count;
        }
      *dr = sum / count;
      for (size_t i = 0; i < n; ++i)
        if (y[i] != 0) (*dx)[i] = v[i] - (y[i] > 0 ? 1 : -1) * *dr;
      return;
    }
    case ProjectionSet::kL2Ball:
      if (l2 < r) {
        *dx = v;
        *dr = 0;
        return;
      }
      [[fallthrough]];
    case ProjectionSet::kL2Sphere: {
      const double uv = Dot(x, v) / l2;
      for (size_t i = 0; i < n; ++i) (*dx)[i] = r / l2 * (v[i] - x[i] / l2 * uv);
      *dr = uv;
      return;
    }
    case ProjectionSet::kLinfBall:
    case ProjectionSet::kLinfSphere:
      *dr = 0;
      for (size_t i = 0; i < n; ++i) {
        if (std::abs(x[i]) < r) {
          (*dx)[i] = v[i];
        } else {
          *dr += (x[i] < 0 ? -1 : 1) * v[i];
        }
      }
      return;
  }
}

TEST(Project, RowsOfEveryLengthMatchScalarFormulas) {
  Rng rng(13);
  for (ProjectionSet set : kSets) {
    for (int64_t n : {1, 4, 5, 15, 16, 17, 31, 33, 64, 100, 1027}) {
      // 0.02: every coordinate a threshold candidate (Condat's search for long rows); 3: a few (Michelot's).
      for (double scale : {0.02, 0.3, 3.0}) {
        const double r = 1.1;
        Vec x = Gaussian(&rng, n, scale);
        if (set == ProjectionSet::kLinfSphere) x[n / 2] = 2 * r;  // outside the cube: the clamp
        const Vec want = ScalarProjection(set, x, r);
        const Vec y = Proj(set, x, r);
        double worst = 0;
        for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(y[i] - want[i]));
        EXPECT_LE(worst, 1e-14 * (r + scale)) << ProjectionSetName(set) << " n " << n << " scale " << scale;
        const Vec v = Gaussian(&rng, n, 1.0);
        Vec dx(n, std::nan("")), want_dx;
        double dr = std::nan(""), want_dr = 0;
        ProjectVjp(set, x.data(), y.data(), n, r, v.data(), dx.data(), &dr);
        ScalarVjp(set, x, y, r, v, &want_dx, &want_dr);
        double worst_dx = 0;
        for (int64_t i = 0; i < n; ++i) worst_dx = std::max(worst_dx, std::abs(dx[i] - want_dx[i]));
        EXPECT_LE(worst_dx, 1e-12 * (1 + r / scale)) << ProjectionSetName(set) << " n " << n << " scale " << scale;
        EXPECT_NEAR(dr, want_dr, 1e-12 * (1 + std::abs(want_dr))) << ProjectionSetName(set) << " n " << n;
      }
    }
  }
}

// Flags from coordinates anywhere in a row, and none from the lanes past its end (which the kernels fill).
TEST(Project, FlagsComeFromTheRowOnly) {
  auto flags = [](ProjectionSet set, const Vec& x, double r) {
    ProblemStatus s;
    Proj(set, x, r, &s);
    return s.flags;
  };
  for (int64_t n : {5, 17, 35}) {
    for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
      Vec x(n, 0.25);
      x[at] = 1.0;
      EXPECT_EQ(flags(ProjectionSet::kLinfBall, x, 1.0), kDegenerate) << "n " << n << " at " << at;
      x[at] = 0.9;
      EXPECT_EQ(flags(ProjectionSet::kLinfBall, x, 1.0), 0u) << "n " << n << " at " << at;
    }
    // Simplex with τ = 0 (y = [0.5, 0.5, 0, ...]): the filler zeros past the end would sit at the threshold.
    Vec x(n, -1.0);
    x[0] = 0.5;
    x[n - 2] = 0.5;
    EXPECT_EQ(flags(ProjectionSet::kSimplex, x, 1.0), 0u) << "n " << n;
    x[1] = 0.0;  // a real coordinate at τ = 0
    EXPECT_EQ(flags(ProjectionSet::kSimplex, x, 1.0), kDegenerate) << "n " << n;
  }
}

}  // namespace
}  // namespace projection
}  // namespace ddn
