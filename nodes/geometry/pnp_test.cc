// Tests of the `pnp` node and its solver: the rotation (both branches, all derivative orders), exact recovery of
// noise-free poses, gradients against finite differences for every objective, the specialised forward and backward
// against the generic (declarative) ones, Ceres' LM reaching the same minimum, outliers, zero weights, bad input
// and the reference library's answers.
#include <gtest/gtest.h>

#include <ceres/jet.h>

#include <Eigen/Geometry>
#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/geometry/pnp_ceres.h"
#include "nodes/geometry/pnp_solver.h"
#include "nodes/geometry/rotation.h"
#include "tests/compare.h"
#include "tests/reference/fixtures.h"
#include "tests/reference/plain_differences.h"

namespace ddn {
namespace {

using geometry::PnPObjective;
using geometry::PnPProblem;

const char* kObjectives[] = {"reproj", "reproj_huber", "cosine"};

// A batch of problems with known poses: points in [−1, 1]³ (or z = 0) seen from 4–6 units away.
struct Scene {
  Tensor p2d, p3d, w, pose;
};
Scene MakeScene(int64_t b, int64_t n, double noise, bool planar, Rng* rng, double rotation = 0.7) {
  Scene s{Tensor({b, n, 2}), Tensor({b, n, 3}), Tensor({b, n}), Tensor({b, 6})};
  for (int64_t e = 0; e < b; ++e) {
    double* y = s.pose.problem(e);
    for (int k = 0; k < 3; ++k) y[k] = rotation * rng->Normal();
    y[3] = 0.3 * rng->Normal();
    y[4] = 0.3 * rng->Normal();
    y[5] = 5.0 + rng->Uniform(-1.0, 1.0);
    for (int64_t i = 0; i < n; ++i) {
      double* P = s.p3d.problem(e) + 3 * i;
      P[0] = rng->Uniform(-1.0, 1.0);
      P[1] = rng->Uniform(-1.0, 1.0);
      P[2] = planar ? 0.0 : rng->Uniform(-1.0, 1.0);
      double X[3];
      geometry::AngleAxisRotatePoint(y, P, X);
      for (int c = 0; c < 3; ++c) X[c] += y[3 + c];
      s.p2d.problem(e)[2 * i] = X[0] / X[2] + noise * rng->Normal();
      s.p2d.problem(e)[2 * i + 1] = X[1] / X[2] + noise * rng->Normal();
      s.w.problem(e)[i] = rng->Uniform(0.5, 1.5);
    }
  }
  return s;
}

// max(rotation angle between the poses in radians, largest translation difference): angle-axis vectors of the same
// rotation differ when the angle exceeds π.
double PoseError(const double* a, const double* b) {
  double Ra[9], Rb[9];
  geometry::AngleAxisToRotationMatrix(a, Ra);
  geometry::AngleAxisToRotationMatrix(b, Rb);
  double trace = 0;
  for (int i = 0; i < 9; ++i) trace += Ra[i] * Rb[i];
  // acos loses half the digits near 0: the angle from ‖Ra − Rb‖_F = 2√2 sin(θ/2) instead.
  double frob = 0;
  for (int i = 0; i < 9; ++i) frob += (Ra[i] - Rb[i]) * (Ra[i] - Rb[i]);
  double e = 2 * std::asin(std::min(1.0, std::sqrt(frob) / (2 * std::sqrt(2.0))));
  for (int k = 3; k < 6; ++k) e = std::max(e, std::abs(a[k] - b[k]));
  return e;
}

double MaxPoseError(const Tensor& a, const Tensor& b) {
  double e = 0;
  for (int64_t i = 0; i < a.dim(0); ++i) e = std::max(e, PoseError(a.problem(i), b.problem(i)));
  return e;
}

std::unique_ptr<Node> Pnp(const std::string& objective, double alpha = 1.0) {
  return MakeNode("pnp", {{"objective", objective}, {"alpha", FormatDouble(alpha)}});
}

TEST(Rotation, MatchesEigenAndIsSmoothAcrossTheSeriesBranch) {
  Rng rng(1);
  for (double scale : {3.0, 2.0, 0.5, 0.4999, 0.1, 1e-3, 1e-9, 0.0}) {
    for (int trial = 0; trial < 5; ++trial) {
      Eigen::Vector3d r(rng.Normal(), rng.Normal(), rng.Normal());
      r *= scale / std::max(r.norm(), 1e-300);
      double R[9];
      geometry::AngleAxisToRotationMatrix(r.data(), R);
      const Eigen::Matrix3d want =
          scale > 0 ? Eigen::AngleAxisd(r.norm(), r.normalized()).toRotationMatrix() : Eigen::Matrix3d::Identity();
      for (int i = 0; i < 9; ++i) EXPECT_NEAR(R[i], want(i / 3, i % 3), 2e-16 * 8) << scale;
      const Eigen::Vector3d p(rng.Normal(), rng.Normal(), rng.Normal());
      double out[3];
      geometry::AngleAxisRotatePoint(r.data(), p.data(), out);
      const Eigen::Vector3d rp = want * p;
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(out[c], rp[c], 1e-15 * 8);
    }
  }
  // Values, first and second derivatives of the coefficients a(θ²), b(θ²) just below and at the switch agree
  // (both branches are exact): a nested Jet in θ² on either side.
  using J1 = ceres::Jet<double, 1>;
  using J2 = ceres::Jet<J1, 1>;
  auto coefficients = [](double t2) {
    const J2 x(J1(t2, 0), 0);
    J2 a, b;
    geometry::RodriguesCoefficients(x, &a, &b);
    return std::array<double, 6>{a.a.a, a.v[0].a, a.v[0].v[0], b.a.a, b.v[0].a, b.v[0].v[0]};
  };
  const double at = geometry::kRodriguesSeriesBelow;
  const auto below = coefficients(at * (1 - 1e-15)), above = coefficients(at);
  for (int k = 0; k < 6; ++k) EXPECT_NEAR(below[k], above[k], 1e-13 * std::max(1.0, std::abs(above[k]))) << k;
}

TEST(Pnp, IsRegisteredWithTheDesignedSpec) {
  const NodeSpec& spec = GetNodeSpec("pnp");
  ASSERT_EQ(spec.inputs.size(), 4u);
  EXPECT_EQ(spec.inputs[0].name, "p2d");
  EXPECT_EQ(spec.inputs[0].dims, (std::vector<std::string>{"N", "2"}));
  EXPECT_EQ(spec.inputs[1].name, "p3d");
  EXPECT_EQ(spec.inputs[2].name, "w");
  EXPECT_TRUE(spec.inputs[2].optional);
  EXPECT_EQ(spec.inputs[3].name, "K");
  EXPECT_TRUE(spec.inputs[3].optional);
  EXPECT_FALSE(spec.inputs[3].differentiable);
  ASSERT_EQ(spec.outputs.size(), 1u);
  EXPECT_EQ(spec.outputs[0].name, "pose");
}

// Noise-free correspondences: every objective's minimum is the true pose (f = 0), reached to rounding, from
// EPnP's start, for general and planar scenes.
TEST(Pnp, RecoversNoiseFreePosesExactly) {
  Rng rng(2);
  for (const char* objective : kObjectives) {
    for (bool planar : {false, true}) {
      for (int64_t n : {4, 6, 30}) {
        const Scene s = MakeScene(4, n, 0.0, planar, &rng);
        const auto node = Pnp(objective);
        const ForwardResult r = Forward(*node, {{"p2d", s.p2d}, {"p3d", s.p3d}, {"w", s.w}});
        EXPECT_LT(MaxPoseError(r.outputs.at("pose"), s.pose), 1e-9) << objective << " planar " << planar << " n " << n;
        // The rotation is the representative with angle ≤ π.
        for (int64_t e = 0; e < 4; ++e) {
          const double* y = r.outputs.at("pose").problem(e);
          EXPECT_LE(std::sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]), 3.14159265358979323846 + 1e-15);
        }
        for (const auto& st : r.status) EXPECT_LT(st.residual, 1e-12) << objective;
      }
    }
  }
}

// With noise, in pixels (K given): the refinement reaches an optimality residual near machine precision, and the
// gradient of f there is zero to rounding.
TEST(Pnp, RefinementReachesMachinePrecision) {
  Rng rng(3);
  const Scene s = MakeScene(5, 40, 0.01, false, &rng);
  Tensor p2d = s.p2d, K({5, 4});
  for (int64_t e = 0; e < 5; ++e) {
    const double k[4] = {520.0, 500.0, 330.0, 250.0};
    std::copy(k, k + 4, K.problem(e));
    for (int64_t i = 0; i < 40; ++i) {
      p2d.problem(e)[2 * i] = k[0] * p2d.problem(e)[2 * i] + k[2];
      p2d.problem(e)[2 * i + 1] = k[1] * p2d.problem(e)[2 * i + 1] + k[3];
    }
  }
  for (const char* objective : kObjectives) {
    const auto node = Pnp(objective, 3.0);
    const ForwardResult r = Forward(*node, {{"p2d", p2d}, {"p3d", s.p3d}, {"w", s.w}, {"K", K}});
    for (int64_t e = 0; e < 5; ++e) {
      EXPECT_LT(r.status[e].residual, 1e-13) << objective;
      PnPProblem p;
      p.n = 40;
      p.p2d = p2d.problem(e);
      p.p3d = s.p3d.problem(e);
      p.w = s.w.problem(e);
      p.K = K.problem(e);
      p.objective = geometry::ParsePnPObjective(objective);
      p.alpha = 3.0;
      double g[6], scale = 0;
      geometry::PnPObjectiveValue(p, r.outputs.at("pose").problem(e), g, nullptr, &scale);
      for (double gk : g) EXPECT_LT(std::abs(gk), 1e-13 * scale) << objective;
      // And the pose is close to the truth (noise of 0.01 normalised over 40 points).
      EXPECT_LT(PoseError(r.outputs.at("pose").problem(e), s.pose.problem(e)), 0.2);
    }
  }
}

// One test per objective (each a few seconds on an idle core). reproj_huber with α = 0.02 puts the outlier case's
// outlier in Huber's linear zone; α = 1, the default, is checked by `ddn check pnp --param objective=reproj_huber`
// in the CLI tests.
void ExpectGradientsMatch(const std::string& objective, double alpha) {
  const auto node = Pnp(objective, alpha);
  const CheckReport report = CheckGradients(*node);
  EXPECT_TRUE(report.passed) << objective << " alpha " << alpha << "\n" << report.ToString();
}
TEST(Pnp, GradientsMatchFiniteDifferencesReproj) {
  ExpectGradientsMatch("reproj", 1.0);
}
TEST(Pnp, GradientsMatchFiniteDifferencesReprojHuber) {
  ExpectGradientsMatch("reproj_huber", 0.02);
}
TEST(Pnp, GradientsMatchFiniteDifferencesCosine) {
  ExpectGradientsMatch("cosine", 1.0);
}

// The specialised forward (EPnP + RANSAC + LM) against the generic one (Ceres L-BFGS + Newton polish from the same
// initialisation) and the closed-form backward against the generic implicit backward (nested Jets on the
// declarative form): the latter checks pnp_solver.cc's hand-written derivatives of φ against automatic ones.
// PyTorch's gradcheck (one step h = 1e-6, no extrapolation) at the check cases of every objective: it needs the
// forward exact to rounding, which the Newton polish with the extended-precision gradient gives (without it the
// outlier cases' poses are blurred by ~1e-12 and the differences miss by up to 1e-4 relative).
TEST(Pnp, ForwardIsSmoothEnoughForPlainCentralDifferences) {
  for (const char* objective : kObjectives) {
    for (uint64_t seed : {1u, 2u}) {
      const auto node = MakeNode("pnp", {{"objective", objective}});
      EXPECT_LE(testing::ExpectPlainDifferencesMatch(*node, seed), 1.0) << objective << " seed " << seed;
    }
  }
}

TEST(Pnp, SpecialisedPathsMatchTheGenericEngine) {
  RunOptions generic;
  generic.generic = true;
  for (const char* objective : kObjectives) {
    const auto node = Pnp(objective, std::string(objective) == "reproj_huber" ? 0.05 : 1.0);
    for (const CheckCase& c : node->CheckCases(4)) {
      ForwardResult a = Forward(*node, c.inputs);
      ForwardResult g = Forward(*node, c.inputs, generic);
      EXPECT_LT(MaxAbsDiff(a.outputs["pose"], g.outputs["pose"]), 1e-8) << objective << " " << c.name;
      Rng rng(5);
      Tensor v(a.outputs["pose"].shape());
      for (auto& e : v.values()) e = rng.Normal();
      const TensorMap da = Backward(*node, c.inputs, a.outputs, {{"pose", v}}, &a.status);
      const TensorMap dg = Backward(*node, c.inputs, a.outputs, {{"pose", v}}, &g.status, generic);
      for (const auto& [name, t] : da) {
        EXPECT_LT(MaxAbsDiff(t, dg.at(name)), 1e-9 * std::max(1.0, MaxAbs(t)))
            << objective << " " << c.name << " " << name;
      }
    }
  }
}

// Ceres' Levenberg–Marquardt on the same objective, from the same start, reaches the same minimum.
TEST(Pnp, CeresLevenbergMarquardtReachesTheSameMinimum) {
  Rng rng(6);
  const Scene s = MakeScene(4, 25, 0.01, false, &rng);
  for (const char* objective : kObjectives) {
    for (int64_t e = 0; e < 4; ++e) {
      PnPProblem p;
      p.n = 25;
      p.p2d = s.p2d.problem(e);
      p.p3d = s.p3d.problem(e);
      p.w = s.w.problem(e);
      p.objective = geometry::ParsePnPObjective(objective);
      p.alpha = 0.01;
      geometry::PnPOptions options;
      double start[6], ours[6], theirs[6];
      geometry::InitialPose(p, options, start);
      std::copy(start, start + 6, ours);
      std::copy(start, start + 6, theirs);
      const geometry::RefineResult mine = geometry::RefinePose(p, options, ours);
      const geometry::CeresRefineResult ceres_result = geometry::RefinePoseCeres(p, theirs);
      EXPECT_LT(PoseError(ours, theirs), 1e-7) << objective;
      EXPECT_NEAR(mine.f, ceres_result.final_cost, 1e-12 * std::max(1.0, mine.f)) << objective;
    }
  }
}

// Gross outliers (30 % of the points displaced by 0.1–0.5 normalised units): the robust objective with a small α
// stays near the truth, where the plain reprojection error does not.
TEST(Pnp, RobustObjectiveResistsOutliers) {
  Rng rng(7);
  Scene s = MakeScene(6, 40, 0.002, false, &rng);
  for (int64_t e = 0; e < 6; ++e) {
    for (int64_t i = 0; i < 12; ++i) {
      const double d = rng.Uniform(0.1, 0.5), a = rng.Uniform(0.0, 6.283185307179586);
      s.p2d.problem(e)[2 * i] += d * std::cos(a);
      s.p2d.problem(e)[2 * i + 1] += d * std::sin(a);
    }
  }
  const TensorMap in{{"p2d", s.p2d}, {"p3d", s.p3d}};
  const ForwardResult robust = Forward(*Pnp("reproj_huber", 0.005), in);
  const ForwardResult plain = Forward(*Pnp("reproj"), in);
  const double robust_err = MaxPoseError(robust.outputs.at("pose"), s.pose);
  const double plain_err = MaxPoseError(plain.outputs.at("pose"), s.pose);
  EXPECT_LT(robust_err, 0.05);
  EXPECT_GT(plain_err, 2 * robust_err);
}

// A zero weight removes a correspondence from the forward problem; dL/dw_i there is the one-sided derivative
// (w_i = 0 is the boundary of w ≥ 0), checked against a second-order one-sided difference.
TEST(Pnp, ZeroWeights) {
  Rng rng(8);
  Scene s = MakeScene(2, 12, 0.01, false, &rng);
  for (int64_t e = 0; e < 2; ++e) s.w.problem(e)[3] = 0.0;
  const auto node = Pnp("reproj");
  const TensorMap in{{"p2d", s.p2d}, {"p3d", s.p3d}, {"w", s.w}};
  ForwardResult r = Forward(*node, in);
  // Moving the zero-weight point changes nothing.
  TensorMap moved = in;
  moved["p2d"].problem(0)[6] += 0.3;
  EXPECT_EQ(MaxAbsDiff(Forward(*node, moved).outputs.at("pose"), r.outputs.at("pose")), 0.0);
  Tensor v({2, 6});
  for (auto& e : v.values()) e = rng.Normal();
  const TensorMap g = Backward(*node, in, r.outputs, {{"pose", v}}, &r.status);
  for (int64_t e = 0; e < 2; ++e) {
    EXPECT_EQ(g.at("p2d").problem(e)[6], 0.0);
    EXPECT_EQ(g.at("p3d").problem(e)[9], 0.0);
  }
  auto phi = [&](double w3) {
    TensorMap x = in;
    x["w"].problem(0)[3] = w3;
    x["w"].problem(1)[3] = w3;
    const ForwardResult rr = Forward(*node, x);
    double out = 0;
    for (int64_t k = 0; k < 6; ++k) out += v.problem(0)[k] * rr.outputs.at("pose").problem(0)[k];
    return out;
  };
  const double h = 1e-5;
  const double fd = (-3 * phi(0.0) + 4 * phi(h) - phi(2 * h)) / (2 * h);
  EXPECT_NEAR(g.at("w").problem(0)[3], fd, 1e-7 * std::max(1.0, std::abs(fd)));
  EXPECT_NE(g.at("w").problem(0)[3], 0.0);
}

TEST(Pnp, BadInputIsRefused) {
  Rng rng(9);
  const Scene s = MakeScene(1, 6, 0.0, false, &rng);
  const auto node = Pnp("reproj");
  auto message = [&](const TensorMap& in) -> std::string {
    try {
      Forward(*node, in);
    } catch (const InvalidInput& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message({{"p2d", Tensor({1, 3, 2})}, {"p3d", Tensor({1, 3, 3})}}).find("at least 4 correspondences"),
            std::string::npos);
  Tensor w = s.w;
  w[2] = -1;
  EXPECT_NE(message({{"p2d", s.p2d}, {"p3d", s.p3d}, {"w", w}}).find("'w' must be >= 0"), std::string::npos);
  w = s.w;
  w[0] = w[1] = w[2] = 0;
  EXPECT_NE(message({{"p2d", s.p2d}, {"p3d", s.p3d}, {"w", w}}).find("positive weight"), std::string::npos);
  Tensor line = s.p3d;
  for (int64_t i = 0; i < 6; ++i) {
    line[3 * i] = static_cast<double>(i);
    line[3 * i + 1] = 2.0 * i;
    line[3 * i + 2] = 1.0 - i;
  }
  EXPECT_NE(message({{"p2d", s.p2d}, {"p3d", line}}).find("collinear"), std::string::npos);
  EXPECT_NE(message({{"p2d", s.p2d}, {"p3d", s.p3d}, {"K", Tensor({1, 4}, {0, 500, 320, 240})}}).find("fx, fy > 0"),
            std::string::npos);
  EXPECT_THROW(MakeNode("pnp", {{"objective", "l1"}}), InvalidInput);
  EXPECT_THROW(MakeNode("pnp", {{"alpha", "0"}}), InvalidInput);
  EXPECT_THROW(MakeNode("pnp", {{"ransac_threshold", "-1"}}), InvalidInput);
}

// The reference library's PnP node (EPnP RANSAC from OpenCV, then L-BFGS on the batch) on the data of its own
// test (tests/testPnPNode.py). Its L-BFGS stops short of the minimum (it runs on the sum over the batch), so agree
// to its accuracy (measured: poses to 1.5e-7, gradients to 4e-7 relative): the pose to 1e-6, gradients to 1e-5
// relative; our objective must be no higher than its.
TEST(Pnp, AgreesWithTheReferenceLibrary) {
  const auto cases = testing::LoadCases(DDN_PNP_CASES, "pnp");
  ASSERT_FALSE(cases.empty()) << DDN_PNP_CASES;
  for (const auto& c : cases) {
    const auto params = testing::CaseParams(c);
    const auto node = MakeNode("pnp", params);
    const TensorMap in = testing::TensorsFromJson(c["inputs"]);
    ForwardResult r = Forward(*node, in);
    const Tensor want = testing::TensorFromJson(c["want"]["outputs"]["pose"]);
    EXPECT_LT(MaxAbsDiff(r.outputs.at("pose"), want), 1e-6) << c["label"];
    const Tensor f_ref = testing::TensorFromJson(c["f_ref"]);
    for (int64_t e = 0; e < want.dim(0); ++e) {
      PnPProblem p;
      p.n = in.at("p2d").dim(1);
      p.p2d = in.at("p2d").problem(e);
      p.p3d = in.at("p3d").problem(e);
      p.w = in.at("w").problem(e);
      p.objective = geometry::ParsePnPObjective(params.at("objective"));
      p.alpha = std::stod(params.at("alpha"));
      EXPECT_LE(geometry::PnPObjectiveValue(p, r.outputs.at("pose").problem(e)), f_ref[e] * (1 + 1e-12)) << c["label"];
    }
    const TensorMap g = Backward(*node, in, r.outputs, testing::TensorsFromJson(c["grad_outputs"]), &r.status);
    for (const auto& [name, t] : testing::TensorsFromJson(c["want"]["grad_inputs"])) {
      EXPECT_LT(MaxAbsDiff(g.at(name), t), 1e-5 * std::max(1.0, MaxAbs(t))) << c["label"] << " " << name;
    }
  }
}

}  // namespace
}  // namespace ddn
