// Tests of the user-defined shape example `project_superellipse` (user_shape.h): the answer lies on the
// curve and is the nearest point (brute force along the curve), gradients against finite differences
// (x and the semi-axes), the non-convexity flag, and bad parameters.
#include <gtest/gtest.h>

#include <cmath>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"

namespace ddn {
namespace {

TEST(ProjectSuperellipse, FindsTheNearestPointOfTheCurve) {
  for (const char* p : {"4", "2.5"}) {
    const double pv = std::stod(p);
    const auto node = MakeNode("project_superellipse", {{"p", p}});
    const Tensor x({5, 2}, {2.0, 0.5, -0.3, 1.7, 0.4, 0.1, -1.2, -1.1, 0.05, -0.6});
    ForwardResult r = Forward(*node, {{"x", x}});
    for (int64_t b = 0; b < 5; ++b) {
      const double* y = r.outputs["y"].problem(b);
      const double* xb = x.problem(b);
      EXPECT_NEAR(std::pow(std::abs(y[0]), pv) + std::pow(std::abs(y[1]), pv), 1.0, 1e-12);
      EXPECT_TRUE(r.status[b].flags & kNotCertified);
      const double ours = std::hypot(y[0] - xb[0], y[1] - xb[1]);
      double best = INFINITY;
      for (int k = 0; k < 100000; ++k) {
        const double t = 2 * M_PI * k / 100000, c = std::cos(t), s = std::sin(t);
        const double u = std::copysign(std::pow(std::abs(c), 2 / pv), c);
        const double v = std::copysign(std::pow(std::abs(s), 2 / pv), s);
        best = std::min(best, std::hypot(u - xb[0], v - xb[1]));
      }
      EXPECT_LE(ours, best + 1e-12) << "p " << p << " element " << b;
    }
  }
}

TEST(ProjectSuperellipse, GradientsMatchFiniteDifferences) {
  const auto node = MakeNode("project_superellipse");
  const CheckReport report = CheckGradients(*node);
  EXPECT_TRUE(report.passed) << report.ToString();
}

TEST(ProjectSuperellipse, BadInputIsRejected) {
  EXPECT_THROW(MakeNode("project_superellipse", {{"p", "1"}}), InvalidInput);
  EXPECT_THROW(MakeNode("project_superellipse", {{"p", "-3"}}), InvalidInput);
  const auto node = MakeNode("project_superellipse");
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 3}, {1, 2, 3})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 2}, {1, 2})}, {"a", Tensor({1, 2}, {1, 0})}}), InvalidInput);
}

}  // namespace
}  // namespace ddn
