// Tests of the secular-equation projection onto an ellipsoid (ellipsoid.h): the ball as a special
// case, the KKT conditions, brute force on the 2-D surface, the hard case, and the closed-form VJP
// against central differences in x and in the semi-axes.
#include "nodes/projection/ellipsoid.h"
#include "ddn/check.h"
#include "ddn/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace ddn {
namespace projection {
namespace {

using Vec = std::vector<double>;

Vec Ellipsoid(const Vec& x, const Vec& a, bool surface, ProblemStatus* status = nullptr) {
  Vec y(x.size());
  ProjectOntoEllipsoid(x.data(), a.data(), static_cast<int64_t>(x.size()), surface, y.data(), status);
  return y;
}

double Level(const Vec& y, const Vec& a) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += (y[i] / a[i]) * (y[i] / a[i]);
  return s;
}

TEST(Ellipsoid, EqualAxesGiveTheBall) {
  const Vec x{3, -4, 12}, a{2, 2, 2};
  for (bool surface : {false, true}) {
    const Vec y = Ellipsoid(x, a, surface);
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(y[i], 2 * x[i] / 13, 1e-15);
  }
  const Vec inside{0.3, 0.1, 0.2};
  EXPECT_EQ(Ellipsoid(inside, a, false), inside);
  const Vec ys = Ellipsoid(inside, a, true);
  const double n = std::sqrt(0.14);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(ys[i], 2 * inside[i] / n, 1e-14);
}

// Stationarity x − y = μ diag(a⁻²) y with μ ≥ 0 for the solid, and the constraint, to machine precision.
TEST(Ellipsoid, SatisfiesKktConditions) {
  Rng rng(2);
  for (int rep = 0; rep < 200; ++rep) {
    const int n = 1 + rep % 6;
    Vec x(n), a(n);
    for (auto& v : x) v = (rep % 3 + 0.2) * rng.Normal();
    for (auto& v : a) v = rng.Uniform(0.2, 3.0);
    for (bool surface : {false, true}) {
      ProblemStatus status;
      const Vec y = Ellipsoid(x, a, surface, &status);
      if (!surface && Level(x, a) < 1) {
        EXPECT_EQ(y, x);
        continue;
      }
      EXPECT_NEAR(Level(y, a), 1.0, 1e-14) << "rep " << rep << " surface " << surface;
      double num = 0, den = 0;
      for (int i = 0; i < n; ++i) {
        const double g = y[i] / (a[i] * a[i]);
        num += (x[i] - y[i]) * g;
        den += g * g;
      }
      const double mu = num / den;
      if (!surface) {
        EXPECT_GE(mu, -1e-14);
      }
      for (int i = 0; i < n; ++i) {
        EXPECT_NEAR(x[i] - y[i], mu * y[i] / (a[i] * a[i]), 1e-13 * (1 + std::abs(x[i])));
      }
      EXPECT_LT(status.iterations, 60);
    }
  }
}

TEST(Ellipsoid, SurfaceMatchesBruteForceIn2D) {
  Rng rng(4);
  for (int rep = 0; rep < 20; ++rep) {
    const Vec a{0.5 + rep * 0.1, 1.7}, x{rng.Normal(), rng.Normal()};
    const Vec y = Ellipsoid(x, a, true);
    const double d = std::pow(y[0] - x[0], 2) + std::pow(y[1] - x[1], 2);
    double best = INFINITY;
    for (int k = 0; k < 200000; ++k) {
      const double t = 2 * M_PI * k / 200000;
      best = std::min(best, std::pow(a[0] * std::cos(t) - x[0], 2) + std::pow(a[1] * std::sin(t) - x[1], 2));
    }
    EXPECT_LE(d, best + 1e-12);
    EXPECT_GE(d, best - 1e-6);
  }
}

TEST(Ellipsoid, HardCaseIsFlaggedAndFinite) {
  const Vec a{2.0, 0.5, 1.0};
  ProblemStatus s;
  Vec y = Ellipsoid({0, 0, 0}, a, true, &s);
  EXPECT_EQ(y, (Vec{0, 0.5, 0}));
  EXPECT_EQ(s.flags, kNonUnique | kNonRegular);
  // x off the shortest axis but close to the centre: still the hard case.
  ProblemStatus s2;
  y = Ellipsoid({0.1, 0, 0.05}, a, true, &s2);
  EXPECT_EQ(s2.flags, kNonUnique | kNonRegular);
  EXPECT_NEAR(Level(y, a), 1.0, 1e-14);
  EXPECT_GT(y[1], 0);
  Vec dx(3), da(3), v{1, 1, 1};
  EXPECT_FALSE(EllipsoidVjp(Vec{0.1, 0, 0.05}.data(), a.data(), y.data(), 3, true, v.data(), dx.data(), da.data()));
  // On the boundary of the solid: degenerate.
  ProblemStatus s3;
  Ellipsoid({2.0, 0, 0}, a, false, &s3);
  EXPECT_EQ(s3.flags, kDegenerate);
}

// Near the pole: the surface projection of a point close to the centre, x = (t, 0, 0) on the shortest axis (not the
// hard case: x_k ≠ 0 there). The answer is (a_0, 0, 0). The secular solver's d_0 = (a_0² − a_min²) + δ must be δ
// exactly, with δ ≈ a_0·t tiny; were a_0² − a_min² rounded differently from 0 (an FMA contraction leaves the
// rounding error of a_0², ~1e-16, in its place), y_0 would be off by about that error / δ: 8e-7 at t = 1e-10.
TEST(Ellipsoid, SurfaceNearThePoleIsExact) {
  const Vec a{1.697, 2.5, 3.1};
  for (double t : {1e-2, 1e-6, 1e-10}) {
    const Vec y = Ellipsoid({t, 0, 0}, a, true);
    EXPECT_NEAR(y[0], a[0], 4 * std::numeric_limits<double>::epsilon() * a[0]) << t;
    EXPECT_EQ(y[1], 0.0);
    EXPECT_EQ(y[2], 0.0);
    EXPECT_NEAR(Level(y, a), 1.0, 1e-14) << t;
  }
}

TEST(EllipsoidVjp, MatchesCentralDifferences) {
  Rng rng(9);
  for (int rep = 0; rep < 60; ++rep) {
    const int n = 1 + rep % 5;
    Vec x(n), a(n), v(n), dxdir(n), dadir(n);
    for (auto& e : x) e = (rep % 3 + 0.3) * rng.Normal();
    for (auto& e : a) e = rng.Uniform(0.4, 2.5);
    for (auto& e : v) e = rng.Normal();
    for (auto& e : dxdir) e = rng.Normal();
    for (auto& e : dadir) e = rng.Normal();
    for (bool surface : {false, true}) {
      const Vec y = Ellipsoid(x, a, surface);
      Vec dx(n, 0.0), da(n, 0.0);
      ASSERT_TRUE(EllipsoidVjp(x.data(), a.data(), y.data(), n, surface, v.data(), dx.data(), da.data()));
      auto phi = [&](double t, double s) {
        Vec xt = x, at = a;
        for (int i = 0; i < n; ++i) {
          xt[i] += t * dxdir[i];
          at[i] += s * dadir[i];
        }
        const Vec yt = Ellipsoid(xt, at, surface);
        double p = 0;
        for (int i = 0; i < n; ++i) p += v[i] * yt[i];
        return p;
      };
      const double h = 1e-5;
      const double fdx = CentralDifference([&](double t) { return phi(t, 0); }, h);
      const double fda = CentralDifference([&](double t) { return phi(0, t); }, h);
      double gx = 0, ga = 0;
      for (int i = 0; i < n; ++i) {
        gx += dx[i] * dxdir[i];
        ga += da[i] * dadir[i];
      }
      EXPECT_NEAR(gx, fdx, 1e-7 * (1 + std::abs(fdx))) << "rep " << rep << " surface " << surface;
      EXPECT_NEAR(ga, fda, 1e-7 * (1 + std::abs(fda))) << "rep " << rep << " surface " << surface;
    }
  }
}

}  // namespace
}  // namespace projection
}  // namespace ddn
