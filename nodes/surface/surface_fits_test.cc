// Solver-level tests of surface_fits.h: the answers against independent computations (Eigen's QR eigensolver, known
// shapes), the documented flags, sign and tie rules, residuals at rounding level, and bad input.
#include "nodes/surface/surface_fits.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "ddn/error.h"
#include "ddn/random.h"
#include "ddn/status.h"

namespace ddn::surface {
namespace {

std::vector<double> Flatten(const std::vector<Eigen::Vector3d>& pts) {
  std::vector<double> v;
  for (const auto& p : pts)
    for (int k = 0; k < 3; ++k) v.push_back(p[k]);
  return v;
}

PlaneFitProblem Plane(const std::vector<double>& pts, int64_t d, const std::vector<double>* w = nullptr,
                      PenaltyKind kind = PenaltyKind::kQuadratic, double alpha = 1.0) {
  PlaneFitProblem q;
  q.cloud.points = pts.data();
  q.cloud.weights = w ? w->data() : nullptr;
  q.cloud.n = static_cast<int64_t>(pts.size()) / d;
  q.cloud.d = d;
  q.kind = kind;
  q.alpha = alpha;
  return q;
}

TEST(PlaneFit, QuadraticIsTheSmallestEigenvectorOfTheWeightedScatter) {
  Rng rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t d = 2 + trial % 4, n = 6 + trial;
    std::vector<double> pts(n * d), w(n);
    for (auto& x : pts) x = rng.Normal();
    for (int64_t i = 0; i < n; ++i) {
      w[i] = 0.1 + std::abs(rng.Normal());
      pts[i * d + d - 1] *= 0.1;  // flatten along the last axis
    }
    const PlaneFitProblem q = Plane(pts, d, &w);
    std::vector<double> nrm(d);
    double offset = 0;
    ProblemStatus s;
    SolvePlaneFit(q, nrm.data(), &offset, &s);
    EXPECT_LE(s.residual, 1e-14) << "d=" << d;
    EXPECT_EQ(s.flags, 0u) << s.note;
    // Independent: centroid, scatter, QR eigensolver.
    Eigen::VectorXd c = Eigen::VectorXd::Zero(d);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      c += w[i] * Eigen::Map<const Eigen::VectorXd>(&pts[i * d], d);
      total += w[i];
    }
    c /= total;
    Eigen::MatrixXd S = Eigen::MatrixXd::Zero(d, d);
    for (int64_t i = 0; i < n; ++i) {
      const Eigen::VectorXd p = Eigen::Map<const Eigen::VectorXd>(&pts[i * d], d) - c;
      S += w[i] * p * p.transpose();
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S);
    Eigen::VectorXd want = es.eigenvectors().col(0);
    if (want[d - 1] < 0) want = -want;
    for (int64_t k = 0; k < d; ++k) EXPECT_NEAR(nrm[k], want[k], 1e-12);
    EXPECT_NEAR(offset, want.dot(c), 1e-12);
    EXPECT_GT(nrm[d - 1], 0);
    EXPECT_NEAR(PlaneFitObjective(q, nrm.data(), offset), 0.5 * es.eigenvalues()[0], 1e-12);
  }
}

TEST(PlaneFit, RepeatedSmallestEigenvalueIsNonUniqueAndFinite) {
  // Points on a line in 3-D: every plane containing the line fits exactly.
  std::vector<Eigen::Vector3d> line;
  for (int i = 0; i < 6; ++i) line.push_back(Eigen::Vector3d(1, 2, 3) + i * Eigen::Vector3d(1, -1, 0.5));
  // An isotropic blob: the eight corners of a cube.
  std::vector<Eigen::Vector3d> cube;
  for (int i = 0; i < 8; ++i) cube.push_back(Eigen::Vector3d(i & 1, (i >> 1) & 1, (i >> 2) & 1));
  for (const auto* pts : {&line, &cube}) {
    const std::vector<double> flat = Flatten(*pts);
    double nrm[3], offset;
    ProblemStatus s;
    SolvePlaneFit(Plane(flat, 3), nrm, &offset, &s);
    EXPECT_TRUE(s.flags & kNonUnique) << s.note;
    EXPECT_NEAR(Eigen::Vector3d(nrm[0], nrm[1], nrm[2]).norm(), 1.0, 1e-14);
    EXPECT_TRUE(std::isfinite(offset));
    // The backward uses the minimum-norm solution and says so.
    std::vector<double> dp(flat.size());
    const double v[3] = {0.3, -0.2, 0.5};
    PlaneFitBackward(Plane(flat, 3), nrm, offset, v, 0.7, dp.data(), nullptr, &s);
    EXPECT_TRUE(s.flags & kNonRegular);
    for (double g : dp) EXPECT_TRUE(std::isfinite(g));
  }
  // For the line, the normal is orthogonal to the line's direction.
  double nrm[3], offset;
  ProblemStatus s;
  const std::vector<double> flat = Flatten(line);
  SolvePlaneFit(Plane(flat, 3), nrm, &offset, &s);
  EXPECT_NEAR(Eigen::Vector3d(nrm[0], nrm[1], nrm[2]).dot(Eigen::Vector3d(1, -1, 0.5)), 0, 1e-12);
}

TEST(PlaneFit, SignAndTieRules) {
  // The plane y = 2 (normal ±e_y, last coordinate 0): oriented by the y coordinate, flagged.
  std::vector<Eigen::Vector3d> pts;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) pts.push_back(Eigen::Vector3d(i, 2.0, j * 0.7 - i * 0.2));
  std::vector<double> flat = Flatten(pts);
  double nrm[3], offset;
  ProblemStatus s;
  SolvePlaneFit(Plane(flat, 3), nrm, &offset, &s);
  EXPECT_NEAR(nrm[1], 1.0, 1e-14);
  EXPECT_NEAR(offset, 2.0, 1e-13);
  EXPECT_LE(std::abs(nrm[2]), 1e-12);
  EXPECT_TRUE(s.flags & kNonSmooth) << s.note;
  // The plane x = −1 (normal ±e_x): both later coordinates tie, x decides.
  for (auto& p : pts) p = Eigen::Vector3d(-1.0, p[0], p[2]);
  flat = Flatten(pts);
  s = ProblemStatus();
  SolvePlaneFit(Plane(flat, 3), nrm, &offset, &s);
  EXPECT_NEAR(nrm[0], 1.0, 1e-14);
  EXPECT_NEAR(offset, -1.0, 1e-13);
  EXPECT_TRUE(s.flags & kNonSmooth);
  // A tilted plane z = 0.3x − 5 has n_z ≠ 0: no tie, n_z > 0 decides, offset follows.
  for (auto& p : pts) p = Eigen::Vector3d(p[1], p[2], 0.3 * p[1] - 5.0);
  flat = Flatten(pts);
  s = ProblemStatus();
  SolvePlaneFit(Plane(flat, 3), nrm, &offset, &s);
  EXPECT_GT(nrm[2], 0.5);
  EXPECT_EQ(s.flags, 0u) << s.note;
  EXPECT_NEAR(offset, -5.0 * nrm[2], 1e-12);
  // OrientPlane on its own: within the tolerance the earlier coordinate decides.
  double n2[3] = {0.0, -1.0, 1e-13}, off = 3;
  EXPECT_EQ(OrientPlane(n2, &off, 3), 1);
  EXPECT_EQ(n2[1], 1.0);
  EXPECT_EQ(off, -3.0);
  double n3[3] = {0.0, 1.0, -1e-11};
  off = 3;
  EXPECT_EQ(OrientPlane(n3, &off, 3), 2);
  EXPECT_EQ(n3[1], -1.0);
}

TEST(PlaneFit, RobustPenaltiesIgnoreOutliersAndReachALocalMinimum) {
  Rng rng(5);
  const Eigen::Vector3d truth = Eigen::Vector3d(0.2, -0.3, 1.0).normalized();
  std::vector<double> pts;
  for (int i = 0; i < 40; ++i) {
    Eigen::Vector3d p(3 * rng.Normal(), 3 * rng.Normal(), 3 * rng.Normal());
    p -= truth.dot(p) * truth;  // in-plane spread 3, then 20 % outliers 2–3 off the plane on one side
    p += (i % 5 == 0 ? 2.5 + 0.3 * rng.Normal() : 0.02 * rng.Normal()) * truth;
    for (int k = 0; k < 3; ++k) pts.push_back(p[k]);
  }
  double ls[3], ls_off;
  ProblemStatus s0;
  SolvePlaneFit(Plane(pts, 3), ls, &ls_off, &s0);
  for (PenaltyKind kind : {PenaltyKind::kPseudoHuber, PenaltyKind::kHuber, PenaltyKind::kWelsch,
                           PenaltyKind::kTruncatedQuadratic, PenaltyKind::kCauchy, PenaltyKind::kGemanMcClure}) {
    SCOPED_TRACE(pooling::PenaltyName(kind));
    // The truncated quadratic only sees points within α of the least-squares start, which the outliers shift by
    // ~0.5: its α must reach the inliers from there.
    const PlaneFitProblem q = Plane(pts, 3, nullptr, kind, kind == PenaltyKind::kTruncatedQuadratic ? 0.8 : 0.2);
    double nrm[3], offset;
    ProblemStatus s;
    SolvePlaneFit(q, nrm, &offset, &s);
    EXPECT_LE(s.residual, 1e-13);
    EXPECT_TRUE(s.flags & kNotCertified);
    const Eigen::Vector3d n(nrm[0], nrm[1], nrm[2]);
    EXPECT_NEAR(n.norm(), 1.0, 1e-14);
    // Much closer to the truth than least squares.
    const double err = std::acos(std::min(1.0, std::abs(n.dot(truth))));
    const double ls_err = std::acos(std::min(1.0, std::abs(Eigen::Vector3d(ls[0], ls[1], ls[2]).dot(truth))));
    if (kind != PenaltyKind::kPseudoHuber && kind != PenaltyKind::kHuber) {
      EXPECT_LT(err, 0.25 * ls_err);
    } else {
      EXPECT_LT(err, ls_err);
    }
    // A local minimum: no random nearby plane is better.
    const double f = PlaneFitObjective(q, nrm, offset);
    for (int k = 0; k < 50; ++k) {
      Eigen::Vector3d m = n + 1e-4 * Eigen::Vector3d(rng.Normal(), rng.Normal(), rng.Normal());
      m.normalize();
      EXPECT_GE(PlaneFitObjective(q, m.data(), offset + 1e-4 * rng.Normal()), f - 1e-12);
    }
  }
}

TEST(PlaneFit, BadInput) {
  std::vector<double> pts = {0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0.1};
  auto expect = [&](const PlaneFitProblem& q, const std::string& part) {
    try {
      ValidatePlaneFit(q);
      ADD_FAILURE() << "no InvalidInput for " << part;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  std::vector<double> w = {1, 1, 0, 0};
  expect(Plane(pts, 3, &w), "at least 3 points with positive weight, got 2");
  w = {0, 0, 0, 0};
  expect(Plane(pts, 3, &w), "all zero");
  w = {1, -1, 1, 1};
  expect(Plane(pts, 3, &w), "must be >= 0");
  std::vector<double> two = {0, 0, 0, 1, 1, 1};
  expect(Plane(two, 3), "needs at least 3 points, got N = 2");
  std::vector<double> one_d = {1, 2, 3};
  expect(Plane(one_d, 1), "D >= 2");
  std::vector<double> nan = pts;
  nan[4] = NAN;
  expect(Plane(nan, 3), "non-finite");
}

SphereFitProblem Sphere(const std::vector<double>& pts, int64_t d, PenaltyKind kind = PenaltyKind::kQuadratic,
                        double alpha = 1.0, const std::vector<double>* w = nullptr) {
  SphereFitProblem q;
  q.cloud.points = pts.data();
  q.cloud.weights = w ? w->data() : nullptr;
  q.cloud.n = static_cast<int64_t>(pts.size()) / d;
  q.cloud.d = d;
  q.kind = kind;
  q.alpha = alpha;
  return q;
}

TEST(SphereFit, ExactPointsGiveTheSphereAndNoisyOnesARootOfTheGradient) {
  Rng rng(7);
  for (int64_t d : {2, 3, 4}) {
    std::vector<double> pts;
    Eigen::VectorXd c = Eigen::VectorXd::Random(d) * 3;
    const double r = 1.7;
    for (int i = 0; i < 12; ++i) {
      Eigen::VectorXd u(d);
      for (int64_t k = 0; k < d; ++k) u[k] = rng.Normal();
      u.normalize();
      for (int64_t k = 0; k < d; ++k) pts.push_back(c[k] + r * u[k]);
    }
    std::vector<double> centre(d);
    double radius;
    ProblemStatus s;
    SolveSphereFit(Sphere(pts, d), centre.data(), &radius, &s);
    for (int64_t k = 0; k < d; ++k) EXPECT_NEAR(centre[k], c[k], 1e-12);
    EXPECT_NEAR(radius, r, 1e-12);
    for (auto& x : pts) x += 0.05 * rng.Normal();
    for (PenaltyKind kind : {PenaltyKind::kQuadratic, PenaltyKind::kHuber, PenaltyKind::kWelsch}) {
      s = ProblemStatus();
      SolveSphereFit(Sphere(pts, d, kind, 0.1), centre.data(), &radius, &s);
      EXPECT_LE(s.residual, 1e-13) << d;
      EXPECT_TRUE(s.flags & kNotCertified);
      EXPECT_NEAR(radius, r, 0.1);
    }
  }
}

TEST(SphereFit, DegenerateCloudsAreReported) {
  std::vector<double> collinear = {0, 0, 1, 1, 2, 2, 3, 3};
  double c[3], r;
  ProblemStatus s;
  try {
    SolveSphereFit(Sphere(collinear, 2), c, &r, &s);
    ADD_FAILURE() << "collinear points accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("collinear"), std::string::npos) << e.what();
  }
  std::vector<double> coplanar = {0, 0, 5, 1, 0, 5, 0, 1, 5, 1, 1, 5, 0.5, 0.2, 5};
  try {
    SolveSphereFit(Sphere(coplanar, 3), c, &r, &s);
    ADD_FAILURE() << "coplanar points accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("hyperplane"), std::string::npos) << e.what();
  }
  std::vector<double> few = {0, 0, 0, 1, 0, 0, 0, 1, 0};
  try {
    ValidateSphereFit(Sphere(few, 3));
    ADD_FAILURE() << "3 points accepted for a sphere";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("at least 4 points"), std::string::npos) << e.what();
  }
}

TEST(EllipseFit, ExactPointsGiveTheEllipse) {
  const double cx = 1.5, cy = -0.5, A = 3.0, B = 1.2, phi = 0.4;
  std::vector<double> pts;
  for (int i = 0; i < 9; ++i) {
    const double t = 0.7 * i;
    const double ex = A * std::cos(t), ey = B * std::sin(t);
    pts.push_back(cx + std::cos(phi) * ex - std::sin(phi) * ey);
    pts.push_back(cy + std::sin(phi) * ex + std::cos(phi) * ey);
  }
  PointCloud cl{pts.data(), nullptr, 9, 2};
  double conic[6], centre[2], axes[2], angle;
  ProblemStatus s;
  SolveEllipseFit(cl, conic, &s);
  EXPECT_LE(s.residual, 1e-14);
  EXPECT_NEAR(4 * conic[0] * conic[2] - conic[1] * conic[1], 1.0, 1e-13);
  EXPECT_GT(conic[0], 0);
  EXPECT_NEAR(EllipseFitObjective(cl, conic), 0.0, 1e-20);
  ASSERT_TRUE(EllipseGeometry(conic, centre, axes, &angle));
  EXPECT_NEAR(centre[0], cx, 1e-10);
  EXPECT_NEAR(centre[1], cy, 1e-10);
  EXPECT_NEAR(axes[0], A, 1e-10);
  EXPECT_NEAR(axes[1], B, 1e-10);
  EXPECT_NEAR(angle, phi, 1e-10);
}

TEST(EllipseFit, GeometryConventionsAndItsDerivative) {
  // x²/4 + y² = 1 scaled to 4ac − b² = 1: major axis along x, angle 0; rotated by 90°: angle π/2.
  const double s = 1.0;                                              // a = 1/4·k, c = k with 4ac = k² = 1
  double q[6] = {0.25 * 2 * s, 0, 2 * s * 1.0, 0, 0, -2 * s * 1.0};  // a = 0.5, c = 2: 4ac = 4 → rescale below
  for (double& v : q) v /= 2;                                        // 4ac − b² = 1
  double centre[2], axes[2], angle;
  ASSERT_TRUE(EllipseGeometry(q, centre, axes, &angle));
  EXPECT_NEAR(axes[0], 2.0, 1e-14);
  EXPECT_NEAR(axes[1], 1.0, 1e-14);
  EXPECT_NEAR(angle, 0.0, 1e-14);
  std::swap(q[0], q[2]);
  ASSERT_TRUE(EllipseGeometry(q, centre, axes, &angle));
  EXPECT_NEAR(angle, M_PI / 2, 1e-14);
  // A circle: angle 0, flagged by the return value.
  double circle[6] = {0.5, 0, 0.5, -1, 0, 0};
  EXPECT_FALSE(EllipseGeometry(circle, centre, axes, &angle));
  EXPECT_EQ(angle, 0.0);
  EXPECT_NEAR(axes[0], axes[1], 1e-14);
  // The chained derivative against central differences of the map, at a generic conic.
  double g[6] = {0.7, 0.3, 0.5, -0.2, 0.4, -1.5};
  const double scale = 1 / std::sqrt(4 * g[0] * g[2] - g[1] * g[1]);
  for (double& v : g) v *= scale;
  const double vc[2] = {0.3, -0.7}, va[2] = {1.1, 0.4}, vt = -0.9;
  double grad[6] = {0, 0, 0, 0, 0, 0};
  ChainEllipseGeometry(g, vc, va, &vt, grad);
  auto phi_of = [&](const double* qq) {
    double c2[2], a2[2], t2;
    EllipseGeometry(qq, c2, a2, &t2);
    return vc[0] * c2[0] + vc[1] * c2[1] + va[0] * a2[0] + va[1] * a2[1] + vt * t2;
  };
  for (int k = 0; k < 6; ++k) {
    double qp[6], qm[6];
    std::copy(g, g + 6, qp);
    std::copy(g, g + 6, qm);
    const double h = 1e-6;
    qp[k] += h;
    qm[k] -= h;
    EXPECT_NEAR(grad[k], (phi_of(qp) - phi_of(qm)) / (2 * h), 1e-7 * (1 + std::abs(grad[k]))) << k;
  }
}

TEST(EllipseFit, BadInput) {
  std::vector<double> line = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5};
  PointCloud cl{line.data(), nullptr, 6, 2};
  double conic[6];
  ProblemStatus s;
  try {
    SolveEllipseFit(cl, conic, &s);
    ADD_FAILURE() << "collinear points accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("collinear"), std::string::npos) << e.what();
  }
  PointCloud four{line.data(), nullptr, 4, 2};
  EXPECT_THROW(ValidateEllipseFit(four), InvalidInput);
  PointCloud three_d{line.data(), nullptr, 4, 3};
  EXPECT_THROW(ValidateEllipseFit(three_d), InvalidInput);
}

}  // namespace
}  // namespace ddn::surface
