// The reverse-mode tape against forward-mode Jets: values, gradients, Jacobian rows and Hessians (edge
// pushing) of functions that use every kind of operation, and the sparsity of the Hessians it returns.
#include "ddn/tape.h"

#include <gtest/gtest.h>

#include <ceres/jet.h>

#include <Eigen/Dense>
#include <cmath>
#include <limits>

#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn {
namespace {

using J1 = ceres::Jet<double, 4>;
using J2 = ceres::Jet<J1, 4>;

// A function of 6 variables in the scalar dialect that exercises the operations (two outputs).
template <typename T>
void Function(const T* y, T* out) {
  using std::abs;
  using std::atan;
  using std::atan2;
  using std::cos;
  using std::exp;
  using std::hypot;
  using std::log;
  using std::pow;
  using std::sin;
  using std::sqrt;
  using std::tanh;
  const T a = y[0] * y[1] + sin(y[2]) * y[3] - y[4] / (Constant<T>(2.0) + y[5] * y[5]);
  const T b = exp(Constant<T>(0.3) * y[0]) * log(Constant<T>(1.5) + y[1] * y[1]) + sqrt(Constant<T>(2.0) + cos(y[4]));
  const T c = atan2(y[2], Constant<T>(1.0) + y[3] * y[3]) + hypot(y[4], y[5]) +
              pow(Constant<T>(1.0) + y[0] * y[0], Constant<T>(1.7));
  const T d = tanh(y[1] - y[5]) * atan(y[3]) + y[2] * y[2] * y[2] + abs(y[4] - Constant<T>(3.0));
  out[0] = a * b + c;
  out[1] = d / (Constant<T>(1.0) + a * a) - y[0];
}

std::vector<double> Point(uint64_t seed) {
  Rng rng(seed);
  std::vector<double> y(6);
  for (auto& v : y) v = rng.Uniform(-1.0, 1.0);
  return y;
}

// Dense gradient and Hessian of w0·out0 + w1·out1 by nested Jets.
void JetDerivatives(const std::vector<double>& y0, double w0, double w1, Eigen::VectorXd* g, Eigen::MatrixXd* H) {
  const int m = 6;
  g->setZero(m);
  H->setZero(m, m);
  for (int r0 = 0; r0 < m; r0 += 4) {
    for (int c0 = 0; c0 < m; c0 += 4) {
      std::vector<J2> y(m);
      for (int k = 0; k < m; ++k) y[k] = J2(J1(y0[k]));
      for (int k = 0; k < 4 && r0 + k < m; ++k) y[r0 + k].v[k] = J1(1.0);
      for (int k = 0; k < 4 && c0 + k < m; ++k) y[c0 + k].a.v[k] = 1.0;
      J2 out[2];
      Function(y.data(), out);
      const J2 f = out[0] * J2(J1(w0)) + out[1] * J2(J1(w1));
      for (int a = 0; a < 4 && r0 + a < m; ++a) {
        if (c0 == 0) (*g)[r0 + a] = f.v[a].a;
        for (int b = 0; b < 4 && c0 + b < m; ++b) (*H)(r0 + a, c0 + b) = f.v[a].v[b];
      }
    }
  }
}

// Forward-mode second-order scalars on the same function: the full SecondOrder<6>, the rows-only
// SecondOrder<6, 2> (second derivatives ∂²/∂v_i∂v_j with min(i, j) < 2 only) and FirstOrder<6> (value and
// gradient) against nested Jets.
template <int R>
void CheckForwardSecondOrder(const std::vector<double>& y0, const Eigen::VectorXd& g_jet, const Eigen::MatrixXd& H_jet,
                             double w0, double w1) {
  using S = ad::SecondOrder<6, R>;
  std::vector<S> y;
  for (int k = 0; k < 6; ++k) y.push_back(S::Variable(y0[k], k));
  S out[2];
  Function(y.data(), out);
  const S f = out[0] * Constant<S>(w0) + out[1] * Constant<S>(w1);
  double values[2];
  Function(y0.data(), values);
  // f is evaluated twice, by S and in plain doubles. The outputs agree to a few ulps of the O(1) intermediates, not
  // bit for bit: S divides as a·(1/b) (two roundings), and with FMA contraction (-DDDN_NATIVE=ON) GCC fuses a·b + c
  // at different places in the two instantiations. The weighted sum can then cancel, so the difference is bounded
  // by ulps of |w0·out0| + |w1·out1|, not of |f| (the relative 4-ulp EXPECT_DOUBLE_EQ failed under FMA). Over seeds
  // 1..2000 it stays below 8 such ulps with and without contraction; 16 leaves a factor 2.
  const double scale = std::abs(w0 * values[0]) + std::abs(w1 * values[1]);
  EXPECT_NEAR(f.value(), w0 * values[0] + w1 * values[1], 16 * std::numeric_limits<double>::epsilon() * scale) << R;
  for (int k = 0; k < 6; ++k) EXPECT_NEAR(f.gradient(k), g_jet[k], 1e-12 * (1 + std::abs(g_jet[k]))) << R;
  if constexpr (R > 0) {
    for (int i = 0; i < 6; ++i) {
      for (int j = 0; j < 6; ++j) {
        if (std::min(i, j) >= R) continue;
        EXPECT_NEAR(f.hessian(i, j), H_jet(i, j), 1e-11 * (1 + H_jet.cwiseAbs().maxCoeff())) << R << " " << i << j;
      }
    }
  }
}

TEST(Tape, ForwardSecondOrderScalarsMatchNestedJets) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const std::vector<double> y0 = Point(seed);
    Eigen::VectorXd g_jet;
    Eigen::MatrixXd H_jet;
    JetDerivatives(y0, 0.7, -1.3, &g_jet, &H_jet);
    CheckForwardSecondOrder<6>(y0, g_jet, H_jet, 0.7, -1.3);
    CheckForwardSecondOrder<2>(y0, g_jet, H_jet, 0.7, -1.3);
    CheckForwardSecondOrder<0>(y0, g_jet, H_jet, 0.7, -1.3);
  }
}

TEST(Tape, GradientsJacobianAndHessianMatchNestedJets) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const std::vector<double> y0 = Point(seed);
    Tape tape;
    tape.Begin();
    std::vector<TapeScalar> y;
    for (double v : y0) y.push_back(tape.Variable(v));
    std::vector<TapeScalar> out(2);
    Function(y.data(), out.data());
    tape.End();
    double values[2];
    Function(y0.data(), values);
    EXPECT_DOUBLE_EQ(out[0].value(), values[0]);
    EXPECT_DOUBLE_EQ(out[1].value(), values[1]);

    const double w0 = 0.7, w1 = -1.3;
    Eigen::VectorXd g_jet;
    Eigen::MatrixXd H_jet;
    JetDerivatives(y0, w0, w1, &g_jet, &H_jet);

    std::vector<double> g(6, 0.0);
    tape.Gradient(out, {w0, w1}, g.data());
    for (int k = 0; k < 6; ++k) EXPECT_NEAR(g[k], g_jet[k], 1e-12 * (1 + std::abs(g_jet[k]))) << seed;

    std::vector<SparseEntry> lower;
    std::vector<double> g2(6, 0.0);
    tape.Hessian(out, {w0, w1}, &lower, g2.data());
    Eigen::MatrixXd H = Eigen::MatrixXd::Zero(6, 6);
    for (const auto& e : lower) {
      ASSERT_GE(e.row, e.col);
      H(e.row, e.col) += e.value;
      if (e.row != e.col) H(e.col, e.row) += e.value;
    }
    EXPECT_LE((H - H_jet).cwiseAbs().maxCoeff(), 1e-11 * (1 + H_jet.cwiseAbs().maxCoeff())) << seed << "\n"
                                                                                            << H << "\n\n"
                                                                                            << H_jet;
    for (int k = 0; k < 6; ++k) EXPECT_NEAR(g2[k], g_jet[k], 1e-12 * (1 + std::abs(g_jet[k])));

    // Jacobian rows: one row per output.
    std::vector<SparseEntry> rows;
    tape.JacobianRows(out, &rows);
    Eigen::MatrixXd J = Eigen::MatrixXd::Zero(2, 6);
    for (const auto& e : rows) J(e.row, e.col) += e.value;
    Eigen::VectorXd r0, r1;
    Eigen::MatrixXd unused;
    JetDerivatives(y0, 1, 0, &r0, &unused);
    JetDerivatives(y0, 0, 1, &r1, &unused);
    for (int k = 0; k < 6; ++k) {
      EXPECT_NEAR(J(0, k), r0[k], 1e-12 * (1 + std::abs(r0[k])));
      EXPECT_NEAR(J(1, k), r1[k], 1e-12 * (1 + std::abs(r1[k])));
    }
  }
}

// Σ y_k² − r²: the Hessian is 2I with exactly m entries (no dense fill), the gradient 2y.
TEST(Tape, SumOfSquaresHasADiagonalHessian) {
  const int m = 2000;
  Tape tape;
  tape.Begin();
  std::vector<TapeScalar> y;
  for (int k = 0; k < m; ++k) y.push_back(tape.Variable(0.001 * k));
  TapeScalar s = Constant<TapeScalar>(0.0);
  for (int k = 0; k < m; ++k) s += y[k] * y[k];
  const TapeScalar g = s - Constant<TapeScalar>(4.0);
  tape.End();
  std::vector<SparseEntry> lower;
  std::vector<double> grad(m, 0.0);
  tape.Hessian({g}, {3.0}, &lower, grad.data());
  EXPECT_EQ(lower.size(), static_cast<size_t>(m));
  for (const auto& e : lower) {
    EXPECT_EQ(e.row, e.col);
    EXPECT_DOUBLE_EQ(e.value, 6.0);
  }
  for (int k = 0; k < m; ++k) EXPECT_DOUBLE_EQ(grad[k], 6.0 * 0.001 * k);
}

// Box constraints: each row of the Jacobian has one entry, found from that row's cone only.
TEST(Tape, JacobianRowsFollowEachOutputsCone) {
  const int m = 500;
  Tape tape;
  tape.Begin();
  std::vector<TapeScalar> y;
  for (int k = 0; k < m; ++k) y.push_back(tape.Variable(k));
  std::vector<TapeScalar> g;
  for (int k = 0; k < m; ++k) g.push_back(y[k] - Constant<TapeScalar>(1.0));
  for (int k = 0; k < m; ++k) g.push_back(Constant<TapeScalar>(-1.0) - y[k]);
  g.push_back(y[3]);  // an output that is a variable itself
  tape.End();
  std::vector<SparseEntry> rows;
  tape.JacobianRows(g, &rows);
  ASSERT_EQ(rows.size(), static_cast<size_t>(2 * m + 1));
  for (const auto& e : rows) {
    if (e.row < m) {
      EXPECT_EQ(e.col, e.row);
      EXPECT_EQ(e.value, 1.0);
    } else if (e.row < 2 * m) {
      EXPECT_EQ(e.col, e.row - m);
      EXPECT_EQ(e.value, -1.0);
    } else {
      EXPECT_EQ(e.col, 3);
    }
  }
}

// √x's derivatives come from 1/x inside [1e-300, 1e300] and from the direct forms outside it: both agree with
// 1/(2√x) and −1/(4x√x) (long double) to a few roundings from subnormal to huge x (a reciprocal of a subnormal x
// overflows; of a huge one, loses digits); at 0 the gradient is +∞ and the second derivative not finite, as
// before.
TEST(Tape, SquareRootDerivativesHoldFromSubnormalToHugeArguments) {
  using S = ad::SecondOrder<1>;
  for (double x : {4e-320, 1e-310, 0.999e-300, 1e-300, 1.001e-300, 1e-150, 0.3, 2.0, 1e150, 0.999e300, 1e300, 1.001e300,
                   1e305, 1.7e308}) {
    const S r = sqrt(S::Variable(x, 0));
    const long double xl = x, sl = std::sqrt(xl);
    const long double d1 = 0.5L / sl, d2 = -0.25L / (xl * sl);
    EXPECT_EQ(r.value(), std::sqrt(x)) << x;
    EXPECT_LE(std::abs((r.gradient(0) - d1) / d1), 1e-15L) << x;
    // −1/(4x√x) overflows double below x ≈ 1e-205 (then −∞ is its rounding) and is subnormal or zero above
    // x ≈ 1e205 (compared absolutely there).
    if (std::isinf(static_cast<double>(d2))) {
      EXPECT_EQ(r.hessian(0, 0), -std::numeric_limits<double>::infinity()) << x;
    } else {
      EXPECT_LE(std::abs(r.hessian(0, 0) - d2), 1e-15L * std::abs(d2) + 1e-300L) << x;
    }
  }
  const S zero = sqrt(S::Variable(0.0, 0));
  EXPECT_EQ(zero.value(), 0.0);
  EXPECT_EQ(zero.gradient(0), std::numeric_limits<double>::infinity());
  EXPECT_FALSE(std::isfinite(zero.hessian(0, 0)));
  const S inf = sqrt(S::Variable(std::numeric_limits<double>::infinity(), 0));
  EXPECT_EQ(inf.gradient(0), 0.0);
  EXPECT_TRUE(std::isnan(sqrt(S::Variable(-1.0, 0)).gradient(0)));
}

// Constants are not recorded; operations on constants only give constants.
TEST(Tape, ConstantsAreNotRecorded) {
  Tape tape;
  tape.Begin();
  const TapeScalar y = tape.Variable(2.0);
  const TapeScalar c = Constant<TapeScalar>(3.0) * Constant<TapeScalar>(4.0) + Constant<TapeScalar>(1.0);
  EXPECT_EQ(c.index(), -1);
  EXPECT_EQ(c.value(), 13.0);
  const int before = tape.size();
  const TapeScalar z = y * y;  // one operand twice: one node with the merged partials
  EXPECT_EQ(tape.size(), before + 1);
  tape.End();
  std::vector<SparseEntry> lower;
  tape.Hessian({z}, {1.0}, &lower);
  ASSERT_EQ(lower.size(), 1u);
  EXPECT_DOUBLE_EQ(lower[0].value, 2.0);
  EXPECT_THROW(TapeScalar(1.0) * y, InternalError);  // outside a recording
}

}  // namespace
}  // namespace ddn
