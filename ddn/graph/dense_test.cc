// ddn/graph/dense.h: the baseline and AVX2 copies of the dense loops agree with plain loops to rounding, and the
// choice follows ddn::UseAvx2(). ctest runs this binary as is and with DDN_DISABLE_AVX2=1.
#include "ddn/graph/dense.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ddn/random.h"
#include "ddn/simd.h"

namespace ddn::graph::dense {
namespace {

std::vector<double> Random(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (double& e : v) e = rng.Normal();
  return v;
}

double MaxRelativeError(const std::vector<double>& got, const std::vector<double>& want) {
  double scale = 0, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    err = std::max(err, std::abs(got[i] - want[i]));
  }
  return err / std::max(scale, 1e-300);
}

// Every kernel of `k` against the textbook loops, on sizes that are not multiples of any vector width.
void ExpectAgreesWithPlainLoops(const Kernels& k) {
  const int64_t rows = 37, in = 5, out = 11;
  const std::vector<double> x = Random(rows * in, 1), w = Random(in * out, 2), b = Random(out, 3);
  const std::vector<double> g = Random(rows * out, 4);
  std::vector<double> y(rows * out), want_y(rows * out);
  std::vector<double> gw(in * out), want_gw(in * out, 0.0), gb(out), want_gb(out, 0.0);
  std::vector<double> gx(rows * in, 1.0), want_gx(rows * in, 1.0);  // gx accumulates
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < out; ++j) {
      double s = b[j];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * w[i * out + j];
      want_y[r * out + j] = s;
      want_gb[j] += g[r * out + j];
      for (int64_t i = 0; i < in; ++i) {
        want_gw[i * out + j] += x[r * in + i] * g[r * out + j];
        want_gx[r * in + i] += g[r * out + j] * w[i * out + j];
      }
    }
  }
  k.linear_forward(x.data(), w.data(), b.data(), rows, in, out, y.data());
  k.linear_backward(x.data(), g.data(), w.data(), rows, in, out, gw.data(), gb.data(), gx.data(), false);
  EXPECT_LE(MaxRelativeError(y, want_y), 1e-14);
  EXPECT_LE(MaxRelativeError(gw, want_gw), 1e-14);
  EXPECT_LE(MaxRelativeError(gb, want_gb), 1e-14);
  EXPECT_LE(MaxRelativeError(gx, want_gx), 1e-14);
  // Assigned instead of accumulated: the same product over a buffer of garbage.
  std::vector<double> gx_assigned(rows * in, std::numeric_limits<double>::quiet_NaN()), want_assigned(rows * in);
  for (int64_t i = 0; i < rows * in; ++i) want_assigned[i] = want_gx[i] - 1.0;
  k.linear_backward(x.data(), g.data(), w.data(), rows, in, out, gw.data(), gb.data(), gx_assigned.data(), true);
  EXPECT_LE(MaxRelativeError(gx_assigned, want_assigned), 1e-14);

  // Batch norm's passes on x as (rows × in).
  std::vector<double> mean(in), var(in), want_mean(in, 0.0), want_var(in, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < in; ++i) want_mean[i] += x[r * in + i] / rows;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < in; ++i)
      want_var[i] += (x[r * in + i] - want_mean[i]) * (x[r * in + i] - want_mean[i]) / rows;
  k.column_moments(x.data(), rows, in, mean.data(), var.data());
  EXPECT_LE(MaxRelativeError(mean, want_mean), 1e-14);
  EXPECT_LE(MaxRelativeError(var, want_var), 1e-14);
  const std::vector<double> inv_std = Random(in, 5), gamma = Random(in, 6), beta = Random(in, 7);
  std::vector<double> yn(rows * in), want_xhat(rows * in), want_yn(rows * in);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < in; ++i) {
      want_xhat[r * in + i] = (x[r * in + i] - mean[i]) * inv_std[i];
      want_yn[r * in + i] = want_xhat[r * in + i] * gamma[i] + beta[i];
    }
  }
  k.normalise(x.data(), mean.data(), inv_std.data(), gamma.data(), beta.data(), rows, in, yn.data());
  EXPECT_LE(MaxRelativeError(yn, want_yn), 1e-14);
  const std::vector<double> gn = Random(rows * in, 8);
  std::vector<double> sg(in), sgx(in), want_sg(in, 0.0), want_sgx(in, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < in; ++i) {
      want_sg[i] += gn[r * in + i];
      want_sgx[i] += gn[r * in + i] * want_xhat[r * in + i];
    }
  }
  k.gradient_sums(gn.data(), x.data(), mean.data(), inv_std.data(), rows, in, sg.data(), sgx.data());
  EXPECT_LE(MaxRelativeError(sg, want_sg), 1e-13);
  EXPECT_LE(MaxRelativeError(sgx, want_sgx), 1e-13);
  std::vector<double> gxn(rows * in, 0.5), want_gxn(rows * in, 0.5), gxe(rows * in, 0.5), want_gxe(rows * in, 0.5);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < in; ++i) {
      want_gxn[r * in + i] += ((gn[r * in + i] - sg[i]) - want_xhat[r * in + i] * sgx[i]) * gamma[i];
      want_gxe[r * in + i] += gn[r * in + i] * gamma[i];
    }
  }
  k.normalise_backward(gn.data(), x.data(), mean.data(), inv_std.data(), sg.data(), sgx.data(), gamma.data(), rows, in,
                       gxn.data(), false);
  k.normalise_backward(gn.data(), x.data(), mean.data(), inv_std.data(), nullptr, nullptr, gamma.data(), rows, in,
                       gxe.data(), false);
  EXPECT_LE(MaxRelativeError(gxn, want_gxn), 1e-14);
  EXPECT_LE(MaxRelativeError(gxe, want_gxe), 1e-14);
  std::vector<double> gxn_assigned(rows * in, std::numeric_limits<double>::quiet_NaN()), gxe_assigned = gxn_assigned;
  k.normalise_backward(gn.data(), x.data(), mean.data(), inv_std.data(), sg.data(), sgx.data(), gamma.data(), rows, in,
                       gxn_assigned.data(), true);
  k.normalise_backward(gn.data(), x.data(), mean.data(), inv_std.data(), nullptr, nullptr, gamma.data(), rows, in,
                       gxe_assigned.data(), true);
  std::vector<double> want_gxn_assigned(rows * in), want_gxe_assigned(rows * in);
  for (int64_t i = 0; i < rows * in; ++i) {
    want_gxn_assigned[i] = want_gxn[i] - 0.5;  // the accumulating calls started from 0.5
    want_gxe_assigned[i] = want_gxe[i] - 0.5;
  }
  EXPECT_LE(MaxRelativeError(gxn_assigned, want_gxn_assigned), 1e-14);
  EXPECT_LE(MaxRelativeError(gxe_assigned, want_gxe_assigned), 1e-14);

  // ReLU and the max over points: no arithmetic, so bit for bit. Ties (rounded values) and zeros, a NaN and
  // infinities, so that the first-index rule, x > 0 with −0 and NaN, and a NaN in the first row are all exercised.
  const int64_t batch = 3, points = 7, f = 13, n = batch * points * f;
  std::vector<double> v = Random(n, 9);
  for (double& e : v) e = std::round(2 * e) / 2;  // many ties
  v[5] = -0.0;
  v[17] = std::numeric_limits<double>::quiet_NaN();  // row 1 of block 0: never the maximum
  v[2] = std::numeric_limits<double>::quiet_NaN();   // row 0 of block 0, column 2: stays
  v[3 * f + 4] = std::numeric_limits<double>::infinity();
  v[points * f + 6] = -std::numeric_limits<double>::infinity();
  const std::vector<double> gr = Random(n, 10);
  std::vector<double> relu(n), want_relu(n), grelu(n, 0.25), want_grelu(n, 0.25);
  for (int64_t i = 0; i < n; ++i) {
    want_relu[i] = v[i] > 0 ? v[i] : 0.0;
    if (v[i] > 0) want_grelu[i] += gr[i];
  }
  k.relu_forward(v.data(), n, relu.data());
  k.relu_backward(v.data(), gr.data(), n, grelu.data(), false);
  std::vector<double> grelu_assigned(n, std::numeric_limits<double>::quiet_NaN());
  k.relu_backward(v.data(), gr.data(), n, grelu_assigned.data(), true);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(grelu_assigned[i], v[i] > 0 ? gr[i] : 0.0) << i;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(std::memcmp(&relu[i], &want_relu[i], sizeof(double)), 0) << i;
    EXPECT_EQ(grelu[i], want_grelu[i]) << i;
  }
  std::vector<double> ymax(batch * f), want_ymax(batch * f);
  std::vector<int64_t> amax(batch * f), want_amax(batch * f);
  for (int64_t blk = 0; blk < batch; ++blk) {
    for (int64_t j = 0; j < f; ++j) {
      int64_t best = 0;
      for (int64_t p = 1; p < points; ++p)
        if (v[(blk * points + p) * f + j] > v[(blk * points + best) * f + j]) best = p;
      want_amax[blk * f + j] = best;
      want_ymax[blk * f + j] = v[(blk * points + best) * f + j];
    }
  }
  k.max_over_points(v.data(), batch, points, f, ymax.data(), amax.data());
  EXPECT_EQ(amax, want_amax);
  for (int64_t i = 0; i < batch * f; ++i) EXPECT_EQ(std::memcmp(&ymax[i], &want_ymax[i], sizeof(double)), 0) << i;
  EXPECT_TRUE(std::isnan(ymax[2]));
  EXPECT_EQ(ymax[4], std::numeric_limits<double>::infinity());
  EXPECT_EQ(amax[4], 3);
}

TEST(DenseKernels, BaselineCopyAgreesWithPlainLoops) {
  ExpectAgreesWithPlainLoops(Baseline());
}

TEST(DenseKernels, Avx2CopyAgreesWithPlainLoops) {
  if (!Avx2()) GTEST_SKIP() << "the AVX2 copy is not built in this configuration";
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (!__builtin_cpu_supports("x86-64-v3")) GTEST_SKIP() << "this CPU cannot run the AVX2 copy";
#endif
  ExpectAgreesWithPlainLoops(*Avx2());
}

TEST(DenseKernels, TheChoiceFollowsUseAvx2) {
  const Kernels* expected = (UseAvx2() && Avx2()) ? Avx2() : &Baseline();
  EXPECT_EQ(&Select(), expected);
  EXPECT_EQ(Select().linear_forward, expected->linear_forward);
}

}  // namespace
}  // namespace ddn::graph::dense
