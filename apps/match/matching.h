// apps/match/matching.h: keypoints, ground truth and match precision for ddn-match (OpenCV stays in the .cc).
//
// Keypoints are SIFT (OpenCV's features2d), the K strongest by detector response, with RootSIFT descriptors
// (Arandjelović & Zisserman 2012: L1-normalise, square root, so that the dot product of two descriptors is the
// Hellinger kernel and every descriptor has unit L2 norm). ORB is used only for the ratio-test baseline.
//
// A match (i, j) pairs keypoint i of image a with keypoint j of image b; it is correct when the true
// homography H (a → b) maps keypoint i within `kCorrectPixels` = 3 px of keypoint j. Precision = correct /
// matches.
//
// Training pairs: an opencv-doc image (never the Graffiti pair) and its warp by a random homography (rotation
// up to ±35°, scale 0.7–1.2, corners moved by up to 20 % of the size), keypoints detected in both, and the
// ground-truth correspondences: mutual nearest neighbours under H within 3 px.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ddn::match {

constexpr double kCorrectPixels = 3.0;

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Keypoints {
  RowMatrix xy;           // N × 2, pixel coordinates (x right, y down)
  RowMatrix descriptors;  // N × D (RootSIFT: D = 128, unit rows)
  int size() const { return static_cast<int>(xy.rows()); }
};

struct Match {
  int a = 0, b = 0;
};

// The Graffiti pair of opencv-doc: graf1.png, graf3.png and the homography H1to3p.xml (graf1 → graf3).
struct TestPair {
  std::string image_a, image_b;  // paths
  Eigen::Matrix3d homography;    // a → b
};
// Finds the pair in `folder` (or, when empty, $OPENCV_SAMPLES_DATA_PATH and Debian's opencv-doc folder);
// throws InvalidInput naming what is missing.
TestPair FindGraffiti(const std::string& folder);
// The folder FindGraffiti used (for the training images).
std::string DataFolder(const std::string& folder);

// The `count` strongest SIFT keypoints of an image file (all of them for count = 0), RootSIFT descriptors.
Keypoints DetectSift(const std::string& path, int count);

// Baselines on two images: Lowe's ratio test (nearest neighbour accepted when its distance is below `ratio`
// times the second nearest's), for given keypoints (Euclidean distance of descriptors).
std::vector<Match> RatioTest(const Keypoints& a, const Keypoints& b, double ratio);
// The same with OpenCV's ORB (Hamming distance) on `count` keypoints per image; fills the keypoints' xy.
std::vector<Match> OrbRatioTest(const std::string& path_a, const std::string& path_b, int count, double ratio,
                                Keypoints* a, Keypoints* b);

// Matches read off a soft assignment P (N_a × N_b, rows of mass ~1/N_a): mutual row/column maxima whose mass
// is at least `threshold` / max(N_a, N_b).
std::vector<Match> MutualMatches(const RowMatrix& plan, double threshold);
// The `count` mutual maxima of a plan holding the most mass (all of them if fewer): a read-out that compares the
// ranking of two plans at the same number of matches, whatever their calibration.
std::vector<Match> TopMutualMatches(const RowMatrix& plan, int count);

// Whether each match is correct under H (a → b).
std::vector<bool> Correct(const Keypoints& a, const Keypoints& b, const std::vector<Match>& matches,
                          const Eigen::Matrix3d& homography);
double Precision(const std::vector<bool>& correct);
// Keypoints of a with a keypoint of b within 3 px of their image under H (an upper bound on correct matches).
int Matchable(const Keypoints& a, const Keypoints& b, const Eigen::Matrix3d& homography);

struct TrainingPair {
  Keypoints a, b;            // exactly `keypoints` each
  std::vector<Match> truth;  // ground-truth correspondences
};
struct SyntheticOptions {
  int pairs = 200;      // training pairs to make
  int keypoints = 128;  // per image
  int max_side = 480;   // images are resized so that their longer side is at most this
  int min_truth = 12;   // pairs with fewer correspondences are redrawn
  uint64_t seed = 1;
};
// Training pairs from every image of the folder except the Graffiti ones. `progress(done, total)` is called
// after each pair.
std::vector<TrainingPair> MakeSyntheticPairs(const std::string& folder, const SyntheticOptions& options,
                                             const std::function<void(int, int)>& progress);

// A side-by-side picture of the two images with the matches drawn as lines, green if correct, red if not,
// one panel per method stacked vertically, each with a caption. Throws InvalidInput if it cannot write.
struct DrawnMethod {
  std::string caption;
  const Keypoints* a;
  const Keypoints* b;
  std::vector<Match> matches;
  std::vector<bool> correct;
};
void DrawMatches(const std::string& path, const TestPair& pair, const std::vector<DrawnMethod>& methods);

}  // namespace ddn::match
