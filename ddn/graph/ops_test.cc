// Each op's backward against fourth-order central finite differences of its forward, through a graph
// input → op → loss, where the loss is the op's own output for scalar ops and otherwise ⟨v, out⟩ computed
// as a mean squared error against a random target (so the upstream gradient is non-trivial).
#include "ddn/graph/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn::graph {
namespace {

Tensor Random(Shape shape, uint64_t seed, double scale = 1.0) {
  Tensor t(std::move(shape));
  Rng rng(seed);
  for (double& v : t.values()) v = scale * rng.Normal();
  return t;
}

// Builds in0..ink → op → MSE(out, target) and returns the worst relative error over inputs and parameters.
double CheckOp(std::unique_ptr<Op> op, const std::vector<Tensor>& inputs, Mode mode = Mode::kTrain,
               bool scalar_output = false, std::vector<std::string> checked = {}) {
  Graph g;
  std::vector<Graph::NodeId> ids;
  TensorMap feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "in" + std::to_string(i);
    ids.push_back(g.Input(name));
    feeds[name] = inputs[i];
  }
  if (checked.empty())
    for (size_t i = 0; i < inputs.size(); ++i) checked.push_back("in" + std::to_string(i));
  auto out = g.Add("op", std::move(op), ids);
  Graph::NodeId loss = out;
  if (!scalar_output) {
    g.Forward(feeds, {out}, mode);
    feeds["target"] = Random(g.Value(out).shape(), 99);
    loss = g.Add("loss", std::make_unique<MeanSquaredError>(), {out, g.Input("target")});
  }
  const GraphCheckReport report = CheckGraphGradients(g, feeds, loss, checked, mode);
  EXPECT_FALSE(report.entries.empty());
  for (const auto& e : report.entries) EXPECT_GT(e.grad_norm, 0) << e.name;
  return report.max_rel_error;
}

TEST(OpsTest, LinearOnMatricesAndPoints) {
  EXPECT_LE(CheckOp(std::make_unique<Linear>(3, 4, 1), {Random({5, 3}, 1)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<Linear>(2, 3, 2), {Random({2, 4, 2}, 2)}), 1e-6);
  // More rows than one block of the dense loops (256): per-block partial sums of the weight gradient, a short last
  // block.
  EXPECT_LE(CheckOp(std::make_unique<Linear>(3, 2, 3), {Random({517, 3}, 3)}), 1e-6);
}

TEST(OpsTest, LinearInitialisationIsSeeded) {
  Linear a(4, 3, 7), b(4, 3, 7), c(4, 3, 8);
  EXPECT_EQ(a.Parameters()[0]->value.values(), b.Parameters()[0]->value.values());
  EXPECT_NE(a.Parameters()[0]->value.values(), c.Parameters()[0]->value.values());
}

TEST(OpsTest, Relu) {
  Tensor x = Random({4, 5}, 3);
  for (double& v : x.values()) v += v > 0 ? 0.1 : -0.1;  // keep away from the kink
  EXPECT_LE(CheckOp(std::make_unique<Relu>(), {x}), 1e-6);
}

TEST(OpsTest, BatchNormTrainAndEval) {
  EXPECT_LE(CheckOp(std::make_unique<BatchNorm>(3), {Random({6, 3}, 4, 2.0)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<BatchNorm>(3), {Random({2, 4, 3}, 5)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<BatchNorm>(3), {Random({6, 3}, 6)}, Mode::kEval), 1e-6);
}

TEST(OpsTest, BatchNormNormalisesInTraining) {
  BatchNorm bn(2);
  const Tensor x = Random({50, 2}, 7, 3.0);
  const Tensor y = bn.Forward({&x}, Mode::kTrain);
  for (int f = 0; f < 2; ++f) {
    double mean = 0, var = 0;
    for (int r = 0; r < 50; ++r) mean += y[r * 2 + f] / 50;
    for (int r = 0; r < 50; ++r) var += (y[r * 2 + f] - mean) * (y[r * 2 + f] - mean) / 50;
    EXPECT_NEAR(mean, 0, 1e-12);
    EXPECT_NEAR(var, 1, 1e-3);
  }
}

TEST(OpsTest, BatchNormMaxOverPointsGradients) {
  EXPECT_LE(CheckOp(std::make_unique<BatchNormMaxOverPoints>(3), {Random({2, 5, 3}, 20, 2.0)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<BatchNormMaxOverPoints>(3), {Random({2, 5, 3}, 21)}, Mode::kEval), 1e-6);
  auto op = std::make_unique<BatchNormMaxOverPoints>(3);
  const std::vector<double> gamma{-0.7, 1.3, -2.0};  // a decreasing map: the maximiser is the smallest x
  std::copy(gamma.begin(), gamma.end(), op->Parameters()[0]->value.data());
  EXPECT_LE(CheckOp(std::move(op), {Random({3, 4, 3}, 22)}), 1e-6);
}

// The fused op against BatchNorm → MaxOverPoints: the same outputs, input gradients (accumulated and assigned),
// parameter gradients and running averages, bit for bit, in both modes; γ of both signs and 0, and tied rows.
TEST(OpsTest, BatchNormMaxOverPointsEqualsTheComposition) {
  const int64_t B = 3, N = 7, F = 5;
  Tensor x = Random({B, N, F}, 23, 1.5);
  for (int64_t j = 0; j < F; ++j) x[(0 * N + 4) * F + j] = x[(0 * N + 2) * F + j];  // rows 2 and 4 of block 0 tie
  const std::vector<double> gamma{1.3, -0.7, 0.0, 0.4, -2.0};
  const Tensor beta = Random({F}, 24), g = Random({B, F}, 25);
  for (const Mode mode : {Mode::kTrain, Mode::kEval}) {
    BatchNorm bn(F);
    MaxOverPoints max;
    BatchNormMaxOverPoints fused(F);
    for (Op* op : std::vector<Op*>{&bn, &fused}) {
      const std::vector<Parameter*> p = op->Parameters();
      std::copy(gamma.begin(), gamma.end(), p[0]->value.data());
      std::copy_n(beta.data(), F, p[1]->value.data());
      for (int64_t j = 0; j < F; ++j) {
        p[2]->value.data()[j] = 0.1 * j;  // running averages, used in evaluation
        p[3]->value.data()[j] = 1.0 + 0.5 * j;
      }
    }
    const Tensor normalised = bn.Forward({&x}, mode);
    const Tensor y = max.Forward({&normalised}, mode);
    const Tensor y_fused = fused.Forward({&x}, mode);
    EXPECT_EQ(y.ToVector(), y_fused.ToVector());
    Tensor g_normalised(normalised.shape()), gx(x.shape()), gx_fused(x.shape());
    for (double& v : gx.values()) v = 0.25;  // Backward accumulates
    for (double& v : gx_fused.values()) v = 0.25;
    max.Backward({&normalised}, y, g, {&g_normalised});
    bn.Backward({&x}, normalised, g_normalised, {&gx});
    fused.Backward({&x}, y_fused, g, {&gx_fused});
    EXPECT_EQ(gx.ToVector(), gx_fused.ToVector());
    Tensor assigned(x.shape()), assigned_fused(x.shape());
    for (double& v : assigned.values()) v = std::numeric_limits<double>::quiet_NaN();  // BackwardFresh assigns
    for (double& v : assigned_fused.values()) v = std::numeric_limits<double>::quiet_NaN();
    bn.BackwardFresh({&x}, normalised, g_normalised, {&assigned}, {1});
    fused.BackwardFresh({&x}, y_fused, g, {&assigned_fused}, {1});
    EXPECT_EQ(assigned.ToVector(), assigned_fused.ToVector());
    for (size_t k = 0; k < 4; ++k) {
      EXPECT_EQ(bn.Parameters()[k]->value.ToVector(), fused.Parameters()[k]->value.ToVector()) << k;
      EXPECT_EQ(bn.Parameters()[k]->grad.ToVector(), fused.Parameters()[k]->grad.ToVector()) << k;
    }
  }
  BatchNormMaxOverPoints fused(F);
  const Tensor flat = Random({B * N, F}, 26);
  EXPECT_THROW(fused.Forward({&flat}, Mode::kTrain), InvalidInput);
  const Tensor wrong = Random({B, N, F + 1}, 27);
  EXPECT_THROW(fused.Forward({&wrong}, Mode::kTrain), InvalidInput);
  const Tensor one_row = Random({1, 1, F}, 28);
  EXPECT_THROW(fused.Forward({&one_row}, Mode::kTrain), InvalidInput);
}

TEST(OpsTest, PoolingOverPoints) {
  EXPECT_LE(CheckOp(std::make_unique<MaxOverPoints>(), {Random({2, 5, 3}, 8)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<MeanOverPoints>(), {Random({2, 5, 3}, 9)}), 1e-6);
  MaxOverPoints max;
  const Tensor x({1, 3, 2}, {1, 5, 4, 2, 4, 5});  // ties: the first maximiser wins
  const Tensor y = max.Forward({&x}, Mode::kEval);
  EXPECT_EQ(y.ToVector(), (std::vector<double>{4, 5}));
  Tensor gx(x.shape());
  max.Backward({&x}, y, Tensor({1, 2}, {1, 1}), {&gx});
  EXPECT_EQ(gx.ToVector(), (std::vector<double>{0, 1, 1, 0, 0, 0}));
}

TEST(OpsTest, ShapeOps) {
  EXPECT_LE(CheckOp(std::make_unique<SwapLastAxes>(), {Random({2, 3, 4}, 10)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<Reshape>(Shape{-1, 2}), {Random({2, 3, 4}, 11)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<FlattenLeading>(), {Random({2, 3, 4}, 12)}), 1e-6);
  EXPECT_LE(CheckOp(std::make_unique<Concat>(), {Random({2, 3, 4}, 13), Random({2, 3, 1}, 14)}), 1e-6);
  SwapLastAxes swap;
  const Tensor x({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(swap.Forward({&x}, Mode::kEval).ToVector(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  Reshape bad(Shape{-1, 4});
  EXPECT_THROW(bad.Forward({&x}, Mode::kEval), InvalidInput);
  Concat concat;
  const Tensor z({2, 2}, 0.0);
  EXPECT_THROW(concat.Forward({&x, &z}, Mode::kEval), InvalidInput);
}

TEST(OpsTest, Losses) {
  const Tensor labels({4}, {0, 2, 1, 2});
  EXPECT_LE(CheckOp(std::make_unique<SoftmaxCrossEntropy>(), {Random({4, 3}, 15), labels}, Mode::kTrain, true, {"in0"}),
            1e-6);
  EXPECT_LE(CheckOp(std::make_unique<MeanSquaredError>(), {Random({3, 2}, 16), Random({3, 2}, 17)}, Mode::kTrain, true),
            1e-6);
  SoftmaxCrossEntropy ce;
  const Tensor z({1, 2}, {0.0, 0.0}), y({1}, {1});
  EXPECT_NEAR(ce.Forward({&z, &y}, Mode::kEval)[0], std::log(2.0), 1e-15);
  const Tensor bad({1}, {2});
  EXPECT_THROW(ce.Forward({&z, &bad}, Mode::kEval), InvalidInput);
}

TEST(OpsTest, NodeLayerWrapsADeclarativeNode) {
  NodeLayerOptions serial;
  serial.threads = 1;
  EXPECT_LE(CheckOp(std::make_unique<NodeLayer>("graph_test_pseudo_huber_pool",
                                                std::map<std::string, std::string>{{"alpha", "0.5"}}, serial),
                    {Random({3, 6}, 18)}),
            1e-6);
  EXPECT_THROW(NodeLayer("no_such_node", {}), InvalidInput);
  EXPECT_THROW(NodeLayer("graph_test_pseudo_huber_pool", {{"alpha", "-1"}}), InvalidInput);
  NodeLayerOptions options;
  options.output = "z";
  EXPECT_THROW(NodeLayer("graph_test_pseudo_huber_pool", {}, options), InvalidInput);
}

// PoolLayer is SwapLastAxes → FlattenLeading → NodeLayer → Reshape in one op: the same values and gradients,
// bit for bit, over two steps (the second reuses the first one's buffers); its own gradient check; bad input.
TEST(OpsTest, PoolLayerEqualsTheComposedPooling) {
  NodeLayerOptions serial;
  serial.threads = 1;
  const std::map<std::string, std::string> params = {{"alpha", "0.7"}};
  Graph fused, composed;
  const auto xf = fused.Input("x"), xc = composed.Input("x");
  const auto yf = fused.Add("pool", std::make_unique<PoolLayer>("graph_test_pseudo_huber_pool", params, serial), {xf});
  auto h = composed.Add("swap", std::make_unique<SwapLastAxes>(), {xc});
  h = composed.Add("flatten", std::make_unique<FlattenLeading>(), {h});
  h = composed.Add("node", std::make_unique<NodeLayer>("graph_test_pseudo_huber_pool", params, serial), {h});
  const auto yc = composed.Add("unflatten", std::make_unique<Reshape>(Shape{-1, 5}), {h});
  const auto tf = fused.Input("target"), tc = composed.Input("target");
  const auto lf = fused.Add("loss", std::make_unique<MeanSquaredError>(), {yf, tf});
  const auto lc = composed.Add("loss", std::make_unique<MeanSquaredError>(), {yc, tc});
  for (int step = 0; step < 2; ++step) {
    const TensorMap feeds = {{"x", Random({3, 7, 5}, 30 + step)}, {"target", Random({3, 5}, 40 + step)}};
    fused.Forward(feeds, {lf}, Mode::kTrain);
    composed.Forward(feeds, {lc}, Mode::kTrain);
    EXPECT_EQ(fused.Value(yf).shape(), (Shape{3, 5}));
    EXPECT_EQ(fused.Value(yf).ToVector(), composed.Value(yc).ToVector());
    fused.Backward(lf);
    composed.Backward(lc);
    EXPECT_EQ(fused.Grad(xf).ToVector(), composed.Grad(xc).ToVector());
  }
  EXPECT_LE(
      CheckOp(std::make_unique<PoolLayer>("graph_test_pseudo_huber_pool", params, serial), {Random({2, 6, 3}, 19)}),
      1e-6);
  PoolLayer layer("graph_test_pseudo_huber_pool", params, serial);
  const Tensor flat = Random({4, 6}, 20);
  EXPECT_THROW(layer.Forward({&flat}, Mode::kTrain), InvalidInput);
  EXPECT_THROW(PoolLayer("no_such_node", {}), InvalidInput);
}

}  // namespace
}  // namespace ddn::graph
