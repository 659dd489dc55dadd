#include "bilevel/node_problem.h"

#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::bilevel {

NodeProblem::NodeProblem(std::unique_ptr<Node> node, TensorMap inputs, std::vector<std::string> hyperparameters,
                         OuterLossFn outer_loss, double lower_bound, double upper_bound)
    : node_(std::move(node)),
      inputs_(std::move(inputs)),
      hyper_(std::move(hyperparameters)),
      outer_(std::move(outer_loss)),
      lower_(lower_bound),
      upper_(upper_bound) {
  if (!node_) throw InvalidInput("bilevel: no node");
  if (hyper_.empty()) throw InvalidInput(node_->name() + ": no hyperparameter inputs named");
  if (!(lower_ > 0 && upper_ > lower_)) throw InvalidInput(node_->name() + ": need 0 < lower bound < upper bound");
  std::vector<double> theta;
  for (const auto& h : hyper_) {
    const int i = node_->spec().InputIndex(h);
    if (i < 0) throw InvalidInput(node_->name() + ": no input '" + h + "'");
    if (!node_->spec().inputs[i].differentiable) {
      throw InvalidInput(node_->name() + ": input '" + h + "' is not differentiable, so it cannot be a hyperparameter");
    }
    auto it = inputs_.find(h);
    if (it == inputs_.end()) throw InvalidInput(node_->name() + ": input '" + h + "' needs a starting value");
    if (it->second.batch_size() != 1) throw InvalidInput(node_->name() + ": inputs must have batch size 1");
    for (double v : it->second.values()) {
      if (!(v > 0)) {
        throw InvalidInput(node_->name() + ": input '" + h + "' has the value " + FormatDouble(v) +
                           "; a hyperparameter must start positive (it is optimised as log θ)");
      }
    }
    theta.insert(theta.end(), it->second.values().begin(), it->second.values().end());
  }
  theta0_ = Eigen::Map<const Eigen::VectorXd>(theta.data(), static_cast<Eigen::Index>(theta.size()));
  for (Eigen::Index k = 0; k < theta0_.size(); ++k) {
    if (!(theta0_[k] > 0)) throw InvalidInput(node_->name() + ": hyperparameters must start positive");
  }
}

std::vector<std::string> NodeProblem::HyperparameterNames() const {
  std::vector<std::string> names;
  for (const auto& h : hyper_) {
    const int64_t n = inputs_.at(h).size();
    for (int64_t k = 0; k < n; ++k) names.push_back(n == 1 ? h : h + "[" + std::to_string(k) + "]");
  }
  return names;
}

void NodeProblem::SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) {
  Eigen::Index k = 0;
  for (const auto& h : hyper_) {
    for (double& value : inputs_.at(h).values()) value = theta[k++];
  }
  ForwardResult r = Forward(*node_, inputs_);
  outputs_ = std::move(r.outputs);
  // y: every output, in the spec's order.
  std::vector<double> y;
  for (const auto& out : node_->spec().outputs) {
    const Tensor& t = outputs_.at(out.name);
    y.insert(y.end(), t.values().begin(), t.values().end());
  }
  y_ = Eigen::Map<const Eigen::VectorXd>(y.data(), static_cast<Eigen::Index>(y.size()));
  if (status && !r.status.empty()) *status = r.status[0];
}

ImplicitSystem NodeProblem::InnerBlocks() const {
  throw NumericalFailure(node_->name() + ": NodeProblem does not form H and B; the node's backward does");
}

Eigen::VectorXd NodeProblem::HypergradientVjp(const Eigen::VectorXd& v, ProblemStatus* status) const {
  TensorMap grad_outputs;
  Eigen::Index k = 0;
  for (const auto& out : node_->spec().outputs) {
    Tensor g(outputs_.at(out.name).shape());
    for (auto& value : g.values()) value = v[k++];
    grad_outputs[out.name] = std::move(g);
  }
  std::vector<ProblemStatus> statuses(1);
  if (status) statuses[0] = *status;
  const TensorMap grads = Backward(*node_, inputs_, outputs_, grad_outputs, &statuses);
  if (status) *status = statuses[0];
  Eigen::VectorXd g(theta0_.size());
  k = 0;
  for (const auto& h : hyper_) {
    const Tensor& gh = grads.at(h);
    for (int64_t i = 0; i < gh.size(); ++i) g[k++] = gh[i];
  }
  return g;
}

}  // namespace ddn::bilevel
