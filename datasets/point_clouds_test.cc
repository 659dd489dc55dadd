#include "datasets/point_clouds.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "ddn/error.h"
#include "tests/scratch.h"

namespace ddn::datasets {
namespace {

TEST(PointCloudsTest, CloudsAreCentredScaledAndSeeded) {
  const ImageSet images = MakeSyntheticDigits(3, 1);
  ASSERT_EQ(images.size(), 30);
  CloudOptions options;
  options.num_points = 500;  // more than any synthetic digit's ink: sampled with replacement
  PointClouds clouds = MakePointClouds(images, {}, options);
  EXPECT_EQ(clouds.points.shape(), (Shape{30, 500, 2}));
  EXPECT_EQ(clouds.labels, images.labels);
  for (int m = 0; m < 30; ++m) {
    double max_r = 0, mx = 0;
    for (int n = 0; n < 500; ++n) {
      const double* p = clouds.points.data() + (m * 500 + n) * 2;
      max_r = std::max(max_r, std::hypot(p[0], p[1]));
      mx += p[0] / 500;
    }
    EXPECT_LE(max_r, 1 + 1e-12);
    EXPECT_NEAR(mx, 0, 0.15);  // centred on the ink, up to sampling
  }
  EXPECT_EQ(MakePointClouds(images, {}, options).points.values(), clouds.points.values());
  options.seed = 2;
  EXPECT_NE(MakePointClouds(images, {}, options).points.values(), clouds.points.values());
}

TEST(PointCloudsTest, FewPointsAreDistinctInkPixels) {
  const ImageSet images = MakeSyntheticDigits(1, 2);
  CloudOptions options;
  options.num_points = 8;
  const PointClouds clouds = MakePointClouds(images, {0}, options);  // a ring has more than 8 ink pixels
  std::set<std::pair<double, double>> distinct;
  for (int n = 0; n < 8; ++n) distinct.insert({clouds.points[2 * n], clouds.points[2 * n + 1]});
  EXPECT_EQ(distinct.size(), 8u);
}

TEST(PointCloudsTest, OutliersReplaceTheRightNumberOfPoints) {
  const ImageSet images = MakeSyntheticDigits(2, 3);
  CloudOptions options;
  options.num_points = 40;
  const PointClouds clean = MakePointClouds(images, {}, options);
  Tensor noisy = clean.points;
  AddOutliers(0.1, 7, &noisy);
  for (int m = 0; m < images.size(); ++m) {
    int changed = 0;
    for (int n = 0; n < 40; ++n) {
      const int64_t k = (m * 40 + n) * 2;
      if (noisy[k] != clean.points[k] || noisy[k + 1] != clean.points[k + 1]) {
        ++changed;
        EXPECT_LE(std::hypot(noisy[k], noisy[k + 1]), 1.0);
      }
    }
    EXPECT_EQ(changed, 4);
  }
  Tensor again = clean.points;
  AddOutliers(0.1, 7, &again);
  EXPECT_EQ(again.values(), noisy.values());
  Tensor untouched = clean.points;
  AddOutliers(0.0, 7, &untouched);
  EXPECT_EQ(untouched.values(), clean.points.values());
  EXPECT_THROW(AddOutliers(1.5, 7, &untouched), InvalidInput);
}

TEST(PointCloudsTest, StratifiedSplit) {
  const ImageSet images = MakeSyntheticDigits(5, 4);
  std::vector<int> train, test;
  SplitTrainTest(images, 2, 9, &train, &test);
  EXPECT_EQ(test.size(), 20u);
  EXPECT_EQ(train.size(), 30u);
  std::vector<int> per_class(10, 0);
  for (int i : test) ++per_class[images.labels[i]];
  for (int c : per_class) EXPECT_EQ(c, 2);
  std::set<int> all(train.begin(), train.end());
  all.insert(test.begin(), test.end());
  EXPECT_EQ(all.size(), 50u);
}

TEST(PointCloudsTest, EmptyImageIsAnError) {
  ImageSet images = MakeSyntheticDigits(1, 5);
  std::fill(images.pixels.begin(), images.pixels.begin() + 400, 0);
  EXPECT_THROW(MakePointClouds(images, {0}, {}), InvalidInput);
}

// A fake digits.png with the real layout (cell (r, c) holds a square of size depending on its class),
// written as PNG and as gzipped PNG.
TEST(PointCloudsTest, LoadsDigitsLayoutPlainAndGzipped) {
  cv::Mat sheet = cv::Mat::zeros(1000, 2000, CV_8U);
  for (int cr = 0; cr < 50; ++cr)
    for (int cc = 0; cc < 100; ++cc) {
      const int k = cr / 5;
      sheet(cv::Rect(cc * 20 + 2, cr * 20 + 2, 1 + k, 1 + k)).setTo(255);
    }
  const std::string png = ddn::testing::ScratchDir() + "/ddn_digits_test.png";
  ASSERT_TRUE(cv::imwrite(png, sheet));
  std::vector<uchar> bytes;
  cv::imencode(".png", sheet, bytes);
  const std::string gz = ddn::testing::ScratchDir() + "/ddn_digits_test.png.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  for (const std::string& path : {png, gz}) {
    EXPECT_EQ(FindOpenCvDigits(path), path);
    const ImageSet set = LoadOpenCvDigits(path);
    ASSERT_EQ(set.size(), 5000);
    EXPECT_EQ(set.num_classes, 10);
    for (int i = 0; i < 5000; i += 499) {
      const int k = set.labels[i];
      EXPECT_EQ(k, i / 500);
      int ink = 0;
      for (int p = 0; p < 400; ++p) ink += set.image(i)[p] > 0;
      EXPECT_EQ(ink, (1 + k) * (1 + k));
    }
  }
  std::remove(png.c_str());
  std::remove(gz.c_str());
  EXPECT_THROW(FindOpenCvDigits(::testing::TempDir() + "/no_such_folder"), InvalidInput);
  EXPECT_THROW(LoadOpenCvDigits(::testing::TempDir() + "/no_such_file.png"), InvalidInput);
}

}  // namespace
}  // namespace ddn::datasets
