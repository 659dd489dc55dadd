// bilevel/image_io.h: grey images from and to files, for the `ddn bilevel tv-denoise` tool.
//
// OpenCV reads and writes the files, so these two functions live in the tool's library (ddn_bilevel_app), not
// in ddn::bilevel: the bi-level engine and its problems (tv_denoise.h) need Eigen only, and a program that has
// its images in memory fills a bilevel::Image itself (row-major, values in [0, 1]).
#pragma once

#include <string>

#include "bilevel/tv_denoise.h"

namespace ddn::bilevel {

// Reads an image file as grey (OpenCV), scaled to [0, 1]; if max_side > 0 and the image is larger,
// downsamples it (area averaging) so that its longer side is max_side. Throws InvalidInput naming the file.
Image LoadImage(const std::string& path, int max_side = 0);
// Writes an image (values clipped to [0, 1]) as 8-bit grey; throws InvalidInput if it cannot.
void SaveImage(const Image& image, const std::string& path);

}  // namespace ddn::bilevel
