// Tests of FixedPointLayer: the equilibrium, implicit gradients against finite differences, unrolled gradients
// against finite differences of the fixed-depth network, unrolled against implicit, memory of each mode.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>

#include "ddn/error.h"
#include "ddn/graph/elementwise.h"
#include "ddn/graph/fixed_point.h"
#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"
#include "ddn/random.h"

namespace ddn::graph {
namespace {

constexpr int kN = 5, kB = 3, kIn = 4;

// tanh(W z + x) with ‖W‖ scaled to `norm` (He init of an N×N layer has ‖W‖₂ ≈ 2√2).
std::unique_ptr<Graph> Cell(double norm, uint64_t seed) {
  auto cell = std::make_unique<Graph>();
  auto z = cell->Input("z");
  auto x = cell->Input("x");
  auto wz = cell->Add("W", std::make_unique<Linear>(kN, kN, seed), {z});
  auto sum = cell->Add("sum", std::make_unique<Add>(), {wz, x});
  cell->Add("f", std::make_unique<Tanh>(), {sum});
  for (Parameter* p : cell->Parameters()) {
    if (p->value.rank() == 2) {
      for (auto& v : p->value.values()) v *= norm / 3.0;
    } else {
      Rng rng(seed + 1);
      for (auto& v : p->value.values()) v = 0.1 * rng.Normal();  // a non-zero bias, so its gradient is checked
    }
  }
  return cell;
}

struct Net {
  Graph g;
  Graph::NodeId loss, deq;
  FixedPointLayer* layer;
};

std::unique_ptr<Net> MakeNet(const FixedPointOptions& o, double norm = 0.6) {
  auto net = std::make_unique<Net>();
  Graph& g = net->g;
  auto x = g.Input("x");
  auto target = g.Input("target");
  auto inj = g.Add("inject", std::make_unique<Linear>(kIn, kN, 7), {x});
  auto layer = std::make_unique<FixedPointLayer>(Cell(norm, 3), o);
  net->layer = layer.get();
  net->deq = g.Add("deq", std::move(layer), {inj});
  net->loss = g.Add("loss", std::make_unique<MeanSquaredError>(), {net->deq, target});
  return net;
}

TensorMap Feeds() {
  Rng rng(11);
  Tensor x(Shape{kB, kIn}), t(Shape{kB, kN});
  for (auto& v : x.values()) v = rng.Normal();
  for (auto& v : t.values()) v = 0.5 * rng.Normal();
  return {{"x", x}, {"target", t}};
}

TEST(FixedPointLayer, FindsTheEquilibriumAndImplicitGradientsMatchFiniteDifferences) {
  FixedPointOptions o;
  o.features = kN;
  o.tolerance = 1e-14;
  auto net = MakeNet(o);
  const TensorMap feeds = Feeds();
  net->g.Forward(feeds, {net->loss}, Mode::kTrain);
  EXPECT_LE(net->layer->stats().forward_residual, 1e-14);
  const GraphCheckReport report = CheckGraphGradients(net->g, feeds, net->loss, {"x"});
  EXPECT_LT(report.max_rel_error, 1e-6) << report.ToString();
  EXPECT_EQ(net->layer->stats().tape_bytes, 0u);
}

TEST(FixedPointLayer, UnrolledGradientsAreThoseOfTheFixedDepthNetwork) {
  for (auto solver : {FixedPointOptions::kPicard, FixedPointOptions::kAnderson}) {
    FixedPointOptions o;
    o.features = kN;
    o.solver = solver;
    o.window = 3;
    o.tolerance = 0;
    o.require_convergence = false;
    o.max_iterations = 6;
    o.backward = GradientMode::Parse("unrolled");
    auto net = MakeNet(o);
    const TensorMap feeds = Feeds();
    const GraphCheckReport report = CheckGraphGradients(net->g, feeds, net->loss, {"x"});
    EXPECT_LT(report.max_rel_error, 1e-6) << solver << "\n" << report.ToString();
    EXPECT_GT(net->layer->stats().tape_bytes, 0u);
  }
}

TEST(FixedPointLayer, UnrolledAgreesWithImplicitOnConvergedSolvesAndTruncatedApproaches) {
  const TensorMap feeds = Feeds();
  auto grads = [&](const std::string& mode) {
    FixedPointOptions o;
    o.features = kN;
    o.tolerance = 1e-13;
    o.backward = GradientMode::Parse(mode);
    auto net = MakeNet(o);
    net->g.Forward(feeds, {net->loss}, Mode::kTrain);
    net->g.ZeroGrad();
    net->g.Backward(net->loss);
    Eigen::VectorXd all(0);
    for (Parameter* p : net->g.TrainableParameters()) {
      Eigen::VectorXd next(all.size() + p->grad.size());
      next << all, Eigen::Map<const Eigen::VectorXd>(p->grad.data(), p->grad.size());
      all = next;
    }
    return all;
  };
  const Eigen::VectorXd gi = grads("implicit"), gu = grads("unrolled");
  EXPECT_LT((gu - gi).norm() / gi.norm(), 1e-8);
  const double t2 = (grads("truncated:2") - gi).norm() / gi.norm();
  const double t8 = (grads("truncated:8") - gi).norm() / gi.norm();
  EXPECT_GT(t2, 1e-4);
  EXPECT_LT(t8, t2);
}

TEST(FixedPointLayer, ExplicitDepthIsTheStackedNetwork) {
  FixedPointOptions o;
  o.features = kN;
  o.solver = FixedPointOptions::kPicard;
  o.tolerance = 0;
  o.require_convergence = false;
  o.max_iterations = 3;
  auto net = MakeNet(o);
  const TensorMap feeds = Feeds();
  net->g.Forward(feeds, {net->deq}, Mode::kTrain);
  // z3 = f(f(f(0))) by hand with the cell's own evaluation.
  Graph& cell = net->layer->cell();
  Tensor z(Shape{kB, kN}, 0.0);
  const Tensor inj = net->g.Value(net->g.Find("inject"));
  for (int l = 0; l < 3; ++l) {
    cell.Forward({{"z", z}, {"x", inj}}, {cell.Find("f")}, Mode::kTrain);
    z = cell.Value(cell.Find("f"));
  }
  const Tensor& out = net->g.Value(net->deq);
  for (int64_t i = 0; i < z.size(); ++i) EXPECT_DOUBLE_EQ(out[i], z[i]);
  EXPECT_EQ(net->layer->stats().forward_iterations, 3);
}

TEST(FixedPointLayer, NonConvergenceIsANumericalFailure) {
  FixedPointOptions o;
  o.features = kN;
  o.max_iterations = 3;
  o.tolerance = 1e-14;
  auto net = MakeNet(o);
  EXPECT_THROW(net->g.Forward(Feeds(), {net->loss}, Mode::kTrain), NumericalFailure);
  FixedPointOptions bad;
  EXPECT_THROW(FixedPointLayer(Cell(0.5, 1), bad), InvalidInput);  // features unset
}

}  // namespace
}  // namespace ddn::graph
