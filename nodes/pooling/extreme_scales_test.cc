// Regression tests of issue 18 for robust pooling: numeric extremes never crash, never overflow into a wrong
// answer that says ok, and are either solved exactly rescaled (the problem is covariant under a joint scaling of
// x and α, and invariant under a scaling of the weights) or refused with a message naming the values.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/pooling/penalties.h"
#include "nodes/pooling/pooling_solvers.h"

namespace ddn::pooling {
namespace {

// Every penalty of the family (penalties.h), as robust_pool's spec lists them.
const std::vector<std::string>& kPenalties = pooling::PenaltyNames();

struct Outcome {
  Tensor y;
  ProblemStatus status;
  TensorMap grads;
};

Outcome Evaluate(const std::string& node_name, const std::string& penalty, double alpha, const TensorMap& inputs,
                 const Tensor& v) {
  auto node = MakeNode(node_name, {{"penalty", penalty}, {"alpha", FormatDouble(alpha)}});
  ForwardResult forward = Forward(*node, inputs);
  Outcome r;
  r.y = forward.outputs.at("y");
  r.grads = Backward(*node, inputs, forward.outputs, {{"y", v}}, &forward.status);
  r.status = forward.status[0];
  return r;
}

std::string Message(const std::function<void()>& f) {
  try {
    f();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "(no InvalidInput)";
}

// Item 1: robust_vector_pool crashed (an unset best read after every local solve returned NaN).
TEST(ExtremeScales, VectorPoolFarPointsAndExtremeAlphaAreRefusedOrSolved) {
  const Tensor far({1, 3, 2}, {0, 0, 1, 1, 1e155, 0});
  for (const char* penalty : {"cauchy", "geman_mcclure", "welsch"}) {
    auto node = MakeNode("robust_vector_pool", {{"penalty", penalty}});
    const std::string m = Message([&] { Forward(*node, {{"x", far}}); });
    EXPECT_NE(m.find("max|x| = 1e+155"), std::string::npos) << penalty << ": " << m;
    EXPECT_NE(m.find("alpha = 1"), std::string::npos) << m;
  }
  const Tensor x({1, 3, 2}, {0, 0, 1, 1, 2, 0});
  for (const char* penalty : {"welsch", "cauchy"}) {
    auto tiny = MakeNode("robust_vector_pool", {{"penalty", penalty}, {"alpha", "1e-160"}});
    EXPECT_THROW(Forward(*tiny, {{"x", x}}), InvalidInput) << penalty;
    // α far beyond the data: every point in the quadratic region, y is the mean.
    for (const char* alpha : {"1e155", "1e300"}) {
      const Outcome r = Evaluate("robust_vector_pool", penalty, std::stod(alpha), {{"x", x}}, Tensor({1, 2}, {1, 0}));
      EXPECT_NEAR(r.y[0], 1.0, 1e-14) << penalty << " " << alpha;
      EXPECT_NEAR(r.y[1], 1.0 / 3, 1e-14) << penalty << " " << alpha;
      EXPECT_LE(r.status.residual, 1e-12);
      for (int i = 0; i < 3; ++i) EXPECT_NEAR(r.grads.at("x")[2 * i], 1.0 / 3, 1e-12);
    }
  }
}

// Item 11: overflow above |x| ≈ 1.3e154 answered y = 1.5 with ok (x = [1e308, 1, 2]).
TEST(ExtremeScales, RatiosBeyondDoublePrecisionAreRefusedWithTheValues) {
  auto node = MakeNode("robust_pool");
  const std::string m = Message([&] { Forward(*node, {{"x", Tensor({1, 3}, {1e308, 1, 2})}}); });
  EXPECT_NE(m.find("max|x| = 1e+308"), std::string::npos) << m;
  EXPECT_NE(m.find("larger alpha"), std::string::npos) << m;
  // Every point at the same place is answered whatever the scale.
  const ForwardResult same = Forward(*node, {{"x", Tensor({1, 2}, {1e300, 1e300})}});
  EXPECT_EQ(same.outputs.at("y")[0], 1e300);
}

// Item 11: truncated_quadratic α = 1e300 answered y = 0 with residual 0.8 and ok.
TEST(ExtremeScales, HugeAlphaIsTheQuadraticRegime) {
  for (const std::string& penalty : kPenalties) {
    const Outcome r = Evaluate("robust_pool", penalty, 1e300, {{"x", Tensor({1, 3}, {1, 2, 4})}}, Tensor({1}, {1}));
    EXPECT_NEAR(r.y[0], 7.0 / 3, 1e-14) << penalty;
    EXPECT_LE(r.status.residual, 1e-12) << penalty;
    EXPECT_TRUE(r.status.ok()) << penalty << ": " << r.status.note;
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(r.grads.at("x")[i], 1.0 / 3, 1e-12) << penalty;
  }
}

// Items 11 and 12: y(s·x; s·α) = s·y(x; α) with the same gradient, for scales far outside 2^±200 (where the passes
// would overflow or underflow), every penalty, scalar and vector, weighted; pseudo_huber at 1e155 used to give
// the smallest point with ok, welsch (vector) at 1e90 a gradient 30 % off.
TEST(ExtremeScales, ScaledProblemsGiveScaledAnswersAndTheSameGradients) {
  Rng rng(7);
  for (const char* node_name : {"robust_pool", "robust_vector_pool"}) {
    const bool vector = std::string(node_name) == "robust_vector_pool";
    const int64_t n = 9, d = vector ? 2 : 1;
    Tensor x(vector ? Shape{1, n, d} : Shape{1, n}), w({1, n}), v(vector ? Shape{1, d} : Shape{1});
    for (auto& e : x.values()) e = 0.4 * rng.Normal();
    x[0] += 4;  // an outlier
    for (auto& e : w.values()) e = rng.Uniform(0.3, 2.0);
    for (auto& e : v.values()) e = rng.Normal();
    for (const std::string& penalty : kPenalties) {
      const double alpha = 0.8;
      const Outcome base = Evaluate(node_name, penalty, alpha, {{"x", x}, {"w", w}}, v);
      for (double scale : {1e155, 1e90, 1e-90, 1e-250, 1e250}) {
        Tensor xs = x, ws = w;
        for (auto& e : xs.values()) e *= scale;
        const double weight_scale = std::sqrt(scale);  // the weights' scale does not matter either
        for (auto& e : ws.values()) e *= weight_scale;
        const Outcome r = Evaluate(node_name, penalty, alpha * scale, {{"x", xs}, {"w", ws}}, v);
        const std::string what = std::string(node_name) + " " + penalty + " scale " + FormatDouble(scale);
        EXPECT_EQ(r.status.flags, base.status.flags) << what << ": " << r.status.note;
        EXPECT_LE(r.status.residual, 1e-10) << what;
        for (int64_t k = 0; k < d; ++k)
          EXPECT_NEAR(r.y[k] / scale, base.y[k], 1e-12 * (1 + std::abs(base.y[k]))) << what;
        for (int64_t i = 0; i < n * d; ++i) {
          EXPECT_NEAR(r.grads.at("x")[i], base.grads.at("x")[i], 1e-9 * (1 + std::abs(base.grads.at("x")[i]))) << what;
        }
        // dy/dw scales as scale / (weight scale).
        for (int64_t i = 0; i < n; ++i) {
          const double expected = base.grads.at("w")[i] * (scale / weight_scale);
          EXPECT_NEAR(r.grads.at("w")[i], expected, 1e-9 * (std::abs(expected) + scale / weight_scale)) << what;
        }
      }
    }
  }
}

// Item 12: subnormal weights changed y (2.5 → 2.0) and made the backward exit 1.
TEST(ExtremeScales, SubnormalWeightsAreOnlyAScale) {
  const Tensor x({1, 4}, {1, 2, 3, 4});
  for (const std::string& penalty : kPenalties) {
    const Outcome plain = Evaluate("robust_pool", penalty, 1.0, {{"x", x}}, Tensor({1}, {1}));
    auto node = MakeNode("robust_pool", {{"penalty", penalty}});
    const TensorMap inputs{{"x", x}, {"w", Tensor({1, 4}, {5e-324, 5e-324, 5e-324, 5e-324})}};
    ForwardResult forward = Forward(*node, inputs);
    EXPECT_NEAR(forward.outputs.at("y")[0], plain.y[0], 1e-14) << penalty;
    EXPECT_EQ(forward.status[0].flags, plain.status.flags) << penalty;
    // dy/dx exists; dy/dw is about 1e323, more than a double holds: a clear NumericalFailure, never a crash.
    try {
      const TensorMap g = Backward(*node, inputs, forward.outputs, {{"y", Tensor({1}, {1})}}, &forward.status);
      for (int i = 0; i < 4; ++i) EXPECT_NEAR(g.at("x")[i], plain.grads.at("x")[i], 1e-12) << penalty;
    } catch (const NumericalFailure& e) {
      EXPECT_NE(std::string(e.what()).find("input 'w'"), std::string::npos) << e.what();
    }
  }
}

// Item 12: welsch α = 0.01 with points 0.2 apart answered with residual 1.0, ok and no non_unique flag. (Welsch and
// the truncated quadratic are bounded: each isolated point is a global minimum. Cauchy and Geman–McClure are not
// bounded alike: the middle point wins.)
TEST(ExtremeScales, IsolatedPointsAreTiesWithASmallResidual) {
  for (const char* penalty : {"welsch", "truncated_quadratic"}) {
    const Outcome r = Evaluate("robust_pool", penalty, 0.01, {{"x", Tensor({1, 3}, {0, 0.2, 0.4})}}, Tensor({1}, {1}));
    EXPECT_TRUE(r.status.flags & kNonUnique) << penalty << ": " << r.status.note;
    EXPECT_LE(r.status.residual, 1e-10) << penalty;
    EXPECT_NEAR(r.y[0], 0.0, 1e-12) << penalty;  // the smallest of the tied minima
  }
  // The truncated quadratic's isolated points: the answer is a data point to rounding, residual ≈ 0 (was 1.0).
  auto node = MakeNode("robust_pool", {{"penalty", "truncated_quadratic"}});
  const ForwardResult f =
      Forward(*node, {{"x", Tensor({1, 5}, {0.23974814391631766, 3.1004259969261105, 6.1845181727494811,
                                            9.4578326581795249, 12.392301572549639})}});
  EXPECT_LE(f.status[0].residual, 1e-10);
}

// No answer with a residual far from zero is returned (RequireConverged): checked over random problems at
// ordinary and extreme scales.
TEST(ExtremeScales, EveryAnswerIsStationary) {
  Rng rng(11);
  for (const char* node_name : {"robust_pool", "robust_vector_pool"}) {
    const bool vector = std::string(node_name) == "robust_vector_pool";
    for (const std::string& penalty : kPenalties) {
      for (double alpha : {1e-3, 0.5, 1e3}) {
        Tensor x(vector ? Shape{4, 30, 3} : Shape{4, 30});
        for (auto& e : x.values()) e = rng.Normal() * (rng.Normal() > 1 ? 100 : 1);
        auto node = MakeNode(node_name, {{"penalty", penalty}, {"alpha", FormatDouble(alpha)}});
        const ForwardResult f = Forward(*node, {{"x", x}});
        for (const ProblemStatus& s : f.status) {
          if (s.flags & kNonSmooth) continue;
          EXPECT_LE(s.residual, 1e-6) << node_name << " " << penalty << " alpha " << alpha << ": " << s.note;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ddn::pooling
