#include "apps/match/matching.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "apps/common/app.h"
#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn::match {
namespace fs = std::filesystem;
namespace {

Eigen::Vector2d Apply(const Eigen::Matrix3d& h, double x, double y) {
  const Eigen::Vector3d p = h * Eigen::Vector3d(x, y, 1.0);
  return p.head<2>() / p[2];
}

cv::Mat ReadGray(const std::string& path) {
  cv::Mat image = cv::imread(path, cv::IMREAD_GRAYSCALE);
  if (image.empty()) throw InvalidInput("cannot read image '" + path + "'");
  return image;
}

// RootSIFT rows from OpenCV's SIFT descriptors, ordered as `order`.
Keypoints FromSift(const std::vector<cv::KeyPoint>& kps, const cv::Mat& desc, const std::vector<int>& order) {
  Keypoints k;
  k.xy.resize(static_cast<int64_t>(order.size()), 2);
  k.descriptors.resize(static_cast<int64_t>(order.size()), desc.cols);
  for (size_t r = 0; r < order.size(); ++r) {
    const int i = order[r];
    k.xy(r, 0) = kps[i].pt.x;
    k.xy(r, 1) = kps[i].pt.y;
    double l1 = 0;
    for (int c = 0; c < desc.cols; ++c) l1 += std::abs(desc.at<float>(i, c));
    for (int c = 0; c < desc.cols; ++c)
      k.descriptors(r, c) = std::sqrt(std::abs(desc.at<float>(i, c)) / std::max(l1, 1e-12));
  }
  return k;
}

Keypoints Sift(const cv::Mat& image, int count) {
  cv::Ptr<cv::SIFT> sift = cv::SIFT::create();
  std::vector<cv::KeyPoint> kps;
  cv::Mat desc;
  sift->detectAndCompute(image, cv::noArray(), kps, desc);
  std::vector<int> order(kps.size());
  std::iota(order.begin(), order.end(), 0);
  // Strongest first; ties by position so that the order does not depend on the detector's internals.
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return kps[x].response > kps[y].response; });
  if (count > 0 && static_cast<int>(order.size()) > count) order.resize(count);
  return FromSift(kps, desc, order);
}

}  // namespace

std::string DataFolder(const std::string& folder) {
  std::vector<std::string> candidates;
  if (!folder.empty()) {
    candidates.push_back(folder);
  } else {
    if (const char* env = std::getenv("OPENCV_SAMPLES_DATA_PATH")) candidates.push_back(env);
    candidates.push_back("/usr/share/doc/opencv-doc/examples/data");  // Debian's opencv-doc
  }
  for (const auto& c : candidates)
    if (fs::exists(fs::path(c) / "graf1.png") && fs::exists(fs::path(c) / "graf3.png") &&
        fs::exists(fs::path(c) / "H1to3p.xml"))
      return c;
  throw InvalidInput("no folder with graf1.png, graf3.png and H1to3p.xml (tried " +
                     (candidates.empty() ? std::string("nothing") : candidates.front()) +
                     (candidates.size() > 1 ? " and others" : "") +
                     "); install Debian's opencv-doc package or pass its data folder with --data");
}

TestPair FindGraffiti(const std::string& folder) {
  const std::string dir = DataFolder(folder);
  TestPair pair;
  pair.image_a = (fs::path(dir) / "graf1.png").string();
  pair.image_b = (fs::path(dir) / "graf3.png").string();
  cv::FileStorage storage((fs::path(dir) / "H1to3p.xml").string(), cv::FileStorage::READ);
  cv::Mat h;
  storage["H13"] >> h;
  if (h.rows != 3 || h.cols != 3) throw InvalidInput("H1to3p.xml holds no 3x3 matrix H13");
  h.convertTo(h, CV_64F);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) pair.homography(r, c) = h.at<double>(r, c);
  return pair;
}

Keypoints DetectSift(const std::string& path, int count) {
  return Sift(ReadGray(path), count);
}

std::vector<Match> RatioTest(const Keypoints& a, const Keypoints& b, double ratio) {
  std::vector<Match> matches;
  if (b.size() < 2) return matches;
  // ‖x − y‖² = ‖x‖² + ‖y‖² − 2 x·y for all pairs at once.
  const RowMatrix dots = a.descriptors * b.descriptors.transpose();
  const Eigen::VectorXd na = a.descriptors.rowwise().squaredNorm(), nb = b.descriptors.rowwise().squaredNorm();
  for (int i = 0; i < a.size(); ++i) {
    double best = INFINITY, second = INFINITY;
    int arg = -1;
    for (int j = 0; j < b.size(); ++j) {
      const double d = std::sqrt(std::max(0.0, na[i] + nb[j] - 2 * dots(i, j)));
      if (d < best) {
        second = best;
        best = d;
        arg = j;
      } else if (d < second) {
        second = d;
      }
    }
    if (best < ratio * second) matches.push_back({i, arg});
  }
  return matches;
}

std::vector<Match> OrbRatioTest(const std::string& path_a, const std::string& path_b, int count, double ratio,
                                Keypoints* a, Keypoints* b) {
  cv::Ptr<cv::ORB> orb = cv::ORB::create(count);
  std::vector<cv::KeyPoint> ka, kb;
  cv::Mat da, db;
  orb->detectAndCompute(ReadGray(path_a), cv::noArray(), ka, da);
  orb->detectAndCompute(ReadGray(path_b), cv::noArray(), kb, db);
  auto fill = [](const std::vector<cv::KeyPoint>& kps, Keypoints* k) {
    k->xy.resize(static_cast<int64_t>(kps.size()), 2);
    k->descriptors.resize(0, 0);
    for (size_t i = 0; i < kps.size(); ++i) k->xy(i, 0) = kps[i].pt.x, k->xy(i, 1) = kps[i].pt.y;
  };
  fill(ka, a);
  fill(kb, b);
  std::vector<Match> matches;
  if (da.empty() || db.rows < 2) return matches;
  cv::BFMatcher matcher(cv::NORM_HAMMING);
  std::vector<std::vector<cv::DMatch>> knn;
  matcher.knnMatch(da, db, knn, 2);
  for (const auto& m : knn)
    if (m.size() == 2 && m[0].distance < ratio * m[1].distance) matches.push_back({m[0].queryIdx, m[0].trainIdx});
  return matches;
}

std::vector<Match> MutualMatches(const RowMatrix& plan, double threshold) {
  const int64_t n = plan.rows(), m = plan.cols();
  std::vector<int64_t> row_best(n), col_best(m);
  for (int64_t i = 0; i < n; ++i) plan.row(i).maxCoeff(&row_best[i]);
  for (int64_t j = 0; j < m; ++j) plan.col(j).maxCoeff(&col_best[j]);
  const double floor = threshold / static_cast<double>(std::max(n, m));
  std::vector<Match> matches;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = row_best[i];
    if (col_best[j] == i && plan(i, j) >= floor) matches.push_back({static_cast<int>(i), static_cast<int>(j)});
  }
  return matches;
}

std::vector<Match> TopMutualMatches(const RowMatrix& plan, int count) {
  std::vector<Match> all = MutualMatches(plan, 0.0);
  std::stable_sort(all.begin(), all.end(),
                   [&](const Match& x, const Match& y) { return plan(x.a, x.b) > plan(y.a, y.b); });
  if (static_cast<int>(all.size()) > count) all.resize(count);
  return all;
}

std::vector<bool> Correct(const Keypoints& a, const Keypoints& b, const std::vector<Match>& matches,
                          const Eigen::Matrix3d& homography) {
  std::vector<bool> ok;
  for (const Match& m : matches) {
    const Eigen::Vector2d p = Apply(homography, a.xy(m.a, 0), a.xy(m.a, 1));
    ok.push_back((p - Eigen::Vector2d(b.xy(m.b, 0), b.xy(m.b, 1))).norm() <= kCorrectPixels);
  }
  return ok;
}

double Precision(const std::vector<bool>& correct) {
  if (correct.empty()) return 0.0;
  return static_cast<double>(std::count(correct.begin(), correct.end(), true)) / static_cast<double>(correct.size());
}

int Matchable(const Keypoints& a, const Keypoints& b, const Eigen::Matrix3d& homography) {
  int count = 0;
  for (int i = 0; i < a.size(); ++i) {
    const Eigen::Vector2d p = Apply(homography, a.xy(i, 0), a.xy(i, 1));
    for (int j = 0; j < b.size(); ++j) {
      if ((p - Eigen::Vector2d(b.xy(j, 0), b.xy(j, 1))).norm() <= kCorrectPixels) {
        ++count;
        break;
      }
    }
  }
  return count;
}

std::vector<TrainingPair> MakeSyntheticPairs(const std::string& folder, const SyntheticOptions& options,
                                             const std::function<void(int, int)>& progress) {
  // Every readable image of the folder except the test pair's, resized to max_side.
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    const std::string ext = entry.path().extension().string();
    if ((ext == ".png" || ext == ".jpg") && name.rfind("graf", 0) != 0) paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<cv::Mat> images;
  for (const auto& p : paths) {
    cv::Mat image = cv::imread(p, cv::IMREAD_GRAYSCALE);
    if (image.empty() || std::min(image.rows, image.cols) < 160) continue;
    const double scale = static_cast<double>(options.max_side) / std::max(image.rows, image.cols);
    if (scale < 1) cv::resize(image, image, cv::Size(), scale, scale, cv::INTER_AREA);
    images.push_back(image);
  }
  if (images.empty()) throw InvalidInput("no training images (png or jpg) in " + folder);

  Rng rng(options.seed * 1000003 + 7);
  std::vector<TrainingPair> pairs;
  int attempts = 0;
  while (static_cast<int>(pairs.size()) < options.pairs) {
    if (++attempts > 20 * options.pairs + 100) throw InvalidInput("cannot make enough training pairs in " + folder);
    const cv::Mat& image = images[rng.Below(images.size())];
    const double w = image.cols, h = image.rows;
    const double angle = rng.Uniform(-0.6, 0.6), scale = rng.Uniform(0.7, 1.2);
    const double c = std::cos(angle) * scale, s = std::sin(angle) * scale;
    std::vector<cv::Point2f> src{
        {0, 0}, {static_cast<float>(w), 0}, {static_cast<float>(w), static_cast<float>(h)}, {0, static_cast<float>(h)}};
    std::vector<cv::Point2f> dst;
    for (const auto& p : src) {
      const double x = p.x - w / 2, y = p.y - h / 2;
      dst.emplace_back(static_cast<float>(c * x - s * y + w / 2 + rng.Uniform(-0.2, 0.2) * w),
                       static_cast<float>(s * x + c * y + h / 2 + rng.Uniform(-0.2, 0.2) * h));
    }
    const cv::Mat hm = cv::getPerspectiveTransform(src, dst);
    cv::Mat warped;
    cv::warpPerspective(image, warped, hm, image.size());
    TrainingPair pair{Sift(image, options.keypoints), Sift(warped, options.keypoints), {}};
    if (pair.a.size() < options.keypoints || pair.b.size() < options.keypoints) continue;
    Eigen::Matrix3d homography;
    for (int r = 0; r < 3; ++r)
      for (int q = 0; q < 3; ++q) homography(r, q) = hm.at<double>(r, q);
    // Mutual nearest neighbours under H within 3 px.
    const int n = pair.a.size(), m = pair.b.size();
    std::vector<int> nearest_b(n, -1), nearest_a(m, -1);
    std::vector<double> best_b(n, INFINITY), best_a(m, INFINITY);
    for (int i = 0; i < n; ++i) {
      const Eigen::Vector2d p = Apply(homography, pair.a.xy(i, 0), pair.a.xy(i, 1));
      for (int j = 0; j < m; ++j) {
        const double d = (p - Eigen::Vector2d(pair.b.xy(j, 0), pair.b.xy(j, 1))).norm();
        if (d < best_b[i]) best_b[i] = d, nearest_b[i] = j;
        if (d < best_a[j]) best_a[j] = d, nearest_a[j] = i;
      }
    }
    for (int i = 0; i < n; ++i)
      if (best_b[i] <= kCorrectPixels && nearest_a[nearest_b[i]] == i) pair.truth.push_back({i, nearest_b[i]});
    if (static_cast<int>(pair.truth.size()) < options.min_truth) continue;
    pairs.push_back(std::move(pair));
    if (progress) progress(static_cast<int>(pairs.size()), options.pairs);
  }
  return pairs;
}

void DrawMatches(const std::string& path, const TestPair& pair, const std::vector<DrawnMethod>& methods) {
  cv::Mat a = cv::imread(pair.image_a, cv::IMREAD_COLOR), b = cv::imread(pair.image_b, cv::IMREAD_COLOR);
  if (a.empty() || b.empty()) throw InvalidInput("cannot read the test images to draw them");
  const double scale = 0.5;  // each panel: the pair side by side at half size
  cv::resize(a, a, cv::Size(), scale, scale, cv::INTER_AREA);
  cv::resize(b, b, cv::Size(), scale, scale, cv::INTER_AREA);
  const int caption = 34, gap = 8;
  const int panel_w = a.cols + gap + b.cols, panel_h = std::max(a.rows, b.rows) + caption;
  cv::Mat canvas(panel_h * static_cast<int>(methods.size()), panel_w, CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t k = 0; k < methods.size(); ++k) {
    const DrawnMethod& m = methods[k];
    const int top = static_cast<int>(k) * panel_h;
    cv::Mat gray_a, gray_b;
    // Faded images so that the lines stand out.
    a.convertTo(gray_a, -1, 0.55, 110);
    b.convertTo(gray_b, -1, 0.55, 110);
    gray_a.copyTo(canvas(cv::Rect(0, top + caption, a.cols, a.rows)));
    gray_b.copyTo(canvas(cv::Rect(a.cols + gap, top + caption, b.cols, b.rows)));
    cv::putText(canvas, m.caption, cv::Point(8, top + 24), cv::FONT_HERSHEY_SIMPLEX, 0.62, cv::Scalar(20, 20, 20), 1,
                cv::LINE_AA);
    // Incorrect first, correct on top.
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t q = 0; q < m.matches.size(); ++q) {
        if (m.correct[q] != (pass == 1)) continue;
        const cv::Point pa(static_cast<int>(std::lround(m.a->xy(m.matches[q].a, 0) * scale)),
                           top + caption + static_cast<int>(std::lround(m.a->xy(m.matches[q].a, 1) * scale)));
        const cv::Point pb(a.cols + gap + static_cast<int>(std::lround(m.b->xy(m.matches[q].b, 0) * scale)),
                           top + caption + static_cast<int>(std::lround(m.b->xy(m.matches[q].b, 1) * scale)));
        const cv::Scalar color = pass == 1 ? cv::Scalar(40, 170, 40) : cv::Scalar(40, 40, 220);  // BGR
        cv::line(canvas, pa, pb, color, 1, cv::LINE_AA);
        cv::circle(canvas, pa, 2, color, -1, cv::LINE_AA);
        cv::circle(canvas, pb, 2, color, -1, cv::LINE_AA);
      }
    }
  }
  app::WriteImage(path, canvas);
}

}  // namespace ddn::match
