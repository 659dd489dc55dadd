#include "apps/pose/draw.h"

#include <algorithm>
#include <cmath>

#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "apps/common/app.h"
#include "ddn/error.h"

namespace ddn::pose {
namespace {

constexpr double kScale = 0.6;  // tile = photo × kScale
constexpr int kTitle = 34;      // pixels above each tile for its title

// Projects board points (mm) with `pose` through K and the distortion: pixels in the photo as taken.
std::vector<cv::Point2f> Project(const std::vector<cv::Point3f>& points, const Pose& pose, const Intrinsics& K) {
  const cv::Matx33d camera(K.fx, 0, K.cx, 0, K.fy, K.cy, 0, 0, 1);
  std::vector<cv::Point2f> out;
  cv::projectPoints(points, cv::Vec3d(pose[0], pose[1], pose[2]), cv::Vec3d(pose[3], pose[4], pose[5]), camera,
                    K.distortion, out);
  return out;
}

void DrawAxes(cv::Mat& img, const Pose& pose, const Intrinsics& K, bool reference) {
  const float len = static_cast<float>(3 * kSquareMm);
  const std::vector<cv::Point3f> pts = {{0, 0, 0}, {len, 0, 0}, {0, len, 0}, {0, 0, -len}};
  std::vector<cv::Point2f> p = Project(pts, pose, K);
  for (auto& q : p) q *= static_cast<float>(kScale);
  if (reference) {
    for (int a = 1; a < 4; ++a) cv::line(img, p[0], p[a], cv::Scalar(200, 200, 200), 1, cv::LINE_AA);
    return;
  }
  const cv::Scalar colour[4] = {{}, {40, 40, 230}, {40, 190, 40}, {230, 90, 30}};  // BGR: X red, Y green, Z blue
  for (int a = 1; a < 4; ++a) cv::arrowedLine(img, p[0], p[a], colour[a], 3, cv::LINE_AA, 0, 0.12);
}

}  // namespace

void WritePoseFigure(const std::string& path, const std::string& caption, const std::vector<View>& views,
                     const std::vector<Sample>& samples, const std::vector<std::vector<Tile>>& rows,
                     const Intrinsics& K) {
  if (samples.size() != rows.size() || rows.empty()) throw InvalidInput("figure: one row of tiles per sample");
  const int tw = static_cast<int>(std::lround(K.width * kScale)), th = static_cast<int>(std::lround(K.height * kScale));
  size_t columns = 0;
  for (const auto& r : rows) columns = std::max(columns, r.size());
  const int header = 40;
  cv::Mat figure(header + static_cast<int>(rows.size()) * (th + kTitle), static_cast<int>(columns) * tw, CV_8UC3,
                 cv::Scalar(255, 255, 255));
  cv::putText(figure, caption, {10, 27}, cv::FONT_HERSHEY_SIMPLEX, 0.62, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  for (size_t r = 0; r < rows.size(); ++r) {
    const Sample& s = samples[r];
    const View& v = views[s.view];
    const cv::Mat gray(v.height, v.width, CV_8U, const_cast<unsigned char*>(v.gray.data()));
    cv::Mat photo;
    cv::cvtColor(gray, photo, cv::COLOR_GRAY2BGR);
    cv::resize(photo, photo, cv::Size(tw, th), 0, 0, cv::INTER_AREA);
    for (size_t c = 0; c < rows[r].size(); ++c) {
      const Tile& t = rows[r][c];
      cv::Mat tile = photo.clone();
      for (int i = 0; i < kCorners; ++i) {
        const cv::Point2f at(static_cast<float>(s.raw[2 * i] * kScale), static_cast<float>(s.raw[2 * i + 1] * kScale));
        const cv::Scalar colour = s.outlier[i] ? cv::Scalar(30, 30, 220) : cv::Scalar(40, 170, 40);
        if (s.outlier[i]) {
          const cv::Point2f truth(static_cast<float>(v.corners[2 * i] * kScale),
                                  static_cast<float>(v.corners[2 * i + 1] * kScale));
          cv::line(tile, truth, at, cv::Scalar(90, 90, 255), 1, cv::LINE_AA);
        }
        const int radius = t.weights.empty() ? 3 : 1 + static_cast<int>(std::lround(5 * t.weights[i]));
        cv::circle(tile, at, radius, colour, cv::FILLED, cv::LINE_AA);
      }
      DrawAxes(tile, v.pose, K, true);
      if (t.valid) DrawAxes(tile, t.pose, K, false);
      const int x = static_cast<int>(c) * tw, y = header + static_cast<int>(r) * (th + kTitle);
      tile.copyTo(figure(cv::Rect(x, y + kTitle, tw, th)));
      cv::putText(figure, t.title, {x + 6, y + 22}, cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 0, 0), 1,
                  cv::LINE_AA);
      cv::rectangle(figure, cv::Rect(x, y + kTitle, tw, th), cv::Scalar(255, 255, 255), 1);
    }
  }
  app::WriteImage(path, figure);
}

}  // namespace ddn::pose
