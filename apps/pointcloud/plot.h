// apps/pointcloud/plot.h: a line plot of test accuracy against outlier fraction, drawn with OpenCV.
//
// The x axis uses a square-root scale (x ↦ √x), so that the small fractions where max pooling collapses
// (0 → 1 %) are as readable as the large ones; ticks sit at the measured fractions and are labelled in
// percent. The y axis is accuracy in percent, 0–100, with a light grid. One coloured line with markers per
// series, a legend on the right, a title and axis labels. OpenCV stays inside plot.cc.
#pragma once

#include <string>
#include <vector>

namespace ddn::pointcloud {

struct PlotSeries {
  std::string label;           // legend text
  std::vector<double> values;  // accuracy in [0, 1], one per fraction
};

struct PlotOptions {
  std::string title = "Test accuracy vs outliers";
  std::string subtitle;  // smaller second line under the title (the setting)
  std::string x_label = "outlier fraction at test time (square-root scale)";
  std::string y_label = "test accuracy (%)";
  int width = 1100;  // pixels
  int height = 680;
};

// Writes the plot (format from the extension) atomically (app::WriteImage; check the path before the work with
// app::CheckImageOutput); throws InvalidInput if the sizes
// disagree, ddn::Error if the file cannot be written.
void WriteAccuracyPlot(const std::string& path, const std::vector<double>& fractions,
                       const std::vector<PlotSeries>& series, const PlotOptions& options = {});

}  // namespace ddn::pointcloud
