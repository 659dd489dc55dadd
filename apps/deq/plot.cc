#include "apps/deq/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "apps/common/app.h"
#include "ddn/error.h"

namespace ddn::deq {
namespace {

const cv::Scalar kExplicit(180, 119, 31), kDeq(40, 39, 214), kInk(30, 30, 30), kGrid(225, 225, 225);

void Text(cv::Mat& img, const std::string& s, cv::Point at, double scale, int align = 0, int thickness = 1,
          const cv::Scalar& color = kInk) {
  int base = 0;
  const cv::Size size = cv::getTextSize(s, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &base);
  if (align == 1) at.x -= size.width / 2;
  if (align == 2) at.x -= size.width;
  cv::putText(img, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv::LINE_AA);
}

void Star(cv::Mat& img, cv::Point c, const cv::Scalar& color) {
  std::vector<cv::Point> pts;
  for (int k = 0; k < 10; ++k) {
    const double r = k % 2 ? 4.5 : 11.0, a = -M_PI / 2 + k * M_PI / 5;
    pts.emplace_back(c.x + static_cast<int>(std::lround(r * std::cos(a))),
                     c.y + static_cast<int>(std::lround(r * std::sin(a))));
  }
  cv::fillPoly(img, std::vector<std::vector<cv::Point>>{pts}, color, cv::LINE_AA);
}

void DashedLine(cv::Mat& img, cv::Point a, cv::Point b, const cv::Scalar& color) {
  const double len = std::hypot(b.x - a.x, b.y - a.y);
  for (double t = 0; t < len; t += 14) {
    const double t1 = std::min(len, t + 8);
    cv::line(img, a + (b - a) * (t / len), a + (b - a) * (t1 / len), color, 2, cv::LINE_AA);
  }
}

// One panel: values of `get` against log₂ depth.
template <typename Get>
void Panel(cv::Mat& img, cv::Rect area, const std::string& title, const std::string& y_label, double y_lo, double y_hi,
           const std::vector<DepthPoint>& nets, const DepthPoint& deq, Get get, const char* fmt) {
  double d_lo = deq.depth, d_hi = deq.depth;
  for (const auto& p : nets) d_lo = std::min(d_lo, p.depth), d_hi = std::max(d_hi, p.depth);
  const double x_lo = std::log2(std::max(1.0, d_lo)) - 0.3, x_hi = std::log2(std::max(2.0, d_hi)) + 0.3;
  auto X = [&](double depth) {
    return area.x + static_cast<int>((std::log2(std::max(depth, 1e-3)) - x_lo) / (x_hi - x_lo) * area.width);
  };
  auto Y = [&](double v) { return area.y + area.height - static_cast<int>((v - y_lo) / (y_hi - y_lo) * area.height); };
  for (int t = 0; t <= 5; ++t) {
    const double v = y_lo + (y_hi - y_lo) * t / 5;
    cv::line(img, {area.x, Y(v)}, {area.x + area.width, Y(v)}, kGrid, 1);
    char s[32];
    std::snprintf(s, sizeof(s), fmt, v);
    Text(img, s, {area.x - 8, Y(v) + 5}, 0.45, 2);
  }
  for (int e = static_cast<int>(std::ceil(x_lo)); e <= static_cast<int>(std::floor(x_hi)); ++e) {
    const int x = X(std::pow(2.0, e));
    cv::line(img, {x, area.y}, {x, area.y + area.height}, kGrid, 1);
    Text(img, std::to_string(1 << std::max(e, 0)), {x, area.y + area.height + 20}, 0.45, 1);
  }
  cv::rectangle(img, area, kInk, 1);
  Text(img, title, {area.x + area.width / 2, area.y - 12}, 0.6, 1, 1);
  Text(img, "depth (layers / forward iterations, log scale)", {area.x + area.width / 2, area.y + area.height + 45}, 0.5,
       1);
  cv::Mat label(cv::Size(area.height, 24), img.type(), cv::Scalar(255, 255, 255));
  Text(label, y_label, {area.height / 2, 17}, 0.5, 1);
  cv::rotate(label, label, cv::ROTATE_90_COUNTERCLOCKWISE);
  label.copyTo(img(cv::Rect(area.x - 78, area.y, 24, area.height)));
  for (size_t i = 0; i + 1 < nets.size(); ++i) {
    cv::line(img, {X(nets[i].depth), Y(get(nets[i]))}, {X(nets[i + 1].depth), Y(get(nets[i + 1]))}, kExplicit, 2,
             cv::LINE_AA);
  }
  for (const auto& p : nets) cv::circle(img, {X(p.depth), Y(get(p))}, 6, kExplicit, cv::FILLED, cv::LINE_AA);
  DashedLine(img, {area.x, Y(get(deq))}, {area.x + area.width, Y(get(deq))}, kDeq);
  Star(img, {X(deq.depth), Y(get(deq))}, kDeq);
}

}  // namespace

void WriteDepthPlot(const std::string& path, const std::vector<DepthPoint>& nets, const DepthPoint& deq,
                    const std::string& subtitle) {
  cv::Mat img(620, 1240, CV_8UC3, cv::Scalar(255, 255, 255));
  Text(img, "Deep equilibrium vs explicit weight-tied networks on digits", {620, 34}, 0.8, 1, 2);
  Text(img, subtitle, {620, 60}, 0.45, 1);
  double acc_lo = deq.accuracy, acc_hi = deq.accuracy, mem_hi = deq.memory_mb;
  for (const auto& p : nets) {
    acc_lo = std::min(acc_lo, p.accuracy), acc_hi = std::max(acc_hi, p.accuracy);
    mem_hi = std::max(mem_hi, p.memory_mb);
  }
  acc_lo = std::max(0.0, std::floor(acc_lo * 20 - 1) / 20), acc_hi = std::min(1.0, std::ceil(acc_hi * 20 + 0.5) / 20);
  if (acc_hi <= acc_lo) acc_hi = acc_lo + 0.05;
  mem_hi = std::max(1.0, std::ceil(mem_hi * 1.15));
  Panel(
      img, cv::Rect(110, 110, 470, 400), "test accuracy", "test accuracy (%)", 100 * acc_lo, 100 * acc_hi, nets, deq,
      [](const DepthPoint& p) { return 100 * p.accuracy; }, "%.0f");
  Panel(
      img, cv::Rect(730, 110, 470, 400), "peak memory while training", "peak RSS increase (MB)", 0.0, mem_hi, nets, deq,
      [](const DepthPoint& p) { return p.memory_mb; }, "%.1f");
  // Legend.
  cv::circle(img, {150, 594}, 6, kExplicit, cv::FILLED, cv::LINE_AA);
  Text(img, "explicit weight-tied network of depth L (backprop through every layer)", {164, 599}, 0.5);
  Star(img, {760, 594}, kDeq);
  Text(img, "DEQ (implicit backward) at its mean forward iterations", {776, 599}, 0.5);
  app::WriteImage(path, img);
}

}  // namespace ddn::deq
