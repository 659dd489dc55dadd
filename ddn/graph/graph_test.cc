#include "ddn/graph/graph.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "ddn/error.h"
#include "ddn/graph/elementwise.h"
#include "ddn/graph/ops.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "tests/scratch.h"

namespace ddn::graph::testing {

// A tiny declarative node for these tests: y(x) = argmin_y Σ_i φ(y − x_i), φ(z) = α²(√(1 + (z/α)²) − 1)
// (pseudo-Huber), x (B, N) → y (B): robust pooling in miniature, solved by safeguarded Newton and differentiated
// in closed form by the implicit function theorem, dy/dx_i = φ''(y − x_i) / Σ_j φ''(y − x_j) (DDN paper, §4.1
// with H = Σ φ'', B_i = −φ''(y − x_i)). The graph is tested with it independently of the node families.
class TestPseudoHuberPool : public Node {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "graph_test_pseudo_huber_pool";
    s.summary = "test only: pseudo-Huber mean of x";
    s.params = {{"alpha", ParamType::kFloat, "1", "pseudo-Huber scale", {}}};
    s.inputs = {{"x", {"N"}, "points", true, false}};
    s.outputs = {{"y", {}, "robust mean", true, false}};
    return s;
  }
  explicit TestPseudoHuberPool(const Params& p) : Node(Spec()), alpha_(p.RequirePositive("alpha")) {}

  void Solve(const ProblemData& p, ProblemStatus* status) const override {
    const double* x = p.inputs[0];
    const int64_t n = p.InputSize(0);
    double lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
    double y = 0;
    for (int64_t i = 0; i < n; ++i) y += x[i] / n;
    for (int it = 0; it < 200; ++it) {
      double g = 0, h = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double z = (y - x[i]) / alpha_, r = std::sqrt(1 + z * z);
        g += alpha_ * z / r;
        h += 1 / (r * r * r);
      }
      (g > 0 ? hi : lo) = y;
      double next = y - g / h;
      if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
      const double step = std::abs(next - y);
      y = next;
      status->iterations = it + 1;
      if (step <= 1e-15 * (1 + std::abs(y))) break;
    }
    p.outputs[0][0] = y;
  }

  void Backward(const ProblemData& p, ProblemStatus*) const override {
    const double* x = p.inputs[0];
    const int64_t n = p.InputSize(0);
    const double y = p.outputs[0][0], v = p.grad_outputs[0][0];
    double h = 0;
    for (int64_t i = 0; i < n; ++i) h += Curvature(y - x[i]);
    for (int64_t i = 0; i < n; ++i) p.grad_inputs[0][i] += v * Curvature(y - x[i]) / h;
  }

 private:
  double Curvature(double d) const {
    const double z = d / alpha_, r = std::sqrt(1 + z * z);
    return 1 / (r * r * r);
  }
  double alpha_;
};

}  // namespace ddn::graph::testing

using ddn::graph::testing::TestPseudoHuberPool;
DDN_REGISTER_NODE(TestPseudoHuberPool);

namespace ddn::graph {
namespace {

Tensor Random(Shape shape, uint64_t seed) {
  Tensor t(std::move(shape));
  Rng rng(seed);
  for (double& v : t.values()) v = rng.Normal();
  return t;
}

// A PointNet in miniature: per-point MLP → declarative pooling over points → MLP → cross-entropy.
struct TinyPointNet {
  Graph g;
  Graph::NodeId points, labels, logits, loss;
  explicit TinyPointNet(uint64_t seed) {
    points = g.Input("points");  // (B, N, 2)
    labels = g.Input("labels");  // (B)
    auto h = g.Add("conv1", std::make_unique<Linear>(2, 4, seed), {points});
    h = g.Add("relu1", std::make_unique<Relu>(), {h});  // before batch norm, so that conv1.bias matters
    h = g.Add("bn1", std::make_unique<BatchNorm>(4), {h});
    NodeLayerOptions serial;
    serial.threads = 1;  // tiny batches: threads would only add overhead
    h = PoolOverPoints(g, "pool", h, 4, "graph_test_pseudo_huber_pool", {{"alpha", "0.7"}}, serial);
    logits = g.Add("fc", std::make_unique<Linear>(4, 3, seed + 1), {h});
    loss = g.Add("loss", std::make_unique<SoftmaxCrossEntropy>(), {logits, labels});
  }
};

TensorMap Feeds() {
  return {{"points", Random({3, 5, 2}, 42)}, {"labels", Tensor({3}, {0, 2, 1})}};
}

TEST(GraphTest, WholeGraphWithDeclarativeNodeMatchesFiniteDifferences) {
  TinyPointNet net(7);
  const GraphCheckReport report = CheckGraphGradients(net.g, Feeds(), net.loss, {"points"});
  EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
  EXPECT_EQ(report.entries.size(), 7u);  // conv1 w, b; bn1 γ, β; fc w, b; points
  for (const auto& e : report.entries) EXPECT_GT(e.grad_norm, 0) << e.name;
}

// An op that hides the BackwardFresh of the op it wraps: the graph then zero-fills every gradient and the op
// accumulates (Op's default), the path every op had before BackwardFresh.
class AccumulateOnly : public Op {
 public:
  explicit AccumulateOnly(std::unique_ptr<Op> op) : op_(std::move(op)) {}
  std::string Describe() const override { return op_->Describe(); }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override { return op_->Forward(inputs, mode); }
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override {
    op_->Backward(inputs, output, grad_output, grad_inputs);
  }
  std::vector<Parameter*> Parameters() override { return op_->Parameters(); }

 private:
  std::unique_ptr<Op> op_;
};

// The first gradient of a node is written by its first consumer (Op::BackwardFresh), not accumulated into zeros,
// when the node is one input of that consumer; a node with two consumers (a, below) or used twice by one op (the
// Add of c with itself) is zeroed and accumulated. Same graph twice, the second with every op wrapped so that it
// only accumulates: every gradient agrees to rounding (a product written directly may be summed in another order
// than one added to zeros), over two steps (reused buffers hold the last step's values, which a fresh write must
// not add to).
TEST(GraphTest, FreshGradientsEqualAccumulatedOnes) {
  auto build = [](Graph* g, bool wrap) {
    auto op = [wrap](std::unique_ptr<Op> o) -> std::unique_ptr<Op> {
      return wrap ? std::make_unique<AccumulateOnly>(std::move(o)) : std::move(o);
    };
    const auto x = g->Input("x"), target = g->Input("target");  // (B, N, 3), (B, N, 2)
    auto h = g->Add("lin1", op(std::make_unique<Linear>(3, 6, 11)), {x});
    h = g->Add("bn1", op(std::make_unique<BatchNorm>(6)), {h});
    const auto a = g->Add("relu1", op(std::make_unique<Relu>()), {h});
    const auto b = g->Add("lin2", op(std::make_unique<Linear>(6, 2, 12)), {a});
    const auto c = g->Add("lin3", op(std::make_unique<Linear>(6, 2, 13)), {a});
    const auto cc = g->Add("twice", op(std::make_unique<Add>()), {c, c});
    const auto sum = g->Add("sum", op(std::make_unique<Add>()), {b, cc});
    return g->Add("loss", op(std::make_unique<MeanSquaredError>()), {sum, target});
  };
  Graph fresh, accumulated;
  const auto loss_fresh = build(&fresh, false), loss_accumulated = build(&accumulated, true);
  for (uint64_t step = 0; step < 2; ++step) {
    const TensorMap feeds = {{"x", Random({2, 5, 3}, 50 + step)}, {"target", Random({2, 5, 2}, 60 + step)}};
    for (Graph* g : {&fresh, &accumulated}) {
      g->ZeroGrad();
      g->Forward(feeds, {g == &fresh ? loss_fresh : loss_accumulated}, Mode::kTrain);
      g->Backward(g == &fresh ? loss_fresh : loss_accumulated);
    }
    // Relative to the largest gradient of the kind (lin1's bias, before batch norm, has gradient 0 in exact
    // arithmetic: rounding alone).
    double largest = 0;
    for (int n = 0; n < fresh.size() - 1; ++n)
      for (const double w : accumulated.Grad(n).values()) largest = std::max(largest, std::abs(w));
    for (const Parameter* q : accumulated.Parameters())
      for (const double w : q->grad.values()) largest = std::max(largest, std::abs(w));
    ASSERT_GT(largest, 0);
    auto expect_close = [largest](const TensorValues& got, const TensorValues& want, const std::string& what) {
      ASSERT_EQ(got.size(), want.size()) << what;
      const double scale = largest;
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-14 * scale) << what << " [" << i << "]";
    };
    for (int n = 0; n < fresh.size() - 1; ++n) {  // every node but the loss
      expect_close(fresh.Grad(n).values(), accumulated.Grad(n).values(), "node " + std::to_string(n));
    }
    const auto pf = fresh.Parameters(), pa = accumulated.Parameters();
    ASSERT_EQ(pf.size(), pa.size());
    for (size_t k = 0; k < pf.size(); ++k) {
      if (pf[k]->trainable) expect_close(pf[k]->grad.values(), pa[k]->grad.values(), pf[k]->name);
    }
  }
}

TEST(GraphTest, EvaluatesOnlyWhatIsNeeded) {
  TinyPointNet net(7);
  // Logits need no labels.
  net.g.Forward({{"points", Random({2, 5, 2}, 1)}}, {net.logits}, Mode::kEval);
  EXPECT_EQ(net.g.Value(net.logits).shape(), (Shape{2, 3}));
  EXPECT_THROW(net.g.Forward({{"points", Random({2, 5, 2}, 1)}}, {net.loss}, Mode::kEval), InvalidInput);
  EXPECT_THROW(net.g.Backward(net.logits), InvalidInput);  // not a scalar
}

TEST(GraphTest, RejectsBadConstruction) {
  Graph g;
  auto x = g.Input("x");
  EXPECT_THROW(g.Input("x"), InvalidInput);
  EXPECT_THROW(g.Add("r", std::make_unique<Relu>(), {x + 5}), InvalidInput);
  g.Add("r", std::make_unique<Relu>(), {x});
  EXPECT_THROW(g.Add("r", std::make_unique<Relu>(), {x}), InvalidInput);
  EXPECT_THROW(g.Find("nope"), InvalidInput);
  auto fc = g.Add("fc", std::make_unique<Linear>(3, 2, 1), {x});
  try {
    g.Forward({{"x", Tensor({2, 4})}}, {fc}, Mode::kEval);
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("'fc'"), std::string::npos) << e.what();
  }
}

TEST(GraphTest, SavesAndLoadsParameters) {
  TinyPointNet a(1), b(2);
  a.g.Forward(Feeds(), {a.loss}, Mode::kTrain);  // moves the batch-norm running averages
  const std::string path = ddn::testing::ScratchDir() + "/ddn_graph_params.txt";
  SaveParameters(a.g, path);
  LoadParameters(b.g, path);
  const auto pa = a.g.Parameters(), pb = b.g.Parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t k = 0; k < pa.size(); ++k) {
    EXPECT_EQ(pa[k]->name, pb[k]->name);
    EXPECT_EQ(pa[k]->value.values(), pb[k]->value.values()) << pa[k]->name;
  }
  a.g.Forward(Feeds(), {a.logits}, Mode::kEval);
  b.g.Forward(Feeds(), {b.logits}, Mode::kEval);
  EXPECT_EQ(a.g.Value(a.logits).values(), b.g.Value(b.logits).values());

  Graph other;
  auto x = other.Input("x");
  other.Add("conv1", std::make_unique<Linear>(2, 5, 1), {x});  // wrong shape
  EXPECT_THROW(LoadParameters(other, path), InvalidInput);
  { std::ofstream(path) << "garbage\n"; }
  EXPECT_THROW(LoadParameters(b.g, path), InvalidInput);
  std::remove(path.c_str());
}

TEST(GraphTest, NodeLayerReportsStatus) {
  TinyPointNet net(3);
  net.g.Forward(Feeds(), {net.loss}, Mode::kTrain);
  const auto* layer = dynamic_cast<const PoolLayer*>(net.g.GetOp(net.g.Find("pool")));
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->status().size(), 3u * 4u);  // B·F problems
}

}  // namespace
}  // namespace ddn::graph
