// bilevel/node_problem.h: a bi-level problem from a declarative node and an outer loss, in a few lines.
//
// The inner problem is any ddn::Node (usually a ddn::DeclarativeNode, ddn/declarative.h, written as an
// objective template): its inputs are the data (non-differentiable inputs) and the hyperparameters
// (differentiable inputs, positive, optimised in log space); its outputs, concatenated in the order of its spec,
// are the inner solution y = w*(θ). The outer loss is a function of y (bilevel/outer_loss.h has named ones). Then
//
//   SolveInner        = ddn::Forward on a batch of one problem (the node's solver: for a DeclarativeNode,
//                       Ceres followed by a Newton/KKT polish to machine precision);
//   HypergradientVjp  = ddn::Backward with grad_outputs v = ∇_y ℓ (for a DeclarativeNode: H and B by
//                       nested Jets, then ddn::ImplicitVjp — the implicit function theorem, no unrolling).
//
//   auto node = std::make_unique<MySmoother>(ddn::Params("my_smoother", MySmoother::Spec().params, {}));
//   ddn::bilevel::NodeProblem problem(std::move(node),
//       {{"x", noisy}, {"lambda", ddn::Tensor({1}, {0.1})}},      // batch of one; lambda's start value
//       {"lambda"},                                              // the hyperparameter inputs
//       [&](const Eigen::VectorXd& y, Eigen::VectorXd* grad) {    // outer loss ℓ(y) and ∇ℓ
//         if (grad) *grad = 2 * (y - clean) / y.size();
//         return (y - clean).squaredNorm() / y.size();
//       });
//   ddn::bilevel::OptimizeResult r = ddn::bilevel::Optimize(&problem);
//
// bilevel/README.md has the whole example; node_problem_test.cc compiles and checks it.
#pragma once

#include <Eigen/Core>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bilevel/bilevel.h"
#include "ddn/batch.h"
#include "ddn/node.h"

namespace ddn::bilevel {

class NodeProblem : public Problem {
 public:
  using OuterLossFn = std::function<double(const Eigen::VectorXd& y, Eigen::VectorXd* grad_y)>;

  // `inputs`: every input of the node for one problem, batch-first with batch size 1 (the
  // hyperparameter inputs hold θ₀). `hyperparameters`: names of differentiable inputs that are θ (their
  // values concatenated in this order). Throws InvalidInput if a name is unknown or not differentiable.
  NodeProblem(std::unique_ptr<Node> node, TensorMap inputs, std::vector<std::string> hyperparameters,
              OuterLossFn outer_loss, double lower_bound = 1e-6, double upper_bound = 1e6);

  std::string name() const override { return node_->name(); }
  std::vector<std::string> HyperparameterNames() const override;
  Eigen::VectorXd InitialHyperparameters() const override { return theta0_; }
  Eigen::VectorXd LowerBounds() const override { return Eigen::VectorXd::Constant(theta0_.size(), lower_); }
  Eigen::VectorXd UpperBounds() const override { return Eigen::VectorXd::Constant(theta0_.size(), upper_); }
  void SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) override;
  const Eigen::VectorXd& InnerSolution() const override { return y_; }
  double OuterLoss(Eigen::VectorXd* grad_w) const override { return outer_(y_, grad_w); }
  // Not formed here: the node's backward builds H and B itself. Throws NumericalFailure.
  ImplicitSystem InnerBlocks() const override;
  Eigen::VectorXd HypergradientVjp(const Eigen::VectorXd& v, ProblemStatus* status) const override;

  // The node and its outputs at the last SolveInner (batch size 1), for reports.
  const Node& node() const { return *node_; }
  const TensorMap& outputs() const { return outputs_; }

 private:
  std::unique_ptr<Node> node_;
  TensorMap inputs_, outputs_;
  std::vector<std::string> hyper_;
  OuterLossFn outer_;
  double lower_, upper_;
  Eigen::VectorXd theta0_, y_;
};

}  // namespace ddn::bilevel
