#include "apps/bilevel/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/files.h"
#include "ddn/params.h"

namespace ddn::bilevel {
namespace {

const cv::Scalar kBlack(0, 0, 0), kGrey(200, 200, 200), kBlue(180, 90, 20), kRed(30, 30, 210);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

std::string Format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// One panel: maps data (x, y) into the rectangle `box` and draws axes with 5 ticks each.
struct Panel {
  cv::Rect box;
  double x0, x1, y0, y1;
  cv::Point Map(double x, double y) const {
    const double u = (x1 > x0) ? (x - x0) / (x1 - x0) : 0.5;
    const double v = std::clamp((y1 > y0) ? (y - y0) / (y1 - y0) : 0.5, 0.0, 1.0);  // clip to the box
    return {box.x + static_cast<int>(std::lround(u * box.width)),
            box.y + box.height - static_cast<int>(std::lround(v * box.height))};
  }
  void Axes(cv::Mat* img, const std::string& xlabel, const std::string& ylabel, bool log_x) const {
    for (int k = 0; k <= 4; ++k) {
      const double x = x0 + (x1 - x0) * k / 4, y = y0 + (y1 - y0) * k / 4;
      const cv::Point px = Map(x, y0), py = Map(x0, y);
      cv::line(*img, {px.x, box.y}, {px.x, box.y + box.height}, kGrey, 1);
      cv::line(*img, {box.x, py.y}, {box.x + box.width, py.y}, kGrey, 1);
      cv::putText(*img, log_x ? Format(std::pow(10.0, x)) : Format(x), {px.x - 18, box.y + box.height + 16}, kFont,
                  0.38, kBlack, 1, cv::LINE_AA);
      cv::putText(*img, Format(y), {box.x - 62, py.y + 4}, kFont, 0.38, kBlack, 1, cv::LINE_AA);
    }
    cv::rectangle(*img, box, kBlack, 1);
    cv::putText(*img, xlabel, {box.x + box.width / 2 - 40, box.y + box.height + 36}, kFont, 0.45, kBlack, 1,
                cv::LINE_AA);
    cv::putText(*img, ylabel, {box.x, box.y - 8}, kFont, 0.45, kBlack, 1, cv::LINE_AA);
  }
};

void Range(const std::vector<double>& v, double* lo, double* hi) {
  *lo = *std::min_element(v.begin(), v.end());
  *hi = *std::max_element(v.begin(), v.end());
  const double pad = 0.05 * std::max(*hi - *lo, 1e-12 * std::max(1.0, std::abs(*hi)));
  *lo -= pad;
  *hi += pad;
}

}  // namespace

void PlotOptimization(const std::vector<IterationRecord>& history, const PlotCurve* curve, const std::string& title,
                      const std::string& loss_name, const std::string& theta_name, const std::string& path) {
  const int panel_w = 420, panel_h = 300, margin_l = 80, margin_t = 60, margin_b = 60, gap = 100;
  const bool two = curve && !curve->values.empty();
  const int width = margin_l + panel_w + (two ? gap + panel_w : 0) + 30;
  const int height = margin_t + panel_h + margin_b;
  cv::Mat img(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(img, title, {margin_l, 24}, kFont, 0.55, kBlack, 1, cv::LINE_AA);

  if (!history.empty()) {
    std::vector<double> losses;
    for (const auto& h : history) losses.push_back(h.loss);
    // Integer ticks: the axis ends at a multiple of 4 iterations.
    const double last = 4.0 * std::ceil(std::max(1, history.back().iteration) / 4.0);
    Panel p{{margin_l, margin_t, panel_w, panel_h}, 0, last, 0, 0};
    Range(losses, &p.y0, &p.y1);
    p.Axes(&img, "outer iteration", loss_name, false);
    for (size_t i = 0; i < history.size(); ++i) {
      const cv::Point q = p.Map(history[i].iteration, history[i].loss);
      if (i > 0) cv::line(img, p.Map(history[i - 1].iteration, history[i - 1].loss), q, kBlue, 2, cv::LINE_AA);
      cv::circle(img, q, 3, kBlue, cv::FILLED, cv::LINE_AA);
    }
  }
  if (two) {
    std::vector<double> logs, losses = curve->losses;
    for (double v : curve->values) logs.push_back(std::log10(v));
    for (const auto& h : history) {
      if (h.theta.size() == 1) {
        logs.push_back(std::log10(h.theta[0]));
        losses.push_back(h.loss);
      }
    }
    Panel p{{margin_l + panel_w + gap, margin_t, panel_w, panel_h}, 0, 0, 0, 0};
    p.x0 = *std::min_element(logs.begin(), logs.end());
    p.x1 = *std::max_element(logs.begin(), logs.end());
    Range(losses, &p.y0, &p.y1);
    // Zoom on the region the optimiser visited when the curve rises far above it (clipped at the top).
    double visited = -std::numeric_limits<double>::infinity(), lowest = std::numeric_limits<double>::infinity();
    for (const auto& h : history) visited = std::max(visited, h.loss);
    for (double l : losses) lowest = std::min(lowest, l);
    if (std::isfinite(visited) && visited > lowest) {
      const double cap = lowest + 3.0 * (visited - lowest);
      if (cap < p.y1) {
        p.y0 = lowest - 0.05 * (cap - lowest);
        p.y1 = cap;
      }
    }
    p.Axes(&img, theta_name + " (log scale)", loss_name, true);
    for (size_t i = 1; i < curve->values.size(); ++i) {
      cv::line(img, p.Map(std::log10(curve->values[i - 1]), curve->losses[i - 1]),
               p.Map(std::log10(curve->values[i]), curve->losses[i]), kBlack, 1, cv::LINE_AA);
    }
    for (const auto& h : history) {
      if (h.theta.size() == 1) cv::circle(img, p.Map(std::log10(h.theta[0]), h.loss), 3, kRed, cv::FILLED, cv::LINE_AA);
    }
    if (!history.empty() && history.back().theta.size() == 1) {
      cv::circle(img, p.Map(std::log10(history.back().theta[0]), history.back().loss), 8, kRed, 2, cv::LINE_AA);
    }
  }
  std::vector<uchar> bytes;
  bool ok = false;
  try {
    ok = cv::imencode(FileExtension(path), img, bytes);
  } catch (const cv::Exception&) {
    ok = false;
  }
  if (!ok) throw InvalidInput(EscapeForMessage(path) + ": cannot encode the plot");
  WriteFileAtomically(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace ddn::bilevel
