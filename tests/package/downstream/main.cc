// A downstream program: the built-in nodes and its own, through the installed C++ API.
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "bilevel/bilevel.h"
#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"
#include "ddn/node.h"
#include "ddn/version.h"

namespace {
int failures = 0;
void Expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("downstream: FAILED: %s\n", what.c_str());
    ++failures;
  }
}
}  // namespace

int main() {
  std::printf("downstream: ddn %s\n", DDN_VERSION);
  // Its own node, registered from a static library linked whole.
  auto own = ddn::MakeNode("clipped_mean", {{"lambda", "2"}});
  const ddn::Tensor x({2, 3}, {1, 2, 3, -4, 0, 1});
  ddn::ForwardResult fwd = ddn::Forward(*own, {{"x", x}});
  Expect(std::abs(fwd.outputs.at("y")[0] - 6.0 / 5) < 1e-15 && std::abs(fwd.outputs.at("y")[1] + 3.0 / 5) < 1e-15,
         "clipped_mean forward");
  const ddn::TensorMap grad =
      ddn::Backward(*own, {{"x", x}}, fwd.outputs, {{"y", ddn::Tensor({2}, {1, 0})}}, &fwd.status);
  Expect(std::abs(grad.at("x")[0] - 0.2) < 1e-15 && grad.at("x")[3] == 0, "clipped_mean backward");
  const ddn::CheckReport own_check = ddn::CheckGradients(*own);
  Expect(own_check.passed, "clipped_mean gradient check: " + own_check.ToString());
  Expect(ddn::NodeOrigin("clipped_mean") == "built-in", "clipped_mean is linked in");

  // A built-in node from ddn::nodes.
  auto pool = ddn::MakeNode("robust_pool", {{"penalty", "huber"}});
  const ddn::ForwardResult pooled = ddn::Forward(*pool, {{"x", ddn::Tensor({1, 5}, {1, 2, 3, 4, 100})}});
  Expect(pooled.outputs.at("y")[0] > 2 && pooled.outputs.at("y")[0] < 4, "robust_pool ignores the outlier");
  Expect(ddn::CheckGradients(*ddn::MakeNode("project", {{"shape", "simplex"}})).passed, "project gradient check");

  // A bad request is an exception naming the problem.
  bool threw = false;
  try {
    ddn::Forward(*own, {{"x", ddn::Tensor({1, 2}, {1, NAN})}});
  } catch (const ddn::InvalidInput& e) {
    threw = std::string(e.what()).find("'x'") != std::string::npos;
  }
  Expect(threw, "NaN input refused");

  // ddn::graph: its own node as a layer, reverse mode through it.
  ddn::graph::Graph g;
  const auto in = g.Input("x");
  const auto layer = g.Add(
      "shrink",
      std::make_unique<ddn::graph::NodeLayer>("clipped_mean", std::map<std::string, std::string>{{"lambda", "1"}}),
      {in});
  g.Forward({{"x", ddn::Tensor({1, 3}, {3, 3, 6})}}, {layer}, ddn::graph::Mode::kEval);
  Expect(std::abs(g.Value(layer)[0] - 3.0) < 1e-15, "graph forward through clipped_mean");

  // ddn::bilevel: a one-hyperparameter problem whose inner solution is w*(θ) = 1/(1 + θ) (f = ½(1 + θ)w² − w),
  // outer loss ½(w* − ¼)²: the optimiser finds θ = 3.
  class Toy : public ddn::bilevel::Problem {
   public:
    std::string name() const override { return "toy"; }
    std::vector<std::string> HyperparameterNames() const override { return {"theta"}; }
    Eigen::VectorXd InitialHyperparameters() const override { return Eigen::VectorXd::Constant(1, 1.0); }
    Eigen::VectorXd LowerBounds() const override { return Eigen::VectorXd::Constant(1, 1e-3); }
    Eigen::VectorXd UpperBounds() const override { return Eigen::VectorXd::Constant(1, 1e3); }
    void SolveInner(const Eigen::VectorXd& theta, ddn::ProblemStatus*) override {
      theta_ = theta[0];
      w_ = Eigen::VectorXd::Constant(1, 1.0 / (1.0 + theta_));
    }
    const Eigen::VectorXd& InnerSolution() const override { return w_; }
    double OuterLoss(Eigen::VectorXd* grad_w) const override {
      if (grad_w) *grad_w = Eigen::VectorXd::Constant(1, w_[0] - 0.25);
      return 0.5 * (w_[0] - 0.25) * (w_[0] - 0.25);
    }
    ddn::ImplicitSystem InnerBlocks() const override {
      ddn::ImplicitSystem s;
      s.H = Eigen::MatrixXd::Constant(1, 1, 1.0 + theta_);  // ∂²f/∂w²
      s.B = Eigen::MatrixXd::Constant(1, 1, w_[0]);         // ∂²f/∂w∂θ
      return s;
    }

   private:
    double theta_ = 1;
    Eigen::VectorXd w_ = Eigen::VectorXd::Constant(1, 0.5);
  } toy;
  const ddn::bilevel::OptimizeResult best = ddn::bilevel::Optimize(&toy);
  Expect(std::abs(best.theta[0] - 3.0) < 1e-5, "bilevel optimum theta = 3, got " + std::to_string(best.theta[0]));
  if (failures) return 1;
  std::printf("downstream: ok\n");
  return 0;
}
