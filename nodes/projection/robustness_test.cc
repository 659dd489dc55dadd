// Regression tests of issue 18 for the projections: answers in the set to rounding whatever the scale of x
// relative to the radius (simplex and L1 sets), the ellipsoid far outside and at extreme scales, and bench inputs
// for every node.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/projection/ellipsoid.h"
#include "nodes/projection/projections.h"

namespace ddn {
namespace projection {
namespace {

using Vec = std::vector<double>;

Vec Proj(ProjectionSet set, const Vec& x, double r, ProblemStatus* status = nullptr) {
  Vec y(x.size());
  Project(set, x.data(), static_cast<int64_t>(x.size()), r, y.data(), status);
  return y;
}

// Item 9: radius 1e-17 with x = [1, 3, 2] gave y = [0, 2, 1]; x = [5e15, 0, 1e16] with r = 1 gave [1, 0, 5e15];
// both flagged only `degenerate`, with a false note.
TEST(ProjectSimplexLike, TinyRadiiRelativeToXAreInTheSet) {
  ProblemStatus a;
  const Vec y = Proj(ProjectionSet::kSimplex, {1, 3, 2}, 1e-17, &a);
  EXPECT_EQ(y, (Vec{0, 1e-17, 0}));
  EXPECT_TRUE(a.ok()) << a.note;
  ProblemStatus b;
  EXPECT_EQ(Proj(ProjectionSet::kSimplex, {5e15, 0, 1e16}, 1, &b), (Vec{0, 0, 1}));
  EXPECT_TRUE(b.ok()) << b.note;
  EXPECT_EQ(Proj(ProjectionSet::kL1Ball, {-5e15, 0, 1e16}, 1), (Vec{0, 0, 1}));
  EXPECT_EQ(Proj(ProjectionSet::kL1Sphere, {5e15, 0, -1e16}, 1), (Vec{0, 0, -1}));
  // A tie at the maximum far above r shares r.
  EXPECT_EQ(Proj(ProjectionSet::kSimplex, {3, 3, 1}, 1e-17), (Vec{5e-18, 5e-18, 0}));
}

// For random x at scales from 1e-12 to 1e16 times r: the answer is in the set to rounding (Σ y_i = r within a few
// ulps of r, y ≥ 0 for the simplex, signs of x for the L1 sets) and satisfies the KKT conditions of the threshold.
TEST(ProjectSimplexLike, EveryScaleOfXRelativeToRIsInTheSet) {
  Rng rng(5);
  for (double scale : {1e-12, 1e-3, 1.0, 1e3, 1e8, 1e12, 1e16}) {
    for (double r : {1e-17, 1e-5, 1.0, 7.5}) {
      for (int rep = 0; rep < 20; ++rep) {
        Vec x(1 + rep % 9);
        for (auto& v : x) v = scale * rng.Normal();
        for (ProjectionSet set : {ProjectionSet::kSimplex, ProjectionSet::kL1Sphere, ProjectionSet::kL1Ball}) {
          const Vec y = Proj(set, x, r);
          double l1 = 0, xl1 = 0;
          for (size_t i = 0; i < x.size(); ++i) {
            l1 += std::abs(y[i]);
            xl1 += std::abs(x[i]);
            if (set == ProjectionSet::kSimplex) {
              EXPECT_GE(y[i], 0.0);
            }
            if (set != ProjectionSet::kSimplex && y[i] != 0) {
              EXPECT_EQ(std::signbit(y[i]), std::signbit(x[i]));
            }
          }
          if (set == ProjectionSet::kL1Ball && xl1 <= r) continue;  // inside: y = x
          const std::string what =
              std::string(ProjectionSetName(set)) + " scale " + std::to_string(scale) + " r " + std::to_string(r);
          EXPECT_NEAR(l1, r, 16 * 2.2e-16 * r) << what;
          // y_i = max(u_i − τ, 0): the support's u_i − y_i agree (τ) and exceed every off-support u_i.
          double tau_lo = INFINITY, tau_hi = -INFINITY, off = -INFINITY, umax = 0;
          for (size_t i = 0; i < x.size(); ++i) {
            const double u = set == ProjectionSet::kSimplex ? x[i] : std::abs(x[i]);
            umax = std::max(umax, std::abs(u));
            if (y[i] != 0) {
              tau_lo = std::min(tau_lo, u - std::abs(y[i]));
              tau_hi = std::max(tau_hi, u - std::abs(y[i]));
            } else {
              off = std::max(off, u);
            }
          }
          EXPECT_LE(tau_hi - tau_lo, 4 * 2.2e-16 * (umax + r)) << what;
          if (off > -INFINITY) {
            EXPECT_LE(off, tau_hi + 4 * 2.2e-16 * (umax + r)) << what;
          }
        }
      }
    }
  }
}

// Item 11: project_ellipsoid of x × 1e300 answered y = 0 with residual 1 and no flag.
TEST(Ellipsoid, FarOutsideAndExtremeScales) {
  const Vec a{1, 2};
  for (double s : {1e300, 1e200, 1e160}) {
    const Vec x{1 * s, 2 * s};
    Vec y(2);
    ProblemStatus status;
    ProjectOntoEllipsoid(x.data(), a.data(), 2, false, y.data(), &status);
    const double level = (y[0] / a[0]) * (y[0] / a[0]) + (y[1] / a[1]) * (y[1] / a[1]);
    EXPECT_NEAR(level, 1.0, 1e-14) << s;
    // Infinitely far, the nearest point has its normal along x: y_i ∝ a_i² x_i.
    EXPECT_NEAR(y[1] / y[0], 8.0, 1e-9) << s;
  }
  // Covariance: y(s·x; s·a) = s·y(x; a), with the same derivatives, for semi-axes far outside 2^±200.
  const Vec x0{0.7, -1.9, 0.4}, a0{0.5, 1.5, 2.5}, v{0.3, -1.0, 2.0};
  Vec y0(3), dx0(3, 0.0), da0(3, 0.0);
  ProjectOntoEllipsoid(x0.data(), a0.data(), 3, false, y0.data(), nullptr);
  ASSERT_TRUE(EllipsoidVjp(x0.data(), a0.data(), y0.data(), 3, false, v.data(), dx0.data(), da0.data()));
  for (double s : {1e280, 1e-280, 1e100}) {
    Vec x(3), scaled_a(3), y(3), dx(3, 0.0), da(3, 0.0);
    for (int i = 0; i < 3; ++i) {
      x[i] = x0[i] * s;
      scaled_a[i] = a0[i] * s;
    }
    ProjectOntoEllipsoid(x.data(), scaled_a.data(), 3, false, y.data(), nullptr);
    ASSERT_TRUE(EllipsoidVjp(x.data(), scaled_a.data(), y.data(), 3, false, v.data(), dx.data(), da.data()));
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(y[i] / s, y0[i], 1e-14) << s;
      EXPECT_NEAR(dx[i], dx0[i], 1e-12) << s;
      EXPECT_NEAR(da[i], da0[i], 1e-12) << s;
    }
  }
  // Beyond double precision: refused, naming the values.
  Vec y(2);
  const Vec skewed{1e-200, 1e200}, x{1, 1};
  EXPECT_THROW(ProjectOntoEllipsoid(x.data(), skewed.data(), 2, false, y.data(), nullptr), InvalidInput);
}

// Item 11 through the node: the residual is near zero and the answer says ok, or the request is refused.
TEST(Ellipsoid, NodeNeverAnswersFarFromTheSurface) {
  auto node = MakeNode("project_ellipsoid");
  const ForwardResult f = Forward(*node, {{"x", Tensor({1, 2}, {1e300, 2e300})}, {"a", Tensor({1, 2}, {1, 2})}});
  EXPECT_LE(f.status[0].residual, 1e-14);
  EXPECT_NEAR(f.outputs.at("y")[1] / f.outputs.at("y")[0], 8.0, 1e-9);
}

// Item 16: `ddn bench project_ellipsoid` always exited 2: its random semi-axes were N(0, 1). Inputs that must be
// positive say so in their spec.
TEST(Ellipsoid, SemiAxesAreDeclaredPositive) {
  const NodeSpec& spec = GetNodeSpec("project_ellipsoid");
  EXPECT_TRUE(spec.inputs[spec.InputIndex("a")].positive);
  EXPECT_FALSE(spec.inputs[spec.InputIndex("x")].positive);
}

}  // namespace
}  // namespace projection
}  // namespace ddn
