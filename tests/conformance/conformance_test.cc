// Every built-in and example node through the conformance suite (ddn/conformance.h): gradients against finite
// differences on both paths, the specialised path against the generic engine, thread-count invariance, NaN/Inf
// refusal, and the generic engine's scale invariance (objective and constraints × 1e-8…1e8; scale-covariant
// inputs and parameters × 1e-6, 1e6).
#include <gtest/gtest.h>

#include <string>

#include "ddn/conformance.h"

namespace ddn {
namespace {

ConformanceOptions Covariant(std::vector<std::string> inputs, std::vector<std::string> params = {}) {
  ConformanceOptions o;
  o.covariant_inputs = std::move(inputs);
  o.covariant_params = std::move(params);
  return o;
}

// ---- the engine's example nodes ----------------------------------------------------------------------------------
TEST(Conformance, PseudoHuberMean) { EXPECT_TRUE(Conforms("pseudo_huber_mean", {}, Covariant({"x"}, {"alpha"}))); }
TEST(Conformance, SphereProjectionOnTheManifold) {
  EXPECT_TRUE(Conforms("sphere_projection", {{"manifold", "true"}}, Covariant({"x"}, {"radius"})));
}
TEST(Conformance, SphereProjectionByAugmentedLagrangian) {
  EXPECT_TRUE(Conforms("sphere_projection", {{"manifold", "false"}, {"radius", "0.7"}}, Covariant({"x"}, {"radius"})));
}
TEST(Conformance, PlaneProjection) { EXPECT_TRUE(Conforms("plane_projection", {}, Covariant({"x", "b"}))); }
TEST(Conformance, BallProjection) { EXPECT_TRUE(Conforms("ball_projection", {}, Covariant({"x"}, {"radius"}))); }
TEST(Conformance, BoxProjection) {
  EXPECT_TRUE(Conforms("box_projection", {{"lo", "-0.5"}, {"hi", "2"}}, Covariant({"x"}, {"lo", "hi"})));
}
TEST(Conformance, SumFit) { EXPECT_TRUE(Conforms("sum_fit", {}, Covariant({"x"}))); }

// ---- built-in nodes ---------------------------------------------------------------------------------------------------
class RobustPool : public ::testing::TestWithParam<const char*> {};
TEST_P(RobustPool, Conforms) {
  EXPECT_TRUE(Conforms("robust_pool", {{"penalty", GetParam()}}, Covariant({"x"}, {"alpha"})));
}
INSTANTIATE_TEST_SUITE_P(Penalties, RobustPool,
                         ::testing::Values("quadratic", "pseudo_huber", "huber", "welsch", "truncated_quadratic",
                                           "cauchy", "geman_mcclure"));

class RobustVectorPool : public ::testing::TestWithParam<const char*> {};
TEST_P(RobustVectorPool, Conforms) {
  ConformanceOptions o = Covariant({"x"}, {"alpha"});
  const std::string penalty = GetParam();
  // The specialised vector solver certifies only the convex penalties; for the others every answer is flagged
  // not_certified, on both paths: there is nothing to compare problem by problem.
  if (penalty != "quadratic" && penalty != "pseudo_huber" && penalty != "huber") o.min_comparisons = 0;
  EXPECT_TRUE(Conforms("robust_vector_pool", {{"penalty", GetParam()}}, o));
}
INSTANTIATE_TEST_SUITE_P(Penalties, RobustVectorPool,
                         ::testing::Values("quadratic", "pseudo_huber", "huber", "welsch", "truncated_quadratic",
                                           "cauchy", "geman_mcclure"));

class Project : public ::testing::TestWithParam<const char*> {};
TEST_P(Project, Conforms) {
  EXPECT_TRUE(Conforms("project", {{"shape", GetParam()}, {"radius", "0.8"}}, Covariant({"x", "radius"}, {"radius"})));
}
INSTANTIATE_TEST_SUITE_P(Shapes, Project,
                         ::testing::Values("simplex", "l1_sphere", "l1_ball", "l2_sphere", "l2_ball", "linf_sphere",
                                           "linf_ball"));

TEST(Conformance, ProjectEllipsoid) { EXPECT_TRUE(Conforms("project_ellipsoid", {}, Covariant({"x", "a"}))); }
TEST(Conformance, ProjectEllipsoidSurface) {
  EXPECT_TRUE(Conforms("project_ellipsoid", {{"surface", "true"}}, Covariant({"x", "a"})));
}
// A non-convex curve with the generic engine as its only solver: answers are local minima (not_certified).
TEST(Conformance, ProjectSuperellipse) {
  ConformanceOptions o = Covariant({"x", "a"});
  o.min_comparisons = 0;
  EXPECT_TRUE(Conforms("project_superellipse", {}, o));
}

// ---- surface fits (issue 12): specialised paths against their declarative forms -----------------------------------
// fit_plane: the normal does not scale with the points, so no covariant sweep; the objective and the constraint
// are scaled.
class FitPlane : public ::testing::TestWithParam<const char*> {};
TEST_P(FitPlane, Conforms) {
  ConformanceOptions o;
  // The robust penalties' generic answers are local minima (flagged not_certified): nothing to compare.
  if (std::string(GetParam()) != "quadratic") o.min_comparisons = 0;
  EXPECT_TRUE(Conforms("fit_plane", {{"penalty", GetParam()}}, o));
}
INSTANTIATE_TEST_SUITE_P(Penalties, FitPlane, ::testing::Values("quadratic", "pseudo_huber", "welsch"));

// fit_sphere's generic answers are flagged not_certified (a non-convex fit): nothing to compare problem by problem.
TEST(Conformance, FitSphere) {
  ConformanceOptions o = Covariant({"points"}, {"alpha"});
  o.min_comparisons = 0;
  EXPECT_TRUE(Conforms("fit_sphere", {}, o));
}
TEST(Conformance, FitEllipse) { EXPECT_TRUE(Conforms("fit_ellipse")); }

// ---- optimisation layers and equilibrium models ------------------------------------------------------------------------
// qp: its generic path is the QP's declarative form; z scales with q, h and b.
TEST(Conformance, Qp) { EXPECT_TRUE(Conforms("qp", {}, Covariant({"q", "h", "b"}))); }
// deq_tanh is a fixed point, not a minimiser: no generic path; gradients, threads and bad input apply.
TEST(Conformance, DeqTanh) { EXPECT_TRUE(Conforms("deq_tanh")); }

}  // namespace
}  // namespace ddn
