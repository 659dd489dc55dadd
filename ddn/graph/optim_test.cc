#include "ddn/graph/optim.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ddn/error.h"
#include "ddn/graph/ops.h"
#include "ddn/random.h"

namespace ddn::graph {
namespace {

// Least squares through the graph: fit Linear(3 → 2) to targets made by a known linear map.
double Fit(Optimizer* (*make)(Graph&), int steps) {
  Graph g;
  auto x = g.Input("x"), t = g.Input("t");
  auto y = g.Add("fc", std::make_unique<Linear>(3, 2, 5), {x});
  auto loss = g.Add("loss", std::make_unique<MeanSquaredError>(), {y, t});
  Rng rng(3);
  Tensor xs({16, 3}), ts({16, 2});
  for (double& v : xs.values()) v = rng.Normal();
  for (int r = 0; r < 16; ++r) {
    ts[2 * r] = xs[3 * r] - 2 * xs[3 * r + 1] + 0.5;
    ts[2 * r + 1] = 0.3 * xs[3 * r + 2] - 1;
  }
  std::unique_ptr<Optimizer> opt(make(g));
  double value = 0;
  for (int s = 0; s < steps; ++s) {
    g.Forward({{"x", xs}, {"t", ts}}, {loss}, Mode::kTrain);
    value = g.Value(loss)[0];
    g.ZeroGrad();
    g.Backward(loss);
    opt->Step();
  }
  return value;
}

TEST(OptimTest, SgdWithMomentumConverges) {
  const double loss = Fit(
      [](Graph& g) -> Optimizer* {
        SgdOptions o;
        o.learning_rate = 0.05;
        return new Sgd(g.TrainableParameters(), o);
      },
      300);
  EXPECT_LT(loss, 1e-10);
}

TEST(OptimTest, AdamConverges) {
  const double loss = Fit(
      [](Graph& g) -> Optimizer* {
        AdamOptions o;
        o.learning_rate = 0.05;
        return new Adam(g.TrainableParameters(), o);
      },
      600);
  EXPECT_LT(loss, 1e-8);
}

TEST(OptimTest, AdamFirstStepIsLearningRateTimesSign) {
  Parameter p;
  p.value = Tensor({2}, {1.0, 1.0});
  p.grad = Tensor({2}, {3.0, -0.5});
  AdamOptions o;
  o.learning_rate = 0.1;
  Adam adam({&p}, o);
  adam.Step();
  EXPECT_NEAR(p.value[0], 0.9, 1e-8);
  EXPECT_NEAR(p.value[1], 1.1, 1e-8);  // ε = 1e-8 against |g| = 0.5
}

TEST(OptimTest, Schedules) {
  LearningRateSchedule s;
  s.base = 1.0;
  s.total_epochs = 10;
  EXPECT_DOUBLE_EQ(s.At(0), 1.0);
  EXPECT_NEAR(s.At(5), 0.5, 1e-15);
  EXPECT_NEAR(s.At(10), 0.0, 1e-15);
  s.kind = LearningRateSchedule::kStep;
  s.step_epochs = 3;
  s.gamma = 0.1;
  EXPECT_NEAR(s.At(2), 1.0, 1e-15);
  EXPECT_NEAR(s.At(3), 0.1, 1e-15);
  EXPECT_NEAR(s.At(6), 0.01, 1e-15);
  s.warmup_epochs = 1;
  EXPECT_NEAR(s.At(0), 0.5, 1e-15);
  EXPECT_EQ(LearningRateSchedule::Parse("constant"), LearningRateSchedule::kConstant);
  EXPECT_THROW(LearningRateSchedule::Parse("linear"), InvalidInput);
}

}  // namespace
}  // namespace ddn::graph
