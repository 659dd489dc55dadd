// bilevel/outer_loss.h: named outer losses, so that a tool can make a bi-level problem of any registered node.
//
// `ddn bilevel NODE --outer-loss NAME` (apps/bilevel) wraps a node in a NodeProblem (node_problem.h): its positive
// differentiable inputs are the hyperparameters θ, its outputs (concatenated in the spec's order) are y = w*(θ),
// and the outer loss L(θ) = ℓ(y) is one of these, made from data the request gives besides the node's inputs:
//
//   mse                  ℓ = 1/m Σ_k (y_k − t_k)² against a target t for every output ("target": {OUTPUT: array});
//                        m is the number of output values.
//   validation_mse       for a linear model (outputs w (P) and bias, e.g. ridge_regression, robust_regression):
//                        ℓ = 1/M Σ_i (x_iᵀw + b − y_i)² on validation rows ("validation": {"X": (M, P), "y": (M)}).
//   validation_log_loss  for a binary classifier of the same form (logistic_regression): the mean log-loss
//                        1/M Σ_i [log(1 + e^{s_i}) − y_i s_i], s_i = x_iᵀw + b, labels y_i in [0, 1]; for
//                        multinomial_logistic_regression (outputs w (P, K), bias (K)) the mean log-loss
//                        1/M Σ_i [log Σ_k e^{s_ik} − Σ_k Y_ik s_ik], s_ik = x_iᵀw_k + b_k, on "validation":
//                        {"X": (M, P), "Y": (M, K)} (class probabilities, one-hot for class labels).
//
// Every array has the batch axis first with batch size 1, like the inputs. Each loss returns ℓ and ∇_y ℓ
// (nodes/regression/regression.h's functions for the linear models, so that a node and the tabular problems of
// bilevel/tabular.h compute the same numbers).
//
//   const OuterLossInfo* loss = FindOuterLoss("validation_mse");
//   NodeProblem problem(MakeNode("ridge_regression", {}), inputs, {"lambda"}, loss->make(spec, data));
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bilevel/node_problem.h"
#include "ddn/node.h"
#include "ddn/tensor.h"

namespace ddn::bilevel {

// The data of an outer loss: "target" (mse) or "validation" (the others), each a map of named arrays.
struct OuterLossData {
  TensorMap target;
  TensorMap validation;
};

struct OuterLossInfo {
  std::string name;     // "mse", "validation_mse", "validation_log_loss"
  std::string summary;  // one line for --help
  std::string needs;    // the request key it reads: "target" or "validation"
  // Makes ℓ for a node of this spec. Throws InvalidInput naming what is missing or of the wrong shape (sizes that
  // depend on the outputs are checked at the first evaluation).
  std::function<NodeProblem::OuterLossFn(const NodeSpec& spec, const OuterLossData& data)> make;
};

// Every named outer loss, in the order tools list them.
const std::vector<OuterLossInfo>& OuterLosses();
// The loss of that name, or null.
const OuterLossInfo* FindOuterLoss(const std::string& name);
// "mse, validation_mse, validation_log_loss" (for messages).
std::string OuterLossNames();

}  // namespace ddn::bilevel
