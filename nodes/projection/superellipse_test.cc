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
  for (const char* p : {"4", "2.5", "2"}) {
    const double pv = std::stod(p);
    const auto node = MakeNode("project_superellipse", {{"p", p}});
    const Tensor x({7, 2}, {2.0, 0.5, -0.3, 1.7, 0.4, 0.1, -1.2, -1.1, 0.05, -0.6, 2.0, 0.0, 0.0, -0.3});
    ForwardResult r = Forward(*node, {{"x", x}});
    for (int64_t b = 0; b < 7; ++b) {
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
  EXPECT_THROW(MakeNode("project_superellipse", {{"p", "1.5"}}), InvalidInput);
  EXPECT_THROW(MakeNode("project_superellipse", {{"p", "-3"}}), InvalidInput);
  const auto node = MakeNode("project_superellipse");
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 3}, {1, 2, 3})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 2}, {1, 2})}, {"a", Tensor({1, 2}, {1, 0})}}), InvalidInput);
}

}  // namespace
}  // namespace ddn

// ---- the template with a symbolic dimension and an inequality ----------------------------------------
// A test-only shape: the unit Lp ball Σ|y_i|^p ≤ 1 in any dimension D. For p = 2 it must reproduce the
// `project` node's l2_ball exactly (forward and gradient), through the generic engine alone.
#include "nodes/projection/user_shape.h"

namespace ddn {
namespace {

struct TestLpBall {
  static constexpr const char* kName = "test_lp_ball";
  static constexpr const char* kSummary = "test shape: the unit Lp ball";
  static constexpr const char* kDim = "D";
  static constexpr bool kEquality = false;
  static constexpr bool kConvex = true;
  static std::vector<ParamSpec> Params() { return {{"p", ParamType::kFloat, "2", "exponent", {}}}; }
  static std::vector<TensorSpec> ExtraInputs() { return {}; }
  explicit TestLpBall(const ddn::Params& params) : p_(params.RequirePositive("p")) {}
  template <typename T>
  T Constraint(const Args<T>& in, const T* y) const {
    T c = Constant<T>(-1.0);
    for (int64_t i = 0; i < in.size(0); ++i) c += ddn::AbsPow(y[i], p_);
    return c;
  }
  double p_;
};
DDN_REGISTER_SHAPE(TestLpBall);

TEST(UserShape, SymbolicDimensionInequalityMatchesTheL2Ball) {
  const auto shape = MakeNode("test_lp_ball", {{"p", "2"}});
  const auto ball = MakeNode("project", {{"shape", "l2_ball"}});
  const Tensor x({3, 4}, {0.1, 0.2, -0.3, 0.1, 1.0, -2.0, 0.5, 0.3, 0.0, 3.0, -1.0, 0.2});
  ForwardResult a = Forward(*shape, {{"x", x}});
  ForwardResult b = Forward(*ball, {{"x", x}});
  for (int64_t k = 0; k < x.size(); ++k) EXPECT_NEAR(a.outputs["y"][k], b.outputs["y"][k], 1e-10);
  const Tensor v({3, 4}, {1, -1, 2, 0.5, -0.3, 0.7, 1.1, -2, 0.4, 0.4, -0.9, 1.5});
  const TensorMap ga = Backward(*shape, {{"x", x}}, a.outputs, {{"y", v}}, &a.status);
  const TensorMap gb = Backward(*ball, {{"x", x}}, b.outputs, {{"y", v}}, &b.status);
  for (int64_t k = 0; k < x.size(); ++k) EXPECT_NEAR(ga.at("x")[k], gb.at("x")[k], 1e-9);
  EXPECT_EQ(a.status[0].flags & kNotCertified, 0u);
}

}  // namespace
}  // namespace ddn
