// Every built-in and example node through the conformance suite (ddn/conformance.h): gradients against finite
// differences on both paths, the specialised path against the generic engine, thread-count invariance, NaN/Inf
// refusal, and the generic engine's scale invariance (objective and constraints × 1e-8…1e8; scale-covariant
// inputs and parameters × 1e-6, 1e6).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "ddn/conformance.h"
#include "ddn/node.h"
#include "nodes/pooling/penalties.h"

namespace ddn {
namespace {

ConformanceOptions Covariant(std::vector<std::string> inputs, std::vector<std::string> params = {}) {
  ConformanceOptions o;
  o.covariant_inputs = std::move(inputs);
  o.covariant_params = std::move(params);
  return o;
}

// ---- the engine's example nodes ----------------------------------------------------------------------------------
TEST(Conformance, PseudoHuberMean) {
  EXPECT_TRUE(Conforms("pseudo_huber_mean", {}, Covariant({"x"}, {"alpha"})));
}
TEST(Conformance, SphereProjectionOnTheManifold) {
  EXPECT_TRUE(Conforms("sphere_projection", {{"manifold", "true"}}, Covariant({"x"}, {"radius"})));
}
TEST(Conformance, SphereProjectionByAugmentedLagrangian) {
  EXPECT_TRUE(Conforms("sphere_projection", {{"manifold", "false"}, {"radius", "0.7"}}, Covariant({"x"}, {"radius"})));
}
TEST(Conformance, PlaneProjection) {
  EXPECT_TRUE(Conforms("plane_projection", {}, Covariant({"x", "b"})));
}
TEST(Conformance, BallProjection) {
  EXPECT_TRUE(Conforms("ball_projection", {}, Covariant({"x"}, {"radius"})));
}
TEST(Conformance, BoxProjection) {
  EXPECT_TRUE(Conforms("box_projection", {{"lo", "-0.5"}, {"hi", "2"}}, Covariant({"x"}, {"lo", "hi"})));
}
TEST(Conformance, SumFit) {
  EXPECT_TRUE(Conforms("sum_fit", {}, Covariant({"x"})));
}

// ---- built-in nodes
// ---------------------------------------------------------------------------------------------------
class RobustPool : public ::testing::TestWithParam<std::string> {};
TEST_P(RobustPool, Conforms) {
  EXPECT_TRUE(Conforms("robust_pool", {{"penalty", GetParam()}}, Covariant({"x"}, {"alpha"})));
}
INSTANTIATE_TEST_SUITE_P(Penalties, RobustPool, ::testing::ValuesIn(pooling::PenaltyNames()));

class RobustVectorPool : public ::testing::TestWithParam<std::string> {};
TEST_P(RobustVectorPool, Conforms) {
  ConformanceOptions o = Covariant({"x"}, {"alpha"});
  const std::string penalty = GetParam();
  // The specialised vector solver certifies only the convex penalties; for the others every answer is flagged
  // not_certified, on both paths: there is nothing to compare problem by problem.
  if (penalty != "quadratic" && penalty != "pseudo_huber" && penalty != "huber") o.min_comparisons = 0;
  EXPECT_TRUE(Conforms("robust_vector_pool", {{"penalty", GetParam()}}, o));
}
INSTANTIATE_TEST_SUITE_P(Penalties, RobustVectorPool, ::testing::ValuesIn(pooling::PenaltyNames()));

class Project : public ::testing::TestWithParam<const char*> {};
TEST_P(Project, Conforms) {
  EXPECT_TRUE(Conforms("project", {{"shape", GetParam()}, {"radius", "0.8"}}, Covariant({"x", "radius"}, {"radius"})));
}
INSTANTIATE_TEST_SUITE_P(Shapes, Project,
                         ::testing::Values("simplex", "l1_sphere", "l1_ball", "l2_sphere", "l2_ball", "linf_sphere",
                                           "linf_ball"));

TEST(Conformance, ProjectEllipsoid) {
  EXPECT_TRUE(Conforms("project_ellipsoid", {}, Covariant({"x", "a"})));
}
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
TEST(Conformance, FitEllipse) {
  EXPECT_TRUE(Conforms("fit_ellipse"));
}

// ---- optimisation layers and equilibrium models
// ------------------------------------------------------------------------ qp: its generic path is the QP's declarative
// form; z scales with q, h and b.
TEST(Conformance, Qp) {
  EXPECT_TRUE(Conforms("qp", {}, Covariant({"q", "h", "b"})));
}
// deq_tanh is a fixed point, not a minimiser: no generic path; gradients, threads and bad input apply.
TEST(Conformance, DeqTanh) {
  EXPECT_TRUE(Conforms("deq_tanh"));
}

// ---- the reference library's sample nodes (nodes/examples/reference_samples.cc): the generic engine is their
// default path (identical answers), except tridiag_solve (Thomas' algorithm against its least-squares form) ----------
TEST(Conformance, UnconstrainedPolynomial) {
  EXPECT_TRUE(Conforms("unconstrained_polynomial"));
}
TEST(Conformance, LinearOnUnitCircle) {
  EXPECT_TRUE(Conforms("linear_on_unit_circle"));
}
// y = −|x|(1, 1)/√2 scales with the radius x.
TEST(Conformance, ConstantLinearOnCircle) {
  EXPECT_TRUE(Conforms("constant_linear_on_circle", {}, Covariant({"x"})));
}
// x = (slope, radius): only the radius scales y, and the suite scales whole inputs, so no covariant sweep.
TEST(Conformance, LinearOnCircle) {
  EXPECT_TRUE(Conforms("linear_on_circle"));
}
// The unit sphere and ball are fixed: y does not scale with x (quadratic_on_sphere's y = x/‖x‖ is invariant).
TEST(Conformance, QuadraticOnSphere) {
  EXPECT_TRUE(Conforms("quadratic_on_sphere"));
}
TEST(Conformance, QuadraticOnBall) {
  EXPECT_TRUE(Conforms("quadratic_on_ball"));
}
// x = T⁻¹d scales with the right-hand sides d.
TEST(Conformance, TridiagSolve) {
  EXPECT_TRUE(Conforms("tridiag_solve", {}, Covariant({"d"})));
}

// ---- linear algebra, geometry and alignment ----------------------------------------------------------------------
// least_squares: its generic path is the ridge problem's declarative form; (x, c) scale with the targets b.
TEST(Conformance, LeastSquares) {
  EXPECT_TRUE(Conforms("least_squares", {}, Covariant({"b"})));
}
TEST(Conformance, LeastSquaresWithoutBias) {
  EXPECT_TRUE(Conforms("least_squares", {{"bias", "false"}, {"beta", "0.1"}}, Covariant({"b"})));
}
// pnp's generic path is its declarative form (the robust pose objective); the pose is not scale-covariant as one
// output (the rotation does not scale with p3d, the translation does), so no covariant sweep.
TEST(Conformance, PnpReprojection) {
  EXPECT_TRUE(Conforms("pnp"));
}
// The regression nodes (the inner problems of the tabular bi-level problems).
TEST(Conformance, RidgeRegression) {
  EXPECT_TRUE(Conforms("ridge_regression"));
}
TEST(Conformance, LogisticRegression) {
  EXPECT_TRUE(Conforms("logistic_regression"));
}
TEST(Conformance, MultinomialLogisticRegression) {
  EXPECT_TRUE(Conforms("multinomial_logistic_regression"));
}
TEST(Conformance, RobustRegression) {
  EXPECT_TRUE(Conforms("robust_regression", {{"mu", "0.1"}}));
}
// tv_denoise (the inner problem of the bi-level denoising problem): u does not scale with g (the weight λ would have
// to scale too), so no covariant sweep.
TEST(Conformance, TvDenoise) {
  EXPECT_TRUE(Conforms("tv_denoise"));
}

TEST(Conformance, PnpReprojectionHuber) {
  EXPECT_TRUE(Conforms("pnp", {{"objective", "reproj_huber"}}));
}
TEST(Conformance, PnpCosine) {
  EXPECT_TRUE(Conforms("pnp", {{"objective", "cosine"}}));
}
// eigen, optimal_transport and graph_match have no declarative form for the generic engine (an eigenproblem's
// answer is a basis, not one minimiser; Sinkhorn's and the matching's fixed points are differentiated in closed
// form): the suite checks their gradients, threads and bad input, and the agreement and scale clauses do not apply.
TEST(Conformance, Eigen) {
  EXPECT_TRUE(Conforms("eigen"));
}
TEST(Conformance, EigenTopK) {
  EXPECT_TRUE(Conforms("eigen", {{"top_k", "2"}}));
}
TEST(Conformance, OptimalTransport) {
  EXPECT_TRUE(Conforms("optimal_transport"));
}
TEST(Conformance, OptimalTransportSharp) {
  EXPECT_TRUE(Conforms("optimal_transport", {{"gamma", "10"}}));
}
TEST(Conformance, GraphMatch) {
  EXPECT_TRUE(Conforms("graph_match"));
}

// Every node linked into this program has a conformance test above: a node added without one fails here, by name.
TEST(Conformance, EveryRegisteredNodeIsCovered) {
  const std::set<std::string> covered = {"ball_projection",
                                         "box_projection",
                                         "constant_linear_on_circle",
                                         "deq_tanh",
                                         "eigen",
                                         "fit_ellipse",
                                         "fit_plane",
                                         "fit_sphere",
                                         "graph_match",
                                         "least_squares",
                                         "linear_on_circle",
                                         "linear_on_unit_circle",
                                         "logistic_regression",
                                         "multinomial_logistic_regression",
                                         "optimal_transport",
                                         "plane_projection",
                                         "pnp",
                                         "project",
                                         "project_ellipsoid",
                                         "project_superellipse",
                                         "pseudo_huber_mean",
                                         "qp",
                                         "quadratic_on_ball",
                                         "quadratic_on_sphere",
                                         "ridge_regression",
                                         "robust_pool",
                                         "robust_regression",
                                         "robust_vector_pool",
                                         "sphere_projection",
                                         "sum_fit",
                                         "tridiag_solve",
                                         "tv_denoise",
                                         "unconstrained_polynomial"};
  for (const std::string& name : NodeNames()) {
    EXPECT_TRUE(covered.count(name)) << "node '" << name << "' is registered but has no conformance test "
                                     << "(tests/conformance/conformance_test.cc)";
  }
}

}  // namespace
}  // namespace ddn
