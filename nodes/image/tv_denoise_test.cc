// Tests of the node tv_denoise: the forward against the optimality conditions, gradients against finite differences
// at smooth, edge and flat images, the specialised paths against the generic engine's, and bad input.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/image/tv_denoise.h"
#include "tests/compare.h"

namespace ddn {
namespace {

Tensor NoisyDisc(int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  Tensor g({1, rows, cols});
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const double r2 = std::pow(i - rows / 2.0, 2) + std::pow(j - cols / 2.0, 2);
      g[i * cols + j] = (r2 < rows * cols / 8.0 ? 0.8 : 0.2) + 0.1 * rng.Normal();
    }
  }
  return g;
}

TEST(TvDenoise, IsRegisteredWithTheImageAndTheWeightDifferentiable) {
  const NodeSpec& spec = GetNodeSpec("tv_denoise");
  ASSERT_EQ(spec.inputs.size(), 2u);
  EXPECT_EQ(spec.inputs[0].name, "g");
  EXPECT_EQ(spec.inputs[1].name, "lambda");
  EXPECT_TRUE(spec.inputs[0].differentiable);
  EXPECT_TRUE(spec.inputs[1].differentiable);
  EXPECT_TRUE(spec.inputs[1].positive);
  ASSERT_EQ(spec.outputs.size(), 1u);
  EXPECT_EQ(spec.outputs[0].dims, (std::vector<std::string>{"R", "C"}));
}

// At the answer ∇f = (u − g) + λ∇TV(u) vanishes to rounding, and TV smooths: the answer is closer to the
// piecewise-constant image than the noisy one.
TEST(TvDenoise, ForwardReachesTheOptimalityConditions) {
  const int64_t R = 20, C = 24;
  const Tensor g = NoisyDisc(R, C, 3);
  const double lambda = 0.08;
  const auto node = MakeNode("tv_denoise", {});
  const ForwardResult r = Forward(*node, {{"g", g}, {"lambda", Tensor({1}, {lambda})}});
  const Tensor& u = r.outputs.at("u");
  const image::TvDenoiser denoiser(R, C, 0.01);
  const Eigen::VectorXd uv = Eigen::Map<const Eigen::VectorXd>(u.data(), R * C);
  const Eigen::VectorXd gv = Eigen::Map<const Eigen::VectorXd>(g.data(), R * C);
  const Eigen::VectorXd grad = (uv - gv) + lambda * denoiser.TvGradient(uv);
  EXPECT_LT(grad.lpNorm<Eigen::Infinity>(), 1e-13);
  EXPECT_LT(r.status[0].residual, 1e-13);
  const Tensor clean = NoisyDisc(R, C, 3);
  double noisy_error = 0, denoised_error = 0;
  for (int64_t i = 0; i < R; ++i) {
    for (int64_t j = 0; j < C; ++j) {
      const double r2 = std::pow(i - R / 2.0, 2) + std::pow(j - C / 2.0, 2);
      const double truth = r2 < R * C / 8.0 ? 0.8 : 0.2;
      noisy_error += std::pow(g[i * C + j] - truth, 2);
      denoised_error += std::pow(u[i * C + j] - truth, 2);
    }
  }
  EXPECT_LT(denoised_error, 0.5 * noisy_error);
}

TEST(TvDenoise, GradientsMatchFiniteDifferences) {
  for (const char* epsilon : {"0.01", "0.1"}) {
    for (uint64_t seed : {1, 2}) {
      const auto node = MakeNode("tv_denoise", {{"epsilon", epsilon}});
      CheckOptions options;
      options.seed = seed;
      const CheckReport report = CheckGradients(*node, options);
      EXPECT_TRUE(report.passed) << epsilon << "\n" << report.ToString();
      EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
      EXPECT_GE(report.entries.size(), 6u);
    }
  }
}

// The sparse Newton forward and sparse implicit backward against the generic engine on the declarative form.
TEST(TvDenoise, SpecialisedPathsMatchTheGenericEngine) {
  RunOptions generic;
  generic.generic = true;
  const auto node = MakeNode("tv_denoise", {});
  for (const CheckCase& c : node->CheckCases(5)) {
    ForwardResult a = Forward(*node, c.inputs);
    ForwardResult g = Forward(*node, c.inputs, generic);
    EXPECT_LT(MaxAbsDiff(a.outputs["u"], g.outputs["u"]), 1e-9) << c.name;
    Rng rng(7);
    Tensor v(a.outputs["u"].shape());
    for (auto& x : v.values()) x = rng.Normal();
    const TensorMap da = Backward(*node, c.inputs, a.outputs, {{"u", v}}, &a.status);
    const TensorMap dg = Backward(*node, c.inputs, a.outputs, {{"u", v}}, &g.status, generic);
    for (const auto& [input, t] : da) {
      EXPECT_LT(MaxAbsDiff(t, dg.at(input)), 1e-8 * std::max(1.0, MaxAbs(t))) << c.name << " " << input;
    }
  }
}

TEST(TvDenoise, BadInputIsRefusedWithOneLine) {
  const Tensor g = NoisyDisc(4, 5, 1);
  const auto node = MakeNode("tv_denoise", {});
  try {
    Forward(*node, {{"g", g}, {"lambda", Tensor({1}, {0.0})}});
    ADD_FAILURE() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("lambda must be > 0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(MakeNode("tv_denoise", {{"epsilon", "0"}}), InvalidInput);
  EXPECT_THROW(image::TvDenoiser(4, 5, -1.0), InvalidInput);
}

}  // namespace
}  // namespace ddn
