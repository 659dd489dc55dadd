#include "bilevel/outer_loss.h"

#include "ddn/error.h"
#include "ddn/losses.h"
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
    const std::string shape = rank == 3 ? (key == "Y" ? "(1, M, K)" : "(1, M, P)") : "(1, M)";
    throw InvalidInput("\"" + where + "\"." + key + " must have shape " + shape + ", got " + ShapeString(t.shape()));
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
    return ddn::MeanSquaredError(y, t, grad);
  };
}

// A multinomial classifier's (multinomial_logistic_regression: outputs w (P, K), bias (K), the last intercept fixed
// at 0) mean log-loss on validation rows X (1, M, P) with class probabilities Y (1, M, K).
NodeProblem::OuterLossFn MakeMultinomialLoss(const NodeSpec& spec, const OuterLossData& data, bool log_loss) {
  if (!log_loss) {
    throw InvalidInput(
        "outer loss 'validation_mse' needs a linear model with one output per row (w (P), bias); node '" + spec.name +
        "' has one per class: use validation_log_loss");
  }
  const Tensor& X = Array(data.validation, "validation", "X", 3);
  const Tensor& Y = Array(data.validation, "validation", "Y", 3);
  const int64_t M = X.dim(1), P = X.dim(2), K = Y.dim(2);
  if (Y.dim(1) != M)
    throw InvalidInput("\"validation\": X has " + std::to_string(M) + " rows, Y " + std::to_string(Y.dim(1)));
  if (M == 0) throw InvalidInput("\"validation\" has no rows");
  if (K < 2) throw InvalidInput("\"validation\".Y has " + std::to_string(K) + " class; need K ≥ 2");
  const Eigen::MatrixXd Z = regression::DesignWithIntercept(X.data(), M, P);
  const Eigen::MatrixXd Yv =
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(Y.data(), M, K);
  // y = (w row-major (P, K), bias (K)); the loss's u = (w_1, b_1, …, w_K) by class (regression.h).
  return [Z, Yv, P, K](const Eigen::VectorXd& y, Eigen::VectorXd* grad) {
    if (y.size() != (P + 1) * K) {
      throw InvalidInput("\"validation\" has " + std::to_string(P) + " features and " + std::to_string(K) +
                         " classes, the model " + std::to_string(y.size()) + " outputs");
    }
    Eigen::VectorXd u(K * (P + 1) - 1);
    for (Eigen::Index i = 0; i < u.size(); ++i) {
      const Eigen::Index k = i / (P + 1), j = i % (P + 1);
      u[i] = j < P ? y[j * K + k] : y[P * K + k];
    }
    Eigen::VectorXd gu;
    const double loss = regression::LogisticLoss(Z, Yv, u, grad ? &gu : nullptr, nullptr);
    if (grad) {
      grad->setZero(y.size());  // the last intercept is fixed: no gradient
      for (Eigen::Index i = 0; i < u.size(); ++i) {
        const Eigen::Index k = i / (P + 1), j = i % (P + 1);
        (*grad)[j < P ? j * K + k : P * K + k] = gu[i];
      }
    }
    return loss;
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
  if (spec.outputs[0].dims.size() == 2) return MakeMultinomialLoss(spec, data, log_loss);
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
    return log_loss ? regression::BinaryLogLoss(Z, yv, u, grad, nullptr) : ddn::MeanSquaredError(Z, u, yv, grad);
  };
}

}  // namespace

const std::vector<OuterLossInfo>& OuterLosses() {
  static const std::vector<OuterLossInfo> losses = {
      {"mse", "mean squared error of the outputs against \"target\"", "target", MakeMse},
      {"validation_mse", "a linear model's (outputs w, bias) mean squared error on \"validation\" rows X, y",
       "validation", [](const NodeSpec& s, const OuterLossData& d) { return MakeLinearLoss(s, d, false); }},
      {"validation_log_loss",
       "a linear classifier's (outputs w, bias) mean log-loss on \"validation\" rows X, y (or Y, class "
       "probabilities, for multinomial_logistic_regression)",
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
