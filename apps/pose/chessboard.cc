#include "apps/pose/chessboard.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ddn/error.h"

namespace ddn::pose {
namespace {

cv::Matx33d CameraMatrix(const Intrinsics& K) {
  return {K.fx, 0, K.cx, 0, K.fy, K.cy, 0, 0, 1};
}

std::vector<cv::Point3d> ObjectPoints() {
  const std::vector<double> b = BoardPoints();
  std::vector<cv::Point3d> out;
  for (int i = 0; i < kCorners; ++i) out.emplace_back(b[3 * i], b[3 * i + 1], b[3 * i + 2]);
  return out;
}

std::vector<cv::Point2d> AsPoints(const std::vector<double>& v) {
  std::vector<cv::Point2d> out;
  for (size_t i = 0; i + 1 < v.size(); i += 2) out.emplace_back(v[i], v[i + 1]);
  return out;
}

Pose ToPose(const cv::Mat& rvec, const cv::Mat& tvec) {
  Pose p;
  for (int k = 0; k < 3; ++k) {
    p[k] = rvec.at<double>(k);
    p[3 + k] = tvec.at<double>(k);
  }
  return p;
}

// Undistorted pixels (the ideal pinhole image of the same K) of distorted pixel coordinates.
std::vector<double> Undistort(const std::vector<double>& raw, const Intrinsics& K) {
  std::vector<cv::Point2d> in = AsPoints(raw), out;
  cv::undistortPoints(in, out, CameraMatrix(K), K.distortion, cv::noArray(), CameraMatrix(K));
  std::vector<double> v;
  for (const auto& p : out) {
    v.push_back(p.x);
    v.push_back(p.y);
  }
  return v;
}

cv::Matx33d Rotation(const Pose& p) {
  cv::Matx33d R;
  cv::Rodrigues(cv::Vec3d(p[0], p[1], p[2]), R);
  return R;
}

}  // namespace

std::string FindChessboardData(const std::string& given) {
  std::vector<std::string> folders;
  if (!given.empty()) {
    folders.push_back(given);
  } else {
    if (const char* env = std::getenv("OPENCV_SAMPLES_DATA_PATH")) folders.push_back(env);
    // Debian's opencv-doc, and OpenCV's own install layout.
    folders.push_back("/usr/share/doc/opencv-doc/examples/data");
    folders.push_back("/usr/share/opencv4/samples/data");
  }
  std::string tried;
  for (const auto& f : folders) {
    if (std::filesystem::exists(f + "/left01.jpg") && std::filesystem::exists(f + "/left_intrinsics.yml")) return f;
    tried += (tried.empty() ? "" : ", ") + f;
  }
  throw InvalidInput("no folder with OpenCV's chessboard photos (left01.jpg, left_intrinsics.yml) among: " + tried +
                     "; install Debian's opencv-doc package or pass its data folder with --data");
}

Intrinsics LoadIntrinsics(const std::string& folder) {
  const std::string path = folder + "/left_intrinsics.yml";
  cv::FileStorage fs;
  try {
    fs.open(path, cv::FileStorage::READ);
  } catch (const cv::Exception& e) {
    throw InvalidInput("cannot read '" + path + "': " + e.what());
  }
  if (!fs.isOpened()) throw InvalidInput("cannot read '" + path + "'");
  cv::Mat K, dist;
  fs["camera_matrix"] >> K;
  fs["distortion_coefficients"] >> dist;
  if (K.rows != 3 || K.cols != 3 || dist.empty())
    throw InvalidInput("'" + path + "' lacks camera_matrix or distortion");
  Intrinsics out;
  K.convertTo(K, CV_64F);
  dist.convertTo(dist, CV_64F);
  out.fx = K.at<double>(0, 0);
  out.fy = K.at<double>(1, 1);
  out.cx = K.at<double>(0, 2);
  out.cy = K.at<double>(1, 2);
  out.distortion.assign(dist.begin<double>(), dist.end<double>());
  out.width = static_cast<int>(fs["image_width"]);
  out.height = static_cast<int>(fs["image_height"]);
  return out;
}

std::vector<double> BoardPoints() {
  std::vector<double> b;
  for (int r = 0; r < kBoardHeight; ++r)
    for (int c = 0; c < kBoardWidth; ++c) {
      b.push_back(c * kSquareMm);
      b.push_back(r * kSquareMm);
      b.push_back(0.0);
    }
  return b;
}

std::vector<View> LoadViews(const std::string& folder, const std::vector<std::string>& names, const Intrinsics& K) {
  std::vector<View> views;
  const std::vector<cv::Point3d> object = ObjectPoints();
  for (const auto& name : names) {
    View v;
    v.name = name;
    v.path = folder + "/" + name + ".jpg";
    const cv::Mat gray = cv::imread(v.path, cv::IMREAD_GRAYSCALE);
    if (gray.empty()) throw InvalidInput("cannot read photo '" + v.path + "'");
    std::vector<cv::Point2f> corners;
    if (!cv::findChessboardCorners(gray, cv::Size(kBoardWidth, kBoardHeight), corners,
                                   cv::CALIB_CB_ADAPTIVE_THRESH | cv::CALIB_CB_NORMALIZE_IMAGE) ||
        static_cast<int>(corners.size()) != kCorners) {
      throw InvalidInput("the 9x6 chessboard is not found in '" + v.path + "'");
    }
    cv::cornerSubPix(gray, corners, cv::Size(11, 11), cv::Size(-1, -1),
                     cv::TermCriteria(cv::TermCriteria::EPS + cv::TermCriteria::COUNT, 100, 1e-4));
    for (const auto& c : corners) {
      v.corners.push_back(c.x);
      v.corners.push_back(c.y);
    }
    const std::vector<double> undistorted = Undistort(v.corners, K);
    cv::Mat rvec, tvec;
    if (!cv::solvePnP(object, AsPoints(undistorted), CameraMatrix(K), cv::noArray(), rvec, tvec, false,
                      cv::SOLVEPNP_ITERATIVE)) {
      throw NumericalFailure("solvePnP found no pose for the clean corners of '" + v.path + "'");
    }
    v.pose = ToPose(rvec, tvec);
    v.width = gray.cols;
    v.height = gray.rows;
    v.gray.assign(gray.data, gray.data + gray.total());
    views.push_back(std::move(v));
  }
  return views;
}

Sample Corrupt(const View& view, int view_index, const Intrinsics& K, double fraction, double min_px, double max_px,
               Rng* rng) {
  Sample s;
  s.view = view_index;
  s.raw = view.corners;
  s.outlier.assign(kCorners, 0);
  std::vector<int> order(kCorners);
  for (int i = 0; i < kCorners; ++i) order[i] = i;
  rng->Shuffle(&order);
  const int count = static_cast<int>(std::lround(fraction * kCorners));
  const double margin = (kPatchSide / 2) * kPatchStep + 2;  // keep the feature patch inside the photo
  for (int k = 0; k < count; ++k) {
    const int i = order[k];
    s.outlier[i] = 1;
    const double length = rng->Uniform(min_px, max_px), angle = rng->Uniform(0.0, 2 * M_PI);
    s.raw[2 * i] = std::clamp(s.raw[2 * i] + length * std::cos(angle), margin, view.width - 1 - margin);
    s.raw[2 * i + 1] = std::clamp(s.raw[2 * i + 1] + length * std::sin(angle), margin, view.height - 1 - margin);
  }
  s.points = Undistort(s.raw, K);
  // Features: a 9×9 grid at a 2-pixel step around each raw point, normalised.
  const cv::Mat gray(view.height, view.width, CV_8U, const_cast<unsigned char*>(view.gray.data()));
  const int side = (kPatchSide - 1) * kPatchStep + 1;
  s.features.resize(static_cast<size_t>(kCorners) * kFeatures);
  for (int i = 0; i < kCorners; ++i) {
    cv::Mat patch;
    cv::getRectSubPix(gray, cv::Size(side, side),
                      cv::Point2f(static_cast<float>(s.raw[2 * i]), static_cast<float>(s.raw[2 * i + 1])), patch,
                      CV_32F);
    double mean = 0, sq = 0;
    double* f = s.features.data() + static_cast<size_t>(i) * kFeatures;
    for (int r = 0; r < kPatchSide; ++r)
      for (int c = 0; c < kPatchSide; ++c) {
        const double v = patch.at<float>(r * kPatchStep, c * kPatchStep);
        f[r * kPatchSide + c] = v;
        mean += v;
        sq += v * v;
      }
    mean /= kFeatures;
    const double sd = std::sqrt(std::max(0.0, sq / kFeatures - mean * mean));
    for (int k = 0; k < kFeatures; ++k) f[k] = (f[k] - mean) / (sd + 1.0);
  }
  return s;
}

double RotationErrorDeg(const Pose& a, const Pose& b) {
  const cv::Matx33d D = Rotation(a) * Rotation(b).t();
  // The angle of D from its skew part and trace together (atan2: accurate at small and large angles).
  const double s =
      0.5 * std::sqrt(std::pow(D(2, 1) - D(1, 2), 2) + std::pow(D(0, 2) - D(2, 0), 2) + std::pow(D(1, 0) - D(0, 1), 2));
  const double c = 0.5 * (D(0, 0) + D(1, 1) + D(2, 2) - 1.0);
  return std::atan2(s, c) * 180.0 / M_PI;
}

double TranslationErrorMm(const Pose& a, const Pose& b) {
  return std::sqrt(std::pow(a[3] - b[3], 2) + std::pow(a[4] - b[4], 2) + std::pow(a[5] - b[5], 2));
}

bool OpenCvSolvePnP(const Sample& s, const Intrinsics& K, Pose* pose) {
  cv::Mat rvec, tvec;
  if (!cv::solvePnP(ObjectPoints(), AsPoints(s.points), CameraMatrix(K), cv::noArray(), rvec, tvec, false,
                    cv::SOLVEPNP_ITERATIVE)) {
    return false;
  }
  *pose = ToPose(rvec, tvec);
  return true;
}

bool OpenCvSolvePnPRansac(const Sample& s, const Intrinsics& K, double ransac_px, Pose* pose) {
  cv::Mat rvec, tvec;
  // OpenCV's RANSAC draws from cv::theRNG(): seed it from the sample so that a run is reproducible.
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  for (double v : s.raw) seed = (seed ^ static_cast<uint64_t>(std::llround(v * 4096.0))) * 0xBF58476D1CE4E5B9ull;
  cv::theRNG().state = seed | 1;
  if (!cv::solvePnPRansac(ObjectPoints(), AsPoints(s.points), CameraMatrix(K), cv::noArray(), rvec, tvec, false, 100,
                          static_cast<float>(ransac_px), 0.99, cv::noArray(), cv::SOLVEPNP_ITERATIVE)) {
    return false;
  }
  *pose = ToPose(rvec, tvec);
  return true;
}

}  // namespace ddn::pose
