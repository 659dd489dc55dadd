// apps/normals/render.h: a PNG of one shape's points coloured by the angle error of each method's normals.
//
// One panel per method, side by side: the points projected orthographically (x to the right, y up, viewed from +z;
// farther points drawn first so nearer ones cover them), each a filled disc coloured by its error on the turbo
// colour map from 0° (dark blue) to `max_error_deg` and above (dark red); a colour bar at the bottom. OpenCV stays
// in render.cc.
#pragma once

#include <string>
#include <vector>

namespace ddn::normals {

struct ErrorPanel {
  std::string title;              // e.g. "PCA: RMS 12.3 deg"
  std::vector<double> error_deg;  // one per point
};

// `points` is V × 3 (V = every panel's error_deg.size()). Throws InvalidInput if the file cannot be written.
void RenderErrorPanels(const std::string& path, const std::vector<double>& points,
                       const std::vector<ErrorPanel>& panels, const std::string& title, double max_error_deg = 30.0);

}  // namespace ddn::normals
