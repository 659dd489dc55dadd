// apps/bilevel/plot.h: a PNG of an outer optimisation (OpenCV drawing, no plotting library).
//
// Left panel: the outer loss against the outer iteration. Right panel (when `curve` is given, i.e. one
// hyperparameter): the outer loss against θ on a log axis (the grid search or a sampled curve), the
// optimiser's iterates as dots and the answer as a ring.
#pragma once

#include <string>
#include <vector>

#include "bilevel/bilevel.h"

namespace ddn::bilevel {

struct PlotCurve {
  std::vector<double> values;  // θ, increasing
  std::vector<double> losses;
};

// Writes the plot to `path` (the format follows the extension, normally .png), atomically. Throws if the file
// cannot be written.
void PlotOptimization(const std::vector<IterationRecord>& history, const PlotCurve* curve, const std::string& title,
                      const std::string& loss_name, const std::string& theta_name, const std::string& path);

}  // namespace ddn::bilevel
