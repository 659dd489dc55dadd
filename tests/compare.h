// tests/compare.h: the comparisons of tensors that the unit tests share (header-only, GoogleTest).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ddn/tensor.h"

namespace ddn {

// max_i |a_i − b_i|; a failed expectation (not a silent 0) if the shapes differ.
inline double MaxAbsDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (int64_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// max_i |a_i|.
inline double MaxAbs(const Tensor& a) {
  double m = 0;
  for (double v : a.values()) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace ddn
