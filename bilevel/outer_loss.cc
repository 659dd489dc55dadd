#include "bilevel/outer_loss.h"

#include "ddn/error.h"
#include "ddn/strings.h"
#include "nodes/regression/regression.h"

namespace ddn::bilevel {
namespace {

// The array `key` of data, batch size 1, of rank `rank` (with the batch axis).
const Tensor& Array(const TensorMap& data, const std::string& where, const std::string& key, size_t rank) {
  auto it = data.find(key);
  if (it == data.end()) throw InvalidInput("the outer loss needs \"" + where + "\": {\"" + key + "\": ...}");
  const Tensor& t = it->second;
  if (t.shape().size() != rank || t.dim(0) != 1) {
    throw InvalidInput("\"" + where + "\"." + key + " must have shape " + (rank == 3 ? "(1, M, P)" : "(1, M)") +
                       ", got " + ShapeString(t.shape()));
  }
  return t;
}

NodeProblem::OuterLossFn MakeMse(const NodeSpec& spec, const OuterLossData& data) {
  std::vector<double> target;
  for (const auto& out : spec.outputs) {
    auto it = data.target.find(out.name);
    if (it == data.target.end()) {
      throw InvalidInput("outer loss 'mse' needs \"target\": {\"" + out.name + "\": ...} (every output of node '" +
                         spec.name + "')");
    }
    target.insert(target.end(), it->second.values().begin(), it->second.values().end());
  }
  for (const auto& [name, t] : data.target) {
    if (spec.OutputIndex(name) < 0)
      throw InvalidInput("\"target\" names '" + name + "', not an output of node '" + spec.name + "'");
  }
  const Eigen::VectorXd t = Eigen::Map<const Eigen::VectorXd>(target.data(), static_cast<Eigen::Index>(target.size()));
  return [t](const Eigen::VectorXd& y, Eigen::VectorXd* grad) {
    if (y.size() != t.size()) {
      throw InvalidInput("\"target\" has " + std::to_string(t.size()) + " values, the outputs " +
                         std::to_string(y.size()));
    }
    const double n = static_cast<double>(y.size());
    if (grad) *grad = 2.0 * (y - t) / n;
    return (y - t).squaredNorm() / n;
  };
}

// A linear model's validation loss: the node's outputs are (w, bias), the validation rows X (1, M, P) and y (1, M).
NodeProblem::OuterLossFn MakeLinearLoss(const NodeSpec& spec, const OuterLossData& data, bool log_loss) {
  const std::string name = log_loss ? "validation_log_loss" : "validation_mse";
  if (spec.outputs.size() != 2 || spec.outputs[0].name != "w" || spec.outputs[1].name != "bias") {
    const std::string what =
        "outer loss '" + name + "' needs a linear model (outputs w and bias, e.g. ridge_regression)";
    throw InvalidInput(what + "; node '" + spec.name + "' has other outputs");
  }
  const Tensor& X = Array(data.validation, "validation", "X", 3);
  const Tensor& y = Array(data.validation, "validation", "y", 2);
  const int64_t M = X.dim(1), P = X.dim(2);
  if (y.dim(1) != M)
    throw InvalidInput("\"validation\": X has " + std::to_string(M) + " rows, y " + std::to_string(y.dim(1)));
  if (M == 0) throw InvalidInput("\"validation\" has no rows");
  const Eigen::MatrixXd Z = regression::DesignWithIntercept(X.data(), M, P);
  const Eigen::VectorXd yv = Eigen::Map<const Eigen::VectorXd>(y.data(), M);
  return [Z, yv, log_loss](const Eigen::VectorXd& u, Eigen::VectorXd* grad) {
    if (u.size() != Z.cols()) {
      throw InvalidInput("\"validation\".X has " + std::to_string(Z.cols() - 1) + " features, the model " +
                         std::to_string(u.size() - 1));
    }
    return log_loss ? regression::BinaryLogLoss(Z, yv, u, grad, nullptr) : regression::MeanSquaredError(Z, yv, u, grad);
  };
}

}  // namespace

const std::vector<OuterLossInfo>& OuterLosses() {
  static const std::vector<OuterLossInfo> losses = {
      {"mse", "mean squared error of the outputs against \"target\"", "target", MakeMse},
      {"validation_mse", "a linear model's (outputs w, bias) mean squared error on \"validation\" rows X, y",
       "validation", [](const NodeSpec& s, const OuterLossData& d) { return MakeLinearLoss(s, d, false); }},
      {"validation_log_loss", "a linear classifier's (outputs w, bias) mean log-loss on \"validation\" rows X, y",
       "validation", [](const NodeSpec& s, const OuterLossData& d) { return MakeLinearLoss(s, d, true); }},
  };
  return losses;
}

const OuterLossInfo* FindOuterLoss(const std::string& name) {
  for (const auto& l : OuterLosses()) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

std::string OuterLossNames() {
  return Join(OuterLosses(), ", ", [](const OuterLossInfo& l) { return l.name; });
}

}  // namespace ddn::bilevel
