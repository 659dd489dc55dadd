// apps/pose/draw.h: the demo's figure: test photos with the board's axes drawn by each method's pose.
//
// One row per photo, one tile per method. Each tile is the photo as taken with the corrupted corners (green:
// correct, red: displaced, with a line to where the corner really is), the board's axes from the pose of the
// clean corners in thin grey, and the method's axes (X red, Y green, Z blue, three squares long, drawn through the
// camera's distortion) on top; the title gives the method and its errors. In the learned-weights tile a corner's
// dot grows with its weight. OpenCV stays in draw.cc.
#pragma once

#include <string>
#include <vector>

#include "apps/pose/chessboard.h"

namespace ddn::pose {

struct Tile {
  std::string title;
  Pose pose{};
  bool valid = false;           // false: the method gave no pose
  std::vector<double> weights;  // optional, 54 values in [0, 1]: dot sizes
};

// rows[r] draws samples[r] (of views[samples[r].view]) with rows[r].size() tiles. Throws InvalidInput if the PNG
// cannot be written.
void WritePoseFigure(const std::string& path, const std::string& caption, const std::vector<View>& views,
                     const std::vector<Sample>& samples, const std::vector<std::vector<Tile>>& rows,
                     const Intrinsics& K);

}  // namespace ddn::pose
