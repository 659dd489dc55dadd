// Tensor construction and storage, and LaneSum against a sequential sum.
#include "ddn/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ddn/error.h"
#include "ddn/lane_sum.h"
#include "ddn/random.h"

namespace ddn {
namespace {

TEST(Tensor, ConstructorsCheckTheNumberOfValues) {
  const Tensor a({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(a.ToVector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(a.problem(1)[0], 4);
  EXPECT_EQ(a.problem_size(), 3);
  const Tensor b(Shape{3}, std::vector<double>{0.5, -1, 2});
  EXPECT_EQ(b.problem_size(), 1);
  EXPECT_THROW(Tensor({2, 2}, {1, 2, 3}), InvalidInput);
  EXPECT_THROW(Tensor(Shape{2}, std::vector<double>{1, 2, 3}), InvalidInput);
  const Tensor filled({2, 2}, 7.0);
  EXPECT_EQ(filled.ToVector(), (std::vector<double>(4, 7.0)));
  const Tensor zeros({4});
  EXPECT_EQ(zeros.ToVector(), (std::vector<double>(4, 0.0)));
}

TEST(Tensor, UninitializedHasTheShapeAndSize) {
  Tensor t = Tensor::Uninitialized({3, 5, 2});
  EXPECT_EQ(t.size(), 30);
  EXPECT_EQ(t.problem_size(), 10);
  EXPECT_EQ(t.problem(2), t.data() + 20);
  for (auto& v : t.values()) v = 1.0;  // writable
  EXPECT_EQ(t[29], 1.0);
}

TEST(LaneSum, AgreesWithASequentialSumForEveryLength) {
  Rng rng(3);
  for (int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 1000, 1027}) {
    std::vector<double> x(n);
    for (auto& v : x) v = rng.Normal();
    double sequential = 0, scale = 0;
    for (double v : x) {
      sequential += v * v;
      scale += v * v;
    }
    EXPECT_NEAR(LaneSum(n, [&](int64_t i) { return x[i] * x[i]; }), sequential, 1e-14 * (1 + scale)) << n;
    if (n > 0) {
      x[n / 2] = NAN;
      EXPECT_TRUE(std::isnan(LaneSum(n, [&](int64_t i) { return x[i] * 0.0; }))) << n;
    }
  }
}

}  // namespace
}  // namespace ddn
