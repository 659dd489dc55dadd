// datasets/image_io.h: grey images (datasets/image.h) from and to files, for `ddn bilevel tv-denoise`.
//
// OpenCV reads and writes the files, so these two functions live in ddn_datasets (built with the apps), not in
// ddn_data: the bi-level engine and its problems (bilevel/tv_denoise.h) need Eigen only, and a program that has
// its images in memory fills a datasets::Image itself (row-major, values in [0, 1]).
#pragma once

#include <string>

#include "datasets/image.h"

namespace ddn::datasets {

// Reads an image file as grey (OpenCV), scaled to [0, 1]; if max_side > 0 and the image is larger,
// downsamples it (area averaging) so that its longer side is max_side. Throws InvalidInput naming the file.
Image LoadImage(const std::string& path, int max_side = 0);
// Writes an image (values clipped to [0, 1]) as 8-bit grey; throws InvalidInput if it cannot.
void SaveImage(const Image& image, const std::string& path);

}  // namespace ddn::datasets
