// apps/pose/chessboard.h: the data of the camera-pose demo: OpenCV's chessboard photos, their corners, corrupted
// correspondences and the local features a network sees.
//
// The photos are OpenCV's stereo-calibration sample (left01.jpg … left14.jpg, 640×480, a board of 9×6 inner
// corners with 25 mm squares, from Debian's opencv-doc) with their calibration (left_intrinsics.yml: K and five
// distortion coefficients). For each photo the corners are found (findChessboardCorners, cornerSubPix) and
// undistorted to the ideal pinhole image of the same K; the board's pose from all clean corners (solvePnP,
// iterative LM on the undistorted corners) is the ground truth every method is measured against.
//
// A sample corrupts one photo: a fraction of its 54 corners is displaced, each by a length uniform in
// [min, max] pixels in a uniform direction (in the photo as taken, kept inside it), and all corners are then
// undistorted: every method gets the same corrupted correspondences (undistorted pixels, board points in mm,
// K). The features of a correspondence are the photo's intensities around its (corrupted) image point: a 9×9
// grid at a 2-pixel step (17×17 pixels, about half a square), bilinear, normalised to zero mean and unit
// standard deviation (+1 in the denominator, so that flat patches stay near 0). A true corner shows the board's
// saddle; a displaced point mostly does not.
//
// OpenCV stays inside chessboard.cc and the other .cc files of the app.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ddn/random.h"

namespace ddn::pose {

constexpr int kBoardWidth = 9, kBoardHeight = 6, kCorners = kBoardWidth * kBoardHeight;
constexpr double kSquareMm = 25.0;
constexpr int kPatchSide = 9, kPatchStep = 2, kFeatures = kPatchSide * kPatchSide;

using Pose = std::array<double, 6>;  // angle-axis rotation (rad), translation (mm): X_cam = R P + t

struct Intrinsics {
  double fx = 0, fy = 0, cx = 0, cy = 0;
  std::vector<double> distortion;  // k1, k2, p1, p2, k3
  int width = 0, height = 0;
};

// One photo with its clean corners and the pose they give.
struct View {
  std::string name;  // "left01"
  std::string path;
  std::vector<double> corners;      // 54 × 2, as detected (distorted pixels), row-major board order
  Pose pose{};                      // ground truth from the clean corners
  std::vector<unsigned char> gray;  // the photo, 8-bit grey, row-major
  int width = 0, height = 0;
};

// Corrupted correspondences of one view.
struct Sample {
  int view = 0;
  std::vector<double> raw;       // 54 × 2, in the photo as taken (distorted pixels)
  std::vector<double> points;    // 54 × 2, undistorted pixels: the input of every method
  std::vector<char> outlier;     // 54
  std::vector<double> features;  // 54 × kFeatures
};

// The data folder: `given` if not empty, else $OPENCV_SAMPLES_DATA_PATH, Debian's opencv-doc install, OpenCV's
// own install layout; the first holding left01.jpg and left_intrinsics.yml. Throws InvalidInput naming the
// folders tried.
std::string FindChessboardData(const std::string& given);

// Reads left_intrinsics.yml. Throws InvalidInput.
Intrinsics LoadIntrinsics(const std::string& folder);

// The board's corners in mm, z = 0, in OpenCV's detection order (54 × 3).
std::vector<double> BoardPoints();

// Loads the named photos ("left01", …), detects and refines their corners, computes each pose. Throws
// InvalidInput for a missing photo or one whose board is not found.
std::vector<View> LoadViews(const std::string& folder, const std::vector<std::string>& names, const Intrinsics& K);

// Displaces round(fraction · 54) corners by U(min_px, max_px) pixels and computes points and features.
Sample Corrupt(const View& view, int view_index, const Intrinsics& K, double fraction, double min_px, double max_px,
               Rng* rng);

// Rotation error (degrees) and translation error (mm) of `estimate` against `truth`.
double RotationErrorDeg(const Pose& estimate, const Pose& truth);
double TranslationErrorMm(const Pose& estimate, const Pose& truth);

// OpenCV's baselines on a sample's corrupted, undistorted correspondences (no distortion): solvePnP (iterative
// LM from its DLT/homography start) and solvePnPRansac (iterative, 100 iterations, `ransac_px` threshold,
// confidence 0.99). Return false if OpenCV returned no pose.
bool OpenCvSolvePnP(const Sample& s, const Intrinsics& K, Pose* pose);
bool OpenCvSolvePnPRansac(const Sample& s, const Intrinsics& K, double ransac_px, Pose* pose);

}  // namespace ddn::pose
