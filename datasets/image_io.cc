// Reading and writing grey images with OpenCV (datasets/image_io.h).
#include "datasets/image_io.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/files.h"
#include "ddn/params.h"

namespace ddn::datasets {

Image LoadImage(const std::string& path, int max_side) {
  cv::Mat m;
  try {
    m = cv::imread(path, cv::IMREAD_GRAYSCALE);
  } catch (const cv::Exception&) {
    m = cv::Mat();
  }
  if (m.empty())
    throw InvalidInput(EscapeForMessage(path) + ": cannot read the image (missing file or unknown format)");
  if (max_side > 0 && std::max(m.rows, m.cols) > max_side) {
    const double s = static_cast<double>(max_side) / std::max(m.rows, m.cols);
    cv::Mat small;
    cv::resize(m, small,
               cv::Size(std::max(1, static_cast<int>(std::lround(m.cols * s))),
                        std::max(1, static_cast<int>(std::lround(m.rows * s)))),
               0, 0, cv::INTER_AREA);
    m = small;
  }
  Image im;
  const size_t slash = path.find_last_of("/\\");
  im.name = path.substr(slash == std::string::npos ? 0 : slash + 1);
  const size_t dot = im.name.find_last_of('.');
  if (dot != std::string::npos && dot > 0) im.name = im.name.substr(0, dot);
  im.rows = m.rows;
  im.cols = m.cols;
  im.pixels.resize(static_cast<Eigen::Index>(m.rows) * m.cols);
  for (int i = 0; i < m.rows; ++i) {
    for (int j = 0; j < m.cols; ++j) im.pixels[static_cast<Eigen::Index>(i) * m.cols + j] = m.at<uint8_t>(i, j) / 255.0;
  }
  return im;
}

void SaveImage(const Image& image, const std::string& path) {
  cv::Mat m(image.rows, image.cols, CV_8UC1);
  for (int i = 0; i < image.rows; ++i) {
    for (int j = 0; j < image.cols; ++j) {
      const double v = std::clamp(image.pixels[static_cast<Eigen::Index>(i) * image.cols + j], 0.0, 1.0);
      m.at<uint8_t>(i, j) = static_cast<uint8_t>(std::lround(255.0 * v));
    }
  }
  std::vector<uchar> bytes;
  bool ok = false;
  try {
    ok = cv::imencode(FileExtension(path), m, bytes);
  } catch (const cv::Exception&) {
    ok = false;
  }
  if (!ok) throw InvalidInput(EscapeForMessage(path) + ": cannot encode the image");
  WriteFileAtomically(path, std::string(bytes.begin(), bytes.end()));  // never a half-written file
}

}  // namespace ddn::datasets
