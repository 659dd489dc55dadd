#include "datasets/point_clouds.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn::datasets {
namespace {

constexpr int kDigitSize = 20;
constexpr int kCellRows = 50, kCellCols = 100, kClasses = 10;

bool IsFile(const std::string& path) {
  std::ifstream f(path);
  return static_cast<bool>(f);
}

std::vector<unsigned char> ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InvalidInput("cannot open '" + path + "'");
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<unsigned char> Gunzip(const std::vector<unsigned char>& in, const std::string& path) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw InvalidInput("zlib failed to start on '" + path + "'");
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  std::vector<unsigned char> out;
  unsigned char chunk[1 << 16];
  int ret = Z_OK;
  while (ret != Z_STREAM_END) {
    z.next_out = chunk;
    z.avail_out = sizeof(chunk);
    ret = inflate(&z, Z_NO_FLUSH);
    if (ret != Z_OK && ret != Z_STREAM_END) {
      inflateEnd(&z);
      throw InvalidInput("'" + path + "' is not a valid gzip file");
    }
    out.insert(out.end(), chunk, chunk + (sizeof(chunk) - z.avail_out));
  }
  inflateEnd(&z);
  return out;
}

}  // namespace

std::string FindOpenCvDigits(const std::string& hint) {
  std::vector<std::string> folders;
  if (!hint.empty()) {
    if (IsFile(hint) && hint.size() >= 4 &&
        (hint.compare(hint.size() - 4, 4, ".png") == 0 || hint.compare(hint.size() - 3, 3, ".gz") == 0)) {
      return hint;
    }
    folders.push_back(hint);
  } else {
    if (const char* env = std::getenv("DDN_DIGITS")) {
      if (IsFile(env)) return env;
      folders.push_back(env);
    }
    if (const char* env = std::getenv("OPENCV_SAMPLES_DATA_PATH")) folders.push_back(env);
    // Debian's opencv-doc, and OpenCV's own install layout.
    folders.push_back("/usr/share/doc/opencv-doc/examples/data");
    folders.push_back("/usr/share/opencv4/samples/data");
    folders.push_back("/usr/local/share/opencv4/samples/data");
  }
  std::string searched;
  for (const auto& folder : folders) {
    for (const char* name : {"digits.png", "digits.png.gz"}) {
      const std::string path = folder + "/" + name;
      if (IsFile(path)) return path;
      searched += (searched.empty() ? "" : ", ") + path;
    }
  }
  throw InvalidInput("OpenCV's digits.png not found (searched " + searched +
                     "); install Debian's opencv-doc package or pass its path with --data");
}

ImageSet LoadOpenCvDigits(const std::string& path) {
  std::vector<unsigned char> bytes = ReadBytes(path);
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) bytes = Gunzip(bytes, path);
  cv::Mat image = cv::imdecode(bytes, cv::IMREAD_GRAYSCALE);
  if (image.empty()) throw InvalidInput("'" + path + "' is not a readable image");
  if (image.rows != kCellRows * kDigitSize || image.cols != kCellCols * kDigitSize) {
    throw InvalidInput("'" + path + "' is " + std::to_string(image.cols) + "x" + std::to_string(image.rows) +
                       " pixels, not OpenCV's 2000x1000 digits.png");
  }
  ImageSet set;
  set.height = set.width = kDigitSize;
  set.num_classes = kClasses;
  set.pixels.reserve(static_cast<size_t>(kCellRows) * kCellCols * kDigitSize * kDigitSize);
  for (int cr = 0; cr < kCellRows; ++cr) {
    for (int cc = 0; cc < kCellCols; ++cc) {
      for (int r = 0; r < kDigitSize; ++r) {
        const uint8_t* row = image.ptr<uint8_t>(cr * kDigitSize + r) + cc * kDigitSize;
        set.pixels.insert(set.pixels.end(), row, row + kDigitSize);
      }
      set.labels.push_back(cr / (kCellRows / kClasses));
    }
  }
  return set;
}

ImageSet MakeSyntheticDigits(int per_class, uint64_t seed) {
  if (per_class < 1) throw InvalidInput("synthetic digits: per_class must be >= 1");
  ImageSet set;
  set.height = set.width = kDigitSize;
  set.num_classes = kClasses;
  Rng rng(seed);
  auto jitter = [&](double x, double y) {
    return cv::Point(static_cast<int>(std::lround(x + rng.Uniform(-1.5, 1.5))),
                     static_cast<int>(std::lround(y + rng.Uniform(-1.5, 1.5))));
  };
  for (int k = 0; k < kClasses; ++k) {
    for (int i = 0; i < per_class; ++i) {
      cv::Mat m = cv::Mat::zeros(kDigitSize, kDigitSize, CV_8U);
      const cv::Scalar ink(255);
      const int t = 1 + static_cast<int>(rng.Below(2));
      switch (k) {
        case 0:
          cv::ellipse(m, jitter(10, 10), cv::Size(5, 7), 0, 0, 360, ink, t);
          break;
        case 1:
          cv::line(m, jitter(10, 3), jitter(10, 17), ink, t);
          break;
        case 2:
          cv::line(m, jitter(3, 10), jitter(17, 10), ink, t);
          break;
        case 3:
          cv::line(m, jitter(4, 16), jitter(16, 4), ink, t);
          break;
        case 4:
          cv::line(m, jitter(4, 4), jitter(16, 16), ink, t);
          break;
        case 5:
          cv::line(m, jitter(10, 3), jitter(10, 17), ink, t);
          cv::line(m, jitter(3, 10), jitter(17, 10), ink, t);
          break;
        case 6:
          cv::line(m, jitter(4, 4), jitter(16, 16), ink, t);
          cv::line(m, jitter(4, 16), jitter(16, 4), ink, t);
          break;
        case 7:
          cv::line(m, jitter(4, 4), jitter(16, 4), ink, t);
          cv::line(m, jitter(16, 4), jitter(8, 17), ink, t);
          break;
        case 8:
          cv::circle(m, jitter(10, 6), 3, ink, t);
          cv::circle(m, jitter(10, 14), 3, ink, t);
          break;
        default:
          cv::line(m, jitter(5, 3), jitter(5, 16), ink, t);
          cv::line(m, jitter(5, 16), jitter(16, 16), ink, t);
          break;
      }
      set.pixels.insert(set.pixels.end(), m.datastart, m.dataend);
      set.labels.push_back(k);
    }
  }
  return set;
}

void SplitTrainTest(const ImageSet& images, int test_per_class, uint64_t seed, std::vector<int>* train,
                    std::vector<int>* test) {
  if (test_per_class < 0) throw InvalidInput("test_per_class must be >= 0");
  train->clear();
  test->clear();
  std::vector<int> taken(images.num_classes, 0);
  std::vector<int> order(images.size());
  for (int i = 0; i < images.size(); ++i) order[i] = i;
  Rng rng(seed);
  rng.Shuffle(&order);
  for (int i : order) {
    int& t = taken.at(images.labels[i]);
    if (t < test_per_class) {
      ++t;
      test->push_back(i);
    } else {
      train->push_back(i);
    }
  }
}

PointClouds MakePointClouds(const ImageSet& images, const std::vector<int>& indices, const CloudOptions& options) {
  if (options.num_points < 1) throw InvalidInput("clouds need at least one point (num_points)");
  std::vector<int> which = indices;
  if (which.empty())
    for (int i = 0; i < images.size(); ++i) which.push_back(i);
  const int64_t M = static_cast<int64_t>(which.size()), N = options.num_points;
  PointClouds clouds;
  clouds.points = Tensor({M, N, 2});
  clouds.num_classes = images.num_classes;
  Rng rng(options.seed);
  std::vector<double> xs, ys;
  std::vector<int> pick;
  for (int64_t m = 0; m < M; ++m) {
    const int index = which[m];
    if (index < 0 || index >= images.size())
      throw InvalidInput("image index " + std::to_string(index) + " out of range");
    const uint8_t* img = images.image(index);
    xs.clear();
    ys.clear();
    for (int r = 0; r < images.height; ++r)
      for (int c = 0; c < images.width; ++c)
        if (img[r * images.width + c] >= options.threshold) {
          xs.push_back(c + 0.5);
          ys.push_back(-(r + 0.5));
        }
    const int64_t ink = static_cast<int64_t>(xs.size());
    if (ink == 0)
      throw InvalidInput("image " + std::to_string(index) + " has no ink pixel at threshold " +
                         std::to_string(options.threshold));
    double mx = 0, my = 0;
    for (int64_t i = 0; i < ink; ++i) {
      mx += xs[i] / ink;
      my += ys[i] / ink;
    }
    double radius = 0;
    for (int64_t i = 0; i < ink; ++i) radius = std::max(radius, std::hypot(xs[i] - mx, ys[i] - my));
    if (radius == 0) radius = 1;  // a single ink pixel: the cloud is the origin
    pick.resize(ink);
    for (int64_t i = 0; i < ink; ++i) pick[i] = static_cast<int>(i);
    if (ink >= N) {
      // Partial Fisher–Yates: the first N of a random permutation.
      for (int64_t i = 0; i < N; ++i) std::swap(pick[i], pick[i + rng.Below(ink - i)]);
    }
    double* out = clouds.points.data() + m * N * 2;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t i = ink >= N ? pick[n] : static_cast<int64_t>(rng.Below(ink));
      out[2 * n] = (xs[i] - mx) / radius;
      out[2 * n + 1] = (ys[i] - my) / radius;
    }
    clouds.labels.push_back(images.labels[index]);
  }
  return clouds;
}

void AddOutliers(double fraction, uint64_t seed, Tensor* points) {
  if (!(fraction >= 0 && fraction <= 1)) throw InvalidInput("outlier fraction must be in [0, 1]");
  if (points->rank() != 3 || points->dim(2) != 2) {
    throw InvalidInput("outliers need clouds of shape (M, N, 2), got " + ShapeString(points->shape()));
  }
  const int64_t M = points->dim(0), N = points->dim(1);
  const int64_t count = static_cast<int64_t>(std::lround(fraction * N));
  if (count == 0) return;
  Rng rng(seed);
  std::vector<int64_t> order(N);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) order[n] = n;
    for (int64_t i = 0; i < count; ++i) std::swap(order[i], order[i + rng.Below(N - i)]);
    double* cloud = points->data() + m * N * 2;
    for (int64_t i = 0; i < count; ++i) {
      const double r = std::sqrt(rng.Uniform()), angle = 2 * M_PI * rng.Uniform();
      cloud[2 * order[i]] = r * std::cos(angle);
      cloud[2 * order[i] + 1] = r * std::sin(angle);
    }
  }
}

}  // namespace ddn::datasets
