// datasets/point_clouds.h: 2-D point clouds from handwritten digits, with seeded outlier injection.
//
// The robust-pooling experiment of the DDN paper (Gould, Hartley & Campbell, TPAMI 2022, §6.1) classifies
// ModelNet40 point clouds with PointNet and replaces some points by outliers at test time. Here the clouds
// are made from real handwritten digits that a Debian machine has: OpenCV's samples/data/digits.png
// (package opencv-doc; 5000 MNIST-style digits of 20×20 pixels, 50 rows × 100 columns of cells, 500 per
// class, classes 0–9 in blocks of 5 rows).
//
// A cloud is built from one digit image as follows:
//   1. ink pixels: those with intensity ≥ threshold; pixel (row r, column c) becomes the point
//      (c + ½, −(r + ½)) (x to the right, y up), its centre;
//   2. centring and scaling: subtract the mean of the ink points, divide by the largest distance from it,
//      so every cloud lies in the unit disc and touches its boundary;
//   3. sampling: N points drawn from the ink points, without replacement when there are at least N of them,
//      with replacement otherwise (seeded, per cloud).
// Outliers (AddOutliers): in each cloud, round(fraction · N) points chosen at random are replaced by points
// uniform in the unit disc (radius √u, angle 2πu'), seeded.
//
// Clouds are stored as one Tensor of shape (M, N, 2), labels as ints. Nothing here depends on the data
// file being present: MakeSyntheticDigits draws simple stroke digits for tests and smoke runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddn/tensor.h"

namespace ddn::datasets {

// Grayscale images of equal size with class labels.
struct ImageSet {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;  // count × height × width, row-major, 0 = background
  std::vector<int> labels;      // count
  int num_classes = 0;

  int size() const { return static_cast<int>(labels.size()); }
  const uint8_t* image(int i) const { return pixels.data() + static_cast<size_t>(i) * height * width; }
};

// Where digits.png is: `hint` if not empty (a file, or a folder containing digits.png[.gz]), else the
// environment variable DDN_DIGITS, else the standard install folders of Debian's opencv-doc package and
// OpenCV's samples (OPENCV_SAMPLES_DATA_PATH). Both digits.png and digits.png.gz are accepted. Throws
// InvalidInput listing the places searched when none exists.
std::string FindOpenCvDigits(const std::string& hint = "");

// Loads OpenCV's digits.png (or .png.gz): 5000 images of 20×20, labels 0–9. Throws InvalidInput if the
// file cannot be read or has the wrong size.
ImageSet LoadOpenCvDigits(const std::string& path);

// Simple synthetic digits (noisy strokes: 0 ring, 1 bar, 7, ...), `per_class` of each of 10 classes, 20×20;
// deterministic in `seed`. For tests and smoke runs without the data file.
ImageSet MakeSyntheticDigits(int per_class, uint64_t seed);

// A deterministic stratified split: `test_per_class` images of each class go to the test set, the rest to
// the training set; both lists are shuffled with `seed`.
void SplitTrainTest(const ImageSet& images, int test_per_class, uint64_t seed, std::vector<int>* train,
                    std::vector<int>* test);

struct CloudOptions {
  int num_points = 64;  // N points per cloud
  int threshold = 128;  // ink: intensity ≥ threshold (0–255)
  uint64_t seed = 1;    // sampling of points
};

struct PointClouds {
  Tensor points;            // (M, N, 2), every point in the unit disc
  std::vector<int> labels;  // M
  int num_classes = 0;
};

// Clouds from the images `indices` (all images if empty), in that order. Throws InvalidInput if an image
// has no ink pixel.
PointClouds MakePointClouds(const ImageSet& images, const std::vector<int>& indices, const CloudOptions& options);

// Replaces round(fraction · N) points of every cloud by points uniform in the unit disc. fraction ∈ [0, 1].
void AddOutliers(double fraction, uint64_t seed, Tensor* points);

}  // namespace ddn::datasets
