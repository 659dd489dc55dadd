#include "apps/pointcloud/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "apps/common/app.h"
#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::pointcloud {
namespace {

// Tableau-like palette, BGR.
const cv::Scalar kColors[] = {{180, 119, 31}, {14, 127, 255},  {44, 160, 44},   {40, 39, 214},  {189, 103, 148},
                              {75, 86, 140},  {194, 119, 227}, {127, 127, 127}, {34, 189, 188}, {207, 190, 23}};

std::string PercentLabel(double fraction) {
  char s[32];
  const double p = 100 * fraction;
  if (p == std::round(p)) {
    std::snprintf(s, sizeof(s), "%.0f%%", p);
  } else {
    std::snprintf(s, sizeof(s), "%.1f%%", p);
  }
  return s;
}

void DrawMarker(cv::Mat& img, cv::Point c, int kind, const cv::Scalar& color) {
  const int r = 6;
  switch (kind % 5) {
    case 0:
      cv::circle(img, c, r, color, cv::FILLED, cv::LINE_AA);
      break;
    case 1:
      cv::rectangle(img, c - cv::Point(r - 1, r - 1), c + cv::Point(r - 1, r - 1), color, cv::FILLED);
      break;
    case 2: {
      std::vector<cv::Point> tri = {c + cv::Point(0, -r - 1), c + cv::Point(r + 1, r), c + cv::Point(-r - 1, r)};
      cv::fillConvexPoly(img, tri, color, cv::LINE_AA);
      break;
    }
    case 3: {
      std::vector<cv::Point> dia = {c + cv::Point(0, -r - 1), c + cv::Point(r + 1, 0), c + cv::Point(0, r + 1),
                                    c + cv::Point(-r - 1, 0)};
      cv::fillConvexPoly(img, dia, color, cv::LINE_AA);
      break;
    }
    default:
      cv::circle(img, c, r, color, 2, cv::LINE_AA);
      break;
  }
}

void Text(cv::Mat& img, const std::string& s, cv::Point at, double scale, int thickness = 1,
          const cv::Scalar& color = cv::Scalar(30, 30, 30), int align = 0 /* 0 left, 1 centre, 2 right */) {
  int base = 0;
  const cv::Size size = cv::getTextSize(s, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &base);
  if (align == 1) at.x -= size.width / 2;
  if (align == 2) at.x -= size.width;
  cv::putText(img, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv::LINE_AA);
}

}  // namespace

void WriteAccuracyPlot(const std::string& path, const std::vector<double>& fractions,
                       const std::vector<PlotSeries>& series, const PlotOptions& options) {
  if (fractions.empty()) throw InvalidInput("plot: no outlier fractions");
  for (const auto& s : series)
    if (s.values.size() != fractions.size()) throw InvalidInput("plot: series '" + s.label + "' has the wrong length");
  const int W = options.width, H = options.height;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  // The legend sits right of the plot area and is as wide as its longest label.
  int legend_text = 0;
  for (const auto& s : series) {
    int base = 0;
    legend_text = std::max(legend_text, cv::getTextSize(s.label, cv::FONT_HERSHEY_SIMPLEX, 0.5, 1, &base).width);
  }
  const int left = 90, right = std::max(180, legend_text + 100), top = 90, bottom = 90;
  const cv::Rect area(left, top, W - left - right, H - top - bottom);
  const double xmax = std::sqrt(std::max(1e-12, *std::max_element(fractions.begin(), fractions.end())));
  auto px = [&](double fraction) {
    return area.x + static_cast<int>(std::lround(area.width * std::sqrt(std::max(0.0, fraction)) / xmax));
  };
  auto py = [&](double accuracy) { return area.y + static_cast<int>(std::lround(area.height * (1 - accuracy))); };

  // Grid and y ticks.
  for (int k = 0; k <= 10; ++k) {
    const int y = py(k / 10.0);
    cv::line(img, {area.x, y}, {area.x + area.width, y}, cv::Scalar(228, 228, 228), 1);
    cv::line(img, {area.x - 6, y}, {area.x, y}, cv::Scalar(60, 60, 60), 1);
    Text(img, std::to_string(10 * k), {area.x - 12, y + 6}, 0.5, 1, cv::Scalar(30, 30, 30), 2);
  }
  // x ticks at the measured fractions.
  for (double f : fractions) {
    const int x = px(f);
    cv::line(img, {x, area.y}, {x, area.y + area.height}, cv::Scalar(240, 240, 240), 1);
    cv::line(img, {x, area.y + area.height}, {x, area.y + area.height + 6}, cv::Scalar(60, 60, 60), 1);
    Text(img, PercentLabel(f), {x, area.y + area.height + 26}, 0.5, 1, cv::Scalar(30, 30, 30), 1);
  }
  cv::rectangle(img, area, cv::Scalar(60, 60, 60), 1);

  // Series.
  for (size_t s = 0; s < series.size(); ++s) {
    const cv::Scalar color = kColors[s % 10];
    std::vector<cv::Point> pts;
    for (size_t i = 0; i < fractions.size(); ++i) pts.emplace_back(px(fractions[i]), py(series[s].values[i]));
    cv::polylines(img, pts, false, color, 2, cv::LINE_AA);
    for (const auto& p : pts) DrawMarker(img, p, static_cast<int>(s), color);
  }

  // Legend, framed, to the right of the plot area.
  const int lx = area.x + area.width + 24;
  cv::rectangle(img, {lx - 10, area.y}, {W - 12, area.y + 40 + 26 * static_cast<int>(series.size())},
                cv::Scalar(200, 200, 200), 1);
  int ly = area.y + 22;
  Text(img, "pooling", {lx, ly}, 0.55, 1);
  ly += 8;
  for (size_t s = 0; s < series.size(); ++s) {
    ly += 26;
    const cv::Scalar color = kColors[s % 10];
    cv::line(img, {lx, ly - 5}, {lx + 36, ly - 5}, color, 2, cv::LINE_AA);
    DrawMarker(img, {lx + 18, ly - 5}, static_cast<int>(s), color);
    Text(img, series[s].label, {lx + 46, ly}, 0.5, 1);
  }

  // Titles and axis labels.
  Text(img, options.title, {W / 2, 36}, 0.8, 2, cv::Scalar(20, 20, 20), 1);
  if (!options.subtitle.empty()) Text(img, options.subtitle, {W / 2, 64}, 0.5, 1, cv::Scalar(80, 80, 80), 1);
  Text(img, options.x_label, {area.x + area.width / 2, H - 30}, 0.6, 1, cv::Scalar(30, 30, 30), 1);
  // Vertical y label: draw horizontally on a strip, then rotate.
  {
    int base = 0;
    const cv::Size size = cv::getTextSize(options.y_label, cv::FONT_HERSHEY_SIMPLEX, 0.6, 1, &base);
    cv::Mat strip(size.height + base + 8, size.width + 8, CV_8UC3, cv::Scalar(255, 255, 255));
    cv::putText(strip, options.y_label, {4, size.height + 4}, cv::FONT_HERSHEY_SIMPLEX, 0.6, cv::Scalar(30, 30, 30), 1,
                cv::LINE_AA);
    cv::Mat rotated;
    cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int x0 = 18, y0 = area.y + area.height / 2 - rotated.rows / 2;
    if (y0 >= 0 && y0 + rotated.rows <= H) rotated.copyTo(img(cv::Rect(x0, y0, rotated.cols, rotated.rows)));
  }
  app::WriteImage(path, img);
}

}  // namespace ddn::pointcloud
