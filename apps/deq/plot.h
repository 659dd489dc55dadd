// apps/deq/plot.h: the ddn-deq figure, two panels drawn with OpenCV: test accuracy and peak training memory
// against depth (log₂ scale). Explicit networks are one line over their depths L; the DEQ is a star at its
// effective depth (mean forward iterations) with a dashed horizontal line at its value.
#pragma once

#include <string>
#include <vector>

namespace ddn::deq {

struct DepthPoint {
  double depth = 0;      // L, or the DEQ's mean forward iterations
  double accuracy = 0;   // in [0, 1]
  double memory_mb = 0;  // peak RSS increase while training
};

// Writes the figure atomically (app::WriteImage; format from the extension); throws InvalidInput if it cannot be
// encoded, ddn::Error if it cannot be written.
void WriteDepthPlot(const std::string& path, const std::vector<DepthPoint>& explicit_nets, const DepthPoint& deq,
                    const std::string& subtitle);

}  // namespace ddn::deq
