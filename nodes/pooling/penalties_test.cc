// Tests of the penalties: the double fast path against finite differences and against the scalar-generic
// template (double, Jet, nested Jet), and the shape facts the branch and bound relies on.
#include "nodes/pooling/penalties.h"

#include <ceres/jet.h>
#include <gtest/gtest.h>

#include <cmath>

namespace ddn::pooling {
namespace {

using J1 = ceres::Jet<double, 1>;
using J2 = ceres::Jet<ceres::Jet<double, 1>, 1>;

const PenaltyKind kAll[] = {PenaltyKind::kQuadratic,   PenaltyKind::kPseudoHuber,        PenaltyKind::kHuber,
                            PenaltyKind::kWelsch,      PenaltyKind::kTruncatedQuadratic, PenaltyKind::kCauchy,
                            PenaltyKind::kGemanMcClure};

TEST(Penalties, NamesRoundTripAndUnknownIsInvalid) {
  for (PenaltyKind k : kAll) EXPECT_EQ(ParsePenalty(PenaltyName(k)), k);
  EXPECT_THROW(ParsePenalty("tukey"), InvalidInput);
}

TEST(Penalties, DerivativesMatchFiniteDifferencesAndTheTemplate) {
  for (PenaltyKind k : kAll) {
    for (double alpha : {0.3, 1.0, 2.5}) {
      const PenaltyEval pen(k, alpha);
      for (double t : {-3.1, -1.7, -0.93, -0.4, -0.05, 0.0, 0.02, 0.37, 0.81, 1.3, 2.2, 4.9}) {
        const double z = t * alpha;
        const PenaltyValues v = pen(z);
        SCOPED_TRACE(PenaltyName(k) + " alpha=" + std::to_string(alpha) + " z=" + std::to_string(z));
        // Value: template in double.
        EXPECT_NEAR(Penalty<double>(k, z, alpha), v.phi, 1e-14 * (1 + std::abs(v.phi)));
        // Away from the kinks, φ' and φ'' against central differences and against Jets.
        if (std::abs(std::abs(z) - alpha) < 1e-3 * alpha) continue;
        const double h = 1e-5 * alpha;
        const double d1 = (pen.Phi(z + h) - pen.Phi(z - h)) / (2 * h);
        const double d2 = (pen.D1(z + h) - pen.D1(z - h)) / (2 * h);
        EXPECT_NEAR(v.d1, d1, 1e-7 * (1 + std::abs(d1)));
        EXPECT_NEAR(v.d2, d2, 1e-6 * (1 + std::abs(d2)));
        if (z != 0) {
          EXPECT_NEAR(v.psi, v.d1 / z, 1e-13 * (1 + std::abs(v.psi)));
        } else {
          EXPECT_NEAR(v.psi, v.d2, 1e-15);
        }
        J1 zj(z, 0);
        const J1 pj = Penalty<J1>(k, zj, alpha);
        EXPECT_NEAR(pj.v[0], v.d1, 1e-12 * (1 + std::abs(v.d1)));
        J2 zz;
        zz.a = J1(z, 0);
        zz.v[0] = J1(1.0);
        const J2 p2 = Penalty<J2>(k, zz, alpha);
        EXPECT_NEAR(p2.v[0].v[0], v.d2, 1e-12 * (1 + std::abs(v.d2)));
      }
    }
  }
}

TEST(Penalties, VectorisableExpIsAccurate) {
  double worst = 0, worst1m = 0;
  for (double x = -750; x <= 0; x += 0.0137) {
    const double want = std::exp(x);
    if (x >= -700) worst = std::max(worst, std::abs(ExpNonPositive(x) - want) / want);
    const double t = -x * 1e-3;  // also small arguments for 1 − e^−t
    worst1m = std::max(worst1m, std::abs(OneMinusExpNeg(t) + std::expm1(-t)) / -std::expm1(-t));
  }
  EXPECT_LE(worst, 4e-16);
  EXPECT_LE(worst1m, 3e-15);  // 1 − e just above the series range loses a few bits
  EXPECT_EQ(ExpNonPositive(0.0), 1.0);
  EXPECT_GT(ExpNonPositive(-1e4), 0.0);
  EXPECT_LT(ExpNonPositive(-1e4), 1e-300);
}

// The single-precision exp of the float scores and screening passes: within 3e-7 relative (2–3 ulps of float;
// measured 2.5e-7) down to −87, and the eight-lane copy gives the scalar function's bits lane by lane (both compiled
// here for the same target), also at 0, at the clamp and past it.
TEST(Penalties, FloatExpIsAccurateAndItsEightLaneCopyMatches) {
  double worst = 0;
  int differ = 0, count = 0;
  float x[8];
  int filled = 0;
  auto compare = [&](int n) {
    Float8 v = {};
    for (int l = 0; l < n; ++l) v[l] = x[l];
    ExpNonPositiveFloat8(v);
    for (int l = 0; l < n; ++l, ++count) differ += v[l] != ExpNonPositiveFloat(x[l]);
  };
  for (float t = -100.0f; t <= 0.0f; t += 0.00731f) {
    if (t >= -87.0f) {
      const double want = std::exp(static_cast<double>(t));
      worst = std::max(worst, std::abs(ExpNonPositiveFloat(t) - want) / want);
    }
    x[filled++] = t;
    if (filled == 8) compare(8), filled = 0;
  }
  for (float t : {0.0f, -0.0f, -87.0f, -87.5f, -1e30f, -1e-30f, -0.3465736f, -0.3465737f}) {
    x[0] = t;
    compare(1);
  }
  EXPECT_LE(worst, 3e-7);
  EXPECT_EQ(differ, 0) << "of " << count;
  EXPECT_EQ(ExpNonPositiveFloat(0.0f), 1.0f);
  EXPECT_GT(ExpNonPositiveFloat(-1e30f), 0.0f);
}

// The welsch passes' exp and 1 − exp from one evaluation: e has ExpNonPositive's bits, 1 − e is accurate to a few
// ulps everywhere (no cancellation below ln2/2, where it is −r·q(r)), also for tiny and for large arguments.
TEST(Penalties, ExpWithComplementMatchesExpAndExpm1) {
  double worst = 0;
  for (double t : {0.0, 1e-300, 1e-20, 1e-9, 1e-4, 0.01, 0.049, 0.05, 0.2, 0.3465, 0.3467, 0.5, 1.0, 3.0, 40.0, 700.0,
                   720.0, 1e4}) {
    const ExpAndComplement ec = ExpNegWithComplement(t);
    EXPECT_EQ(ec.e, ExpNonPositive(-t)) << t;
    if (t > 0 && t < 700) worst = std::max(worst, std::abs(ec.one_minus_e + std::expm1(-t)) / -std::expm1(-t));
  }
  for (double t = 1e-6; t < 60; t *= 1.0137) {
    const ExpAndComplement ec = ExpNegWithComplement(t);
    EXPECT_EQ(ec.e, ExpNonPositive(-t)) << t;
    worst = std::max(worst, std::abs(ec.one_minus_e + std::expm1(-t)) / -std::expm1(-t));
  }
  EXPECT_LE(worst, 1e-15);
  EXPECT_EQ(ExpNegWithComplement(0.0).one_minus_e, 0.0);
  EXPECT_EQ(ExpNegWithComplement(1e4).one_minus_e, 1.0);
}

TEST(Penalties, SquareFormIsSmoothAtZeroForNestedJets) {
  // The vector node differentiates φ(√s) at s = 0 (y on a data point): no NaN.
  for (PenaltyKind k : kAll) {
    J2 s;
    s.a = J1(0.0, 0);
    s.v[0] = J1(1.0);
    const J2 v = PenaltyOfSquare<J2>(k, s, 0.7);
    EXPECT_TRUE(std::isfinite(v.a.a) && std::isfinite(v.v[0].a) && std::isfinite(v.a.v[0])) << PenaltyName(k);
  }
}

TEST(Penalties, MonotoneInAbsZAndCurvatureShape) {
  for (PenaltyKind k : kAll) {
    const PenaltyEval pen(k, 0.8);
    double prev = -1;
    for (double z = 0; z < 20; z += 0.01) {
      EXPECT_GE(pen.Phi(z), prev) << PenaltyName(k);
      prev = pen.Phi(z);
      EXPECT_EQ(pen.Phi(z), pen.Phi(-z));
    }
    if (IsConvex(k) || k == PenaltyKind::kTruncatedQuadratic) continue;
    // MinCurvature(lo, hi) is a lower bound of φ'' on [lo, hi], attained.
    for (double lo = 0; lo < 5; lo += 0.37) {
      for (double hi = lo; hi < lo + 3; hi += 0.29) {
        const double bound = pen.MinCurvature(lo, hi);
        double mn = 1e300;
        for (int i = 0; i <= 200; ++i) mn = std::min(mn, pen.D2(lo + (hi - lo) * i / 200.0));
        EXPECT_LE(bound, mn + 1e-15) << PenaltyName(k);
        EXPECT_GE(bound, mn - 1e-3) << PenaltyName(k);
      }
    }
  }
}

}  // namespace
}  // namespace ddn::pooling
