// The PnP initialisation (EPnP, Eigen code in pnp_solver.cc) against OpenCV's solvePnP: SOLVEPNP_EPNP on general
// scenes (the same algorithm: the same pose on noise-free data, nearly the same with noise) and, for planar
// scenes, where OpenCV's EPnP is not meant to be used, SOLVEPNP_IPPE (exact on noise-free data); and the node's
// refined pose against solvePnP's iterative LM (the same minimum of the reprojection error). This test links
// OpenCV; the node itself does not.
#include <gtest/gtest.h>

#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>

#include <cmath>
#include <vector>

#include "ddn/random.h"
#include "nodes/geometry/pnp_solver.h"
#include "nodes/geometry/rotation.h"

namespace ddn::geometry {
namespace {

struct Data {
  std::vector<double> p2d, p3d;
  double pose[6];
};

// Points in [−1, 1]³ (or z = 0) 4–6 units in front of a camera with K = (800, 780, 320, 240), pixel noise.
Data MakeData(int n, double noise_px, bool planar, Rng* rng) {
  Data d;
  for (int k = 0; k < 3; ++k) d.pose[k] = 0.7 * rng->Normal();
  d.pose[3] = 0.3 * rng->Normal();
  d.pose[4] = 0.3 * rng->Normal();
  d.pose[5] = 5.0 + rng->Uniform(-1.0, 1.0);
  for (int i = 0; i < n; ++i) {
    const double P[3] = {rng->Uniform(-1.0, 1.0), rng->Uniform(-1.0, 1.0), planar ? 0.0 : rng->Uniform(-1.0, 1.0)};
    double X[3];
    AngleAxisRotatePoint(d.pose, P, X);
    for (int c = 0; c < 3; ++c) X[c] += d.pose[3 + c];
    d.p3d.insert(d.p3d.end(), P, P + 3);
    d.p2d.push_back(800.0 * X[0] / X[2] + 320.0 + noise_px * rng->Normal());
    d.p2d.push_back(780.0 * X[1] / X[2] + 240.0 + noise_px * rng->Normal());
  }
  return d;
}

const double kK[4] = {800.0, 780.0, 320.0, 240.0};

PnPProblem Problem(const Data& d) {
  PnPProblem p;
  p.n = static_cast<int64_t>(d.p2d.size() / 2);
  p.p2d = d.p2d.data();
  p.p3d = d.p3d.data();
  p.K = kK;
  return p;
}

// OpenCV's pose as (r, t).
void OpenCvPose(const Data& d, int method, double pose[6]) {
  std::vector<cv::Point3d> object;
  std::vector<cv::Point2d> image;
  for (size_t i = 0; i < d.p2d.size() / 2; ++i) {
    object.emplace_back(d.p3d[3 * i], d.p3d[3 * i + 1], d.p3d[3 * i + 2]);
    image.emplace_back(d.p2d[2 * i], d.p2d[2 * i + 1]);
  }
  const cv::Matx33d K(kK[0], 0, kK[2], 0, kK[1], kK[3], 0, 0, 1);
  cv::Mat rvec, tvec;
  ASSERT_TRUE(cv::solvePnP(object, image, K, cv::noArray(), rvec, tvec, false, method));
  for (int k = 0; k < 3; ++k) {
    pose[k] = rvec.at<double>(k);
    pose[3 + k] = tvec.at<double>(k);
  }
}

// Rotation angle between two angle-axis vectors, radians, from ‖Ra − Rb‖_F = 2√2 sin(θ/2) (acos of the trace
// would lose half the digits near 0).
double AngleBetween(const double* a, const double* b) {
  double Ra[9], Rb[9];
  AngleAxisToRotationMatrix(a, Ra);
  AngleAxisToRotationMatrix(b, Rb);
  double frob = 0;
  for (int i = 0; i < 9; ++i) frob += (Ra[i] - Rb[i]) * (Ra[i] - Rb[i]);
  return 2 * std::asin(std::min(1.0, std::sqrt(frob) / (2 * std::sqrt(2.0))));
}

TEST(EPnPvsOpenCV, NoiseFreeGeneralScenes) {
  Rng rng(1);
  for (int n : {5, 6, 10, 50}) {
    for (int trial = 0; trial < 10; ++trial) {
      const Data d = MakeData(n, 0.0, false, &rng);
      double ours[6], theirs[6];
      ASSERT_TRUE(EPnP(Problem(d), {}, ours));
      OpenCvPose(d, cv::SOLVEPNP_EPNP, theirs);
      EXPECT_LT(AngleBetween(ours, d.pose), 1e-8) << n;
      EXPECT_LT(AngleBetween(theirs, d.pose), 1e-6) << n;
      for (int k = 3; k < 6; ++k) EXPECT_NEAR(ours[k], theirs[k], 1e-6) << n;
    }
  }
}

TEST(EPnPvsOpenCV, NoisyGeneralScenes) {
  Rng rng(2);
  double ours_total = 0, theirs_total = 0;
  for (int trial = 0; trial < 50; ++trial) {
    const Data d = MakeData(30, 1.0, false, &rng);
    double ours[6], theirs[6];
    ASSERT_TRUE(EPnP(Problem(d), {}, ours));
    OpenCvPose(d, cv::SOLVEPNP_EPNP, theirs);
    const double a = AngleBetween(ours, d.pose), b = AngleBetween(theirs, d.pose);
    ours_total += a;
    theirs_total += b;
    EXPECT_LT(AngleBetween(ours, theirs), 0.01);  // the same estimate up to its own error (≈ 1 px noise)
  }
  // On average at least as accurate as OpenCV's EPnP (we add Gauss–Newton on β for every candidate).
  EXPECT_LT(ours_total, 1.2 * theirs_total) << ours_total << " vs " << theirs_total;
}

TEST(EPnPvsOpenCV, PlanarScenes) {
  Rng rng(3);
  for (int n : {4, 6, 54}) {
    for (int trial = 0; trial < 10; ++trial) {
      const Data d = MakeData(n, 0.0, true, &rng);
      double ours[6], theirs[6];
      ASSERT_TRUE(EPnP(Problem(d), {}, ours));
      OpenCvPose(d, cv::SOLVEPNP_IPPE, theirs);
      EXPECT_LT(AngleBetween(ours, d.pose), 1e-8) << n;
      EXPECT_LT(AngleBetween(ours, theirs), 1e-6) << n;
      for (int k = 3; k < 6; ++k) EXPECT_NEAR(ours[k], d.pose[k], 1e-8) << n;
    }
  }
}

// The node's whole forward (reproj objective) and solvePnP's iterative LM minimise the same reprojection error.
TEST(EPnPvsOpenCV, RefinedPoseEqualsSolvePnPIterative) {
  Rng rng(4);
  for (bool planar : {false, true}) {
    for (int trial = 0; trial < 10; ++trial) {
      const Data d = MakeData(40, 1.0, planar, &rng);
      double ours[6], theirs[6];
      ProblemStatus s;
      SolvePnP(Problem(d), PnPOptions(), ours, &s);
      OpenCvPose(d, cv::SOLVEPNP_ITERATIVE, theirs);
      EXPECT_LT(AngleBetween(ours, theirs), 1e-6) << planar;
      for (int k = 3; k < 6; ++k) EXPECT_NEAR(ours[k], theirs[k], 1e-5) << planar;
      // And ours is the (numerically) lower one.
      EXPECT_LE(PnPObjectiveValue(Problem(d), ours), PnPObjectiveValue(Problem(d), theirs) * (1 + 1e-12));
    }
  }
}

}  // namespace
}  // namespace ddn::geometry
