// Tests of the `project_ellipsoid` node: gradients wrt x and the semi-axes against finite differences,
// the secular-equation forward and the closed-form backward against the generic engine, the hard case,
// and bad semi-axes.
#include <gtest/gtest.h>

#include <cmath>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"

namespace ddn {
namespace {

double MaxAbsDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(ProjectEllipsoidNode, GradientsMatchFiniteDifferences) {
  for (const char* surface : {"false", "true"}) {
    const auto node = MakeNode("project_ellipsoid", {{"surface", surface}});
    const CheckReport report = CheckGradients(*node);
    EXPECT_TRUE(report.passed) << "surface " << surface << "\n" << report.ToString();
  }
}

TEST(ProjectEllipsoidNode, SpecialisedPathsMatchTheGenericEngine) {
  for (const char* surface : {"false", "true"}) {
    const auto node = MakeNode("project_ellipsoid", {{"surface", surface}});
    for (const CheckCase& c : node->CheckCases(4)) {
      RunOptions generic;
      generic.generic = true;
      ForwardResult fast = Forward(*node, c.inputs);
      ForwardResult slow = Forward(*node, c.inputs, generic);
      EXPECT_LE(MaxAbsDiff(fast.outputs["y"], slow.outputs["y"]), 1e-9) << "surface " << surface << " " << c.name;
      Tensor v(fast.outputs["y"].shape());
      for (int64_t i = 0; i < v.size(); ++i) v[i] = std::sin(1.0 + 3.0 * i);
      std::vector<ProblemStatus> s1 = fast.status, s2 = fast.status;
      const TensorMap g1 = Backward(*node, c.inputs, fast.outputs, {{"y", v}}, &s1);
      const TensorMap g2 = Backward(*node, c.inputs, fast.outputs, {{"y", v}}, &s2, generic);
      for (const char* name : {"x", "a"}) {
        EXPECT_LE(MaxAbsDiff(g1.at(name), g2.at(name)), 1e-8) << "surface " << surface << " " << c.name << " " << name;
      }
    }
  }
}

TEST(ProjectEllipsoidNode, HardCaseIsFlaggedAndDifferentiatedByTheEngine) {
  const auto node = MakeNode("project_ellipsoid", {{"surface", "true"}});
  const TensorMap in{{"x", Tensor({1, 3}, {0.1, 0.0, 0.05})}, {"a", Tensor({1, 3}, {2.0, 0.5, 1.0})}};
  ForwardResult r = Forward(*node, in);
  EXPECT_TRUE(r.status[0].flags & kNonUnique) << r.status[0].note;
  EXPECT_GT(r.outputs["y"][1], 0);
  const TensorMap g = Backward(*node, in, r.outputs, {{"y", Tensor({1, 3}, {1.0, -1.0, 0.5})}}, &r.status);
  for (const char* name : {"x", "a"})
    for (double e : g.at(name).values()) EXPECT_TRUE(std::isfinite(e));
  EXPECT_TRUE(r.status[0].flags & kNonRegular);
}

// Inside the solid: y = x, so dx = v and da = 0 exactly (the finite-difference checker cannot judge a
// zero gradient relative to its own rounding noise, so this is checked exactly).
TEST(ProjectEllipsoidNode, InsideTheSolidIsTheIdentity) {
  const auto node = MakeNode("project_ellipsoid");
  const TensorMap in{{"x", Tensor({1, 3}, {0.5, -0.2, 0.1})}, {"a", Tensor({1, 3}, {1.0, 2.0, 0.5})}};
  ForwardResult r = Forward(*node, in);
  EXPECT_EQ(r.outputs["y"].values(), in.at("x").values());
  const Tensor v({1, 3}, {1.0, -2.0, 3.0});
  const TensorMap g = Backward(*node, in, r.outputs, {{"y", v}}, &r.status);
  EXPECT_EQ(g.at("x").values(), v.values());
  EXPECT_EQ(g.at("a").ToVector(), (std::vector<double>{0.0, 0.0, 0.0}));
}

TEST(ProjectEllipsoidNode, BadSemiAxesAreRejected) {
  const auto node = MakeNode("project_ellipsoid");
  const Tensor x({1, 2}, {1.0, 2.0});
  EXPECT_THROW(Forward(*node, {{"x", x}, {"a", Tensor({1, 2}, {1.0, 0.0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}, {"a", Tensor({1, 2}, {-1.0, 1.0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}, {"a", Tensor({1, 3}, {1.0, 1.0, 1.0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}, {"a", Tensor({1, 2}, {NAN, 1.0})}}), InvalidInput);
  EXPECT_THROW(MakeNode("project_ellipsoid", {{"surface", "maybe"}}), InvalidInput);
}

}  // namespace
}  // namespace ddn
