#include "apps/normals/render.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "apps/common/app.h"
#include "ddn/error.h"

namespace ddn::normals {
namespace {

void Text(cv::Mat& img, const std::string& s, cv::Point at, double scale, int thickness = 1, int align = 0) {
  int base = 0;
  const cv::Size size = cv::getTextSize(s, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &base);
  if (align == 1) at.x -= size.width / 2;
  cv::putText(img, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(30, 30, 30), thickness, cv::LINE_AA);
}

// Turbo colours for values in [0, 1].
cv::Mat Colours(const std::vector<double>& t) {
  cv::Mat grey(1, static_cast<int>(t.size()), CV_8UC1);
  for (size_t i = 0; i < t.size(); ++i)
    grey.at<uint8_t>(0, static_cast<int>(i)) = static_cast<uint8_t>(std::lround(255 * std::clamp(t[i], 0.0, 1.0)));
  cv::Mat colours;
  cv::applyColorMap(grey, colours, cv::COLORMAP_TURBO);
  return colours;
}

}  // namespace

void RenderErrorPanels(const std::string& path, const std::vector<double>& points,
                       const std::vector<ErrorPanel>& panels, const std::string& title, double max_error_deg) {
  const int V = static_cast<int>(points.size() / 3);
  for (const auto& p : panels)
    if (static_cast<int>(p.error_deg.size()) != V)
      throw InvalidInput("render: panel '" + p.title + "' has the wrong size");
  const int panel = 420, margin = 20, top = 70, bottom = 90;
  const int W = margin + static_cast<int>(panels.size()) * (panel + margin), H = top + panel + bottom;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  Text(img, title, cv::Point(W / 2, 28), 0.6, 1, 1);
  // Fit the x–y extent into a panel.
  double lo[2] = {1e300, 1e300}, hi[2] = {-1e300, -1e300};
  for (int v = 0; v < V; ++v)
    for (int c = 0; c < 2; ++c) {
      lo[c] = std::min(lo[c], points[3 * v + c]);
      hi[c] = std::max(hi[c], points[3 * v + c]);
    }
  const double extent = std::max({hi[0] - lo[0], hi[1] - lo[1], 1e-12});
  const double scale = (panel - 20) / extent;
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return points[3 * a + 2] < points[3 * b + 2]; });
  const int radius = std::max(1, std::min(4, static_cast<int>(std::lround(2.5 * std::sqrt(6000.0 / std::max(V, 1))))));
  for (size_t k = 0; k < panels.size(); ++k) {
    const int x0 = margin + static_cast<int>(k) * (panel + margin);
    cv::rectangle(img, cv::Rect(x0, top, panel, panel), cv::Scalar(235, 235, 235), 1);
    Text(img, panels[k].title, cv::Point(x0 + panel / 2, top - 12), 0.55, 1, 1);
    std::vector<double> t(V);
    for (int v = 0; v < V; ++v) t[v] = panels[k].error_deg[v] / max_error_deg;
    const cv::Mat colours = Colours(t);
    for (int v : order) {
      const double cx = x0 + 10 + (points[3 * v] - lo[0]) * scale + 0.5 * (panel - 20 - (hi[0] - lo[0]) * scale);
      const double cy =
          top + panel - 10 - (points[3 * v + 1] - lo[1]) * scale - 0.5 * (panel - 20 - (hi[1] - lo[1]) * scale);
      const cv::Vec3b c = colours.at<cv::Vec3b>(0, v);
      cv::circle(img, cv::Point(static_cast<int>(std::lround(cx)), static_cast<int>(std::lround(cy))), radius,
                 cv::Scalar(c[0], c[1], c[2]), cv::FILLED, cv::LINE_AA);
    }
  }
  // Colour bar.
  const int bar_w = std::min(W - 2 * margin, 600), bar_x = (W - bar_w) / 2, bar_y = top + panel + 25;
  std::vector<double> ramp(bar_w);
  for (int i = 0; i < bar_w; ++i) ramp[i] = static_cast<double>(i) / (bar_w - 1);
  const cv::Mat bar = Colours(ramp);
  for (int i = 0; i < bar_w; ++i) {
    const cv::Vec3b c = bar.at<cv::Vec3b>(0, i);
    cv::line(img, cv::Point(bar_x + i, bar_y), cv::Point(bar_x + i, bar_y + 16), cv::Scalar(c[0], c[1], c[2]));
  }
  for (int tick = 0; tick <= 6; ++tick) {
    const double deg = max_error_deg * tick / 6;
    const int x = bar_x + static_cast<int>(std::lround((bar_w - 1) * tick / 6.0));
    char label[32];
    std::snprintf(label, sizeof label, tick == 6 ? ">=%.0f" : "%.0f", deg);
    Text(img, label, cv::Point(x, bar_y + 34), 0.45, 1, 1);
  }
  Text(img, "angle error of the normal (degrees)", cv::Point(W / 2, bar_y + 56), 0.5, 1, 1);
  app::WriteImage(path, img);
}

}  // namespace ddn::normals
