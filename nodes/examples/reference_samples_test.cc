// Tests of the reference library's sample nodes and tridiag_solve (reference_samples.cc): the reference's
// closed-form solutions and analytic gradients (sample_nodes.py), finite differences (ddn check), tridiag_solve's
// Thomas path against the generic one and a dense solve, bad input, and the reference's answers.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "tests/compare.h"
#include "tests/reference/fixtures.h"

namespace ddn {
namespace {

const char* kSamples[] = {"unconstrained_polynomial",
                          "linear_on_unit_circle",
                          "constant_linear_on_circle",
                          "linear_on_circle",
                          "quadratic_on_sphere",
                          "quadratic_on_ball",
                          "tridiag_solve"};

TEST(ReferenceSamples, GradientsMatchFiniteDifferences) {
  for (const char* name : kSamples) {
    const auto node = MakeNode(name);
    const CheckReport report = CheckGradients(*node);
    EXPECT_TRUE(report.passed) << name << "\n" << report.ToString();
  }
}

// The closed forms of sample_nodes.py: solutions and the analytic Jacobians its gradient() methods implement.
TEST(ReferenceSamples, MatchTheReferenceClosedForms) {
  // unconstrained_polynomial: dy/dx = −(y³ + 3x y²) / (3x y² + 3x² y − 6).
  {
    const auto node = MakeNode("unconstrained_polynomial");
    const Tensor x({3}, {0.25, 1.0, 3.0});
    ForwardResult r = Forward(*node, {{"x", x}});
    const TensorMap g = Backward(*node, {{"x", x}}, r.outputs, {{"y", Tensor({3}, 1.0)}}, &r.status);
    for (int i = 0; i < 3; ++i) {
      const double xi = x[i], delta = std::sqrt(9 * std::pow(xi, 4) + 96 * xi);
      const double y = (-3 * xi * xi - delta) / (4 * xi);  // the lower stationary point is the minimum for x > 0
      EXPECT_NEAR(r.outputs["y"][i], y, 1e-12 * std::max(1.0, std::abs(y)));
      const double dy = -(y * y * y + 3 * xi * y * y) / (3 * xi * y * y + 3 * xi * xi * y - 6);
      EXPECT_NEAR(g.at("x")[i], dy, 1e-9 * std::max(1.0, std::abs(dy)));
    }
  }
  Rng rng(1);
  // linear_on_unit_circle: y = −(1, x)/√(1 + x²), Dy = (x, −1)/(1 + x²)^{3/2}.
  {
    const auto node = MakeNode("linear_on_unit_circle");
    const Tensor x({3}, {0.0, 1.7, -0.4});
    ForwardResult r = Forward(*node, {{"x", x}});
    const TensorMap g = Backward(*node, {{"x", x}}, r.outputs, {{"y", Tensor({3, 2}, 1.0)}}, &r.status);
    for (int i = 0; i < 3; ++i) {
      const double t = std::sqrt(1 + x[i] * x[i]);
      EXPECT_NEAR(r.outputs["y"][2 * i], -1 / t, 1e-12);
      EXPECT_NEAR(r.outputs["y"][2 * i + 1], -x[i] / t, 1e-12);
      EXPECT_NEAR(g.at("x")[i], (x[i] - 1) / (t * t * t), 1e-10);
    }
  }
  // constant_linear_on_circle: y = −|x|(1, 1)/√2, Dy = −sign(x)(1, 1)/√2.
  {
    const auto node = MakeNode("constant_linear_on_circle");
    const Tensor x({2}, {0.8, -1.5});
    ForwardResult r = Forward(*node, {{"x", x}});
    const TensorMap g =
        Backward(*node, {{"x", x}}, r.outputs, {{"y", Tensor({2, 2}, {1.0, 0.0, 0.3, -2.0})}}, &r.status);
    const double s = 1 / std::sqrt(2.0);
    EXPECT_NEAR(r.outputs["y"][0], -0.8 * s, 1e-12);
    EXPECT_NEAR(r.outputs["y"][3], -1.5 * s, 1e-12);
    EXPECT_NEAR(g.at("x")[0], -s * 1.0, 1e-10);
    EXPECT_NEAR(g.at("x")[1], s * (0.3 - 2.0), 1e-10);
  }
  // linear_on_circle: y = −|x₂|(1, x₁)/√(1 + x₁²); Dy rows from the reference's gradient().
  {
    const auto node = MakeNode("linear_on_circle");
    const Tensor x({2, 2}, {0.4, 1.3, -2.0, -0.6});
    ForwardResult r = Forward(*node, {{"x", x}});
    const Tensor v({2, 2}, {0.7, -0.2, 1.1, 0.5});
    const TensorMap g = Backward(*node, {{"x", x}}, r.outputs, {{"y", v}}, &r.status);
    for (int i = 0; i < 2; ++i) {
      const double x1 = x[2 * i], x2 = x[2 * i + 1], t = std::sqrt(1 + x1 * x1);
      EXPECT_NEAR(r.outputs["y"][2 * i], -std::abs(x2) / t, 1e-12);
      EXPECT_NEAR(r.outputs["y"][2 * i + 1], -std::abs(x2) * x1 / t, 1e-12);
      // ∂y/∂x₁ = |x₂|(x₁, −1)/t³, ∂y/∂x₂ = −sign(x₂)(1, x₁)/t.
      const double a0 = std::abs(x2) * x1 / (t * t * t), a1 = -std::abs(x2) / (t * t * t);
      const double b0 = -(x2 > 0 ? 1 : -1) / t, b1 = -(x2 > 0 ? 1 : -1) * x1 / t;
      EXPECT_NEAR(g.at("x")[2 * i], v[2 * i] * a0 + v[2 * i + 1] * a1, 1e-10);
      EXPECT_NEAR(g.at("x")[2 * i + 1], v[2 * i] * b0 + v[2 * i + 1] * b1, 1e-10);
    }
  }
  // quadratic_on_sphere and quadratic_on_ball: y = x/‖x‖ (outside the ball), Dy = (‖x‖² I − xxᵀ)/‖x‖³; inside: I.
  for (const char* name : {"quadratic_on_sphere", "quadratic_on_ball"}) {
    const auto node = MakeNode(name);
    Tensor x({3, 4});
    for (auto& e : x.values()) e = rng.Normal();
    if (std::string(name) == "quadratic_on_ball")
      for (int k = 0; k < 4; ++k) x[4 + k] *= 0.1;  // problem 1 inside
    Tensor v({3, 4});
    for (auto& e : v.values()) e = rng.Normal();
    ForwardResult r = Forward(*node, {{"x", x}});
    const TensorMap g = Backward(*node, {{"x", x}}, r.outputs, {{"y", v}}, &r.status);
    for (int i = 0; i < 3; ++i) {
      const Eigen::Map<const Eigen::Vector4d> xi(x.data() + 4 * i), vi(v.data() + 4 * i);
      const double n2 = xi.squaredNorm();
      const bool inside = std::string(name) == "quadratic_on_ball" && n2 <= 1;
      const Eigen::Vector4d y = inside ? Eigen::Vector4d(xi) : Eigen::Vector4d(xi / std::sqrt(n2));
      const Eigen::Matrix4d D =
          inside ? Eigen::Matrix4d::Identity()
                 : Eigen::Matrix4d((n2 * Eigen::Matrix4d::Identity() - xi * xi.transpose()) / std::pow(n2, 1.5));
      const Eigen::Vector4d want = D.transpose() * vi;
      for (int k = 0; k < 4; ++k) {
        EXPECT_NEAR(r.outputs["y"][4 * i + k], y[k], 1e-12) << name;
        EXPECT_NEAR(g.at("x")[4 * i + k], want[k], 1e-9) << name;
      }
    }
  }
}

// tridiag_solve: the Thomas algorithm against a dense LU solve and against the generic path (Ceres on
// ½‖Tx − d‖², implicit backward); a matrix on which Thomas breaks down (zero first pivot) is solved by the dense
// fallback; a singular one is a numerical failure.
TEST(ReferenceSamples, TridiagSolveThomasDenseAndGeneric) {
  const auto node = MakeNode("tridiag_solve");
  RunOptions generic;
  generic.generic = true;
  for (const CheckCase& c : node->CheckCases(2)) {
    ForwardResult a = Forward(*node, c.inputs);
    ForwardResult g = Forward(*node, c.inputs, generic);
    EXPECT_LT(MaxAbsDiff(a.outputs["x"], g.outputs["x"]), 1e-10) << c.name;
    for (const auto& st : a.status) EXPECT_LT(st.residual, 1e-15) << c.name;
    Rng rng(3);
    Tensor v(a.outputs["x"].shape());
    for (auto& e : v.values()) e = rng.Normal();
    const TensorMap da = Backward(*node, c.inputs, a.outputs, {{"x", v}}, &a.status);
    const TensorMap dg = Backward(*node, c.inputs, a.outputs, {{"x", v}}, &g.status, generic);
    for (const auto& [name, t] : da) EXPECT_LT(MaxAbsDiff(t, dg.at(name)), 1e-9 * std::max(1.0, MaxAbs(t))) << name;
  }
  // b_1 = 0: the first Thomas pivot is zero, but T = [[0, 1, 0], [1, 2, 1], [0, 1, 3]] is regular.
  const TensorMap in{{"b", Tensor({1, 3}, {0.0, 2.0, 3.0})},
                     {"a", Tensor({1, 2}, {1.0, 1.0})},
                     {"c", Tensor({1, 2}, {1.0, 1.0})},
                     {"d", Tensor({1, 3, 1}, {1.0, 2.0, 3.0})}};
  ForwardResult r = Forward(*node, in);
  Eigen::Matrix3d T;
  T << 0, 1, 0, 1, 2, 1, 0, 1, 3;
  const Eigen::Vector3d x = T.lu().solve(Eigen::Vector3d(1, 2, 3));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(r.outputs["x"][i], x[i], 1e-14);
  // Singular: rows 1 and 2 of [[1, 1], [1, 1]].
  EXPECT_THROW(Forward(*node, {{"b", Tensor({1, 2}, {1.0, 1.0})},
                               {"a", Tensor({1, 1}, {1.0})},
                               {"c", Tensor({1, 1}, {1.0})},
                               {"d", Tensor({1, 2, 1}, {1.0, 2.0})}}),
               NumericalFailure);
}

TEST(ReferenceSamples, BadInputIsRefused) {
  auto fails = [](const std::string& node, const TensorMap& in) {
    try {
      Forward(*MakeNode(node), in);
    } catch (const InvalidInput& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(fails("unconstrained_polynomial", {{"x", Tensor({1}, {-1.0})}}).find("must be > 0"), std::string::npos);
  EXPECT_NE(fails("constant_linear_on_circle", {{"x", Tensor({1}, {0.0})}}).find("is 0"), std::string::npos);
  EXPECT_NE(fails("linear_on_circle", {{"x", Tensor({1, 2}, {1.0, 0.0})}}).find("is 0"), std::string::npos);
  EXPECT_NE(fails("quadratic_on_sphere", {{"x", Tensor({1, 3})}}).find("is 0"), std::string::npos);
  EXPECT_NE(fails("tridiag_solve",
                  {{"b", Tensor({1, 3}, 2.0)}, {"a", Tensor({1, 3})}, {"c", Tensor({1, 3})}, {"d", Tensor({1, 3, 1})}})
                .find("N − 1"),
            std::string::npos);
}

// The reference's answers: sample_nodes.py's closed-form solve and analytic gradient, TriDiagSolveFcn ('thomas'),
// and GlobalPseudoHuberPool2d (L-BFGS to a gradient tolerance of 1e-5: agree to 1e-5 there) against
// pseudo_huber_mean.
TEST(ReferenceSamples, AgreeWithTheReferenceLibrary) {
  const auto cases = testing::LoadCases(DDN_SAMPLES_CASES);
  ASSERT_FALSE(cases.empty()) << DDN_SAMPLES_CASES;
  for (const auto& c : cases) {
    const std::string name = c["node"];
    const double tol = name == "pseudo_huber_mean" ? 1e-5 : 1e-10;
    const auto node = MakeNode(name, testing::CaseParams(c));
    const TensorMap in = testing::TensorsFromJson(c["inputs"]);
    ForwardResult r = Forward(*node, in);
    for (const auto& [out, t] : testing::TensorsFromJson(c["want"]["outputs"])) {
      EXPECT_LT(MaxAbsDiff(r.outputs.at(out), t), tol * std::max(1.0, MaxAbs(t))) << name << " " << c["label"];
    }
    const TensorMap g = Backward(*node, in, r.outputs, testing::TensorsFromJson(c["grad_outputs"]), &r.status);
    for (const auto& [input, t] : testing::TensorsFromJson(c["want"]["grad_inputs"])) {
      EXPECT_LT(MaxAbsDiff(g.at(input), t), tol * 10 * std::max(1.0, MaxAbs(t)))
          << name << " " << c["label"] << " " << input;
    }
  }
}

}  // namespace
}  // namespace ddn
