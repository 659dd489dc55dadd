// ddn/losses.h: losses that several layers above the engine share, written once.
//
//   MeanSquaredError(prediction, target, grad)   L = (1/n) Σ_i (prediction_i − target_i)²,
//                                                ∇_prediction L = (2/n)(prediction − target);
//   MeanSquaredError(Z, u, target, grad)         the same for a linear prediction Z u, ∇_u L = (2/n) Zᵀ(Z u − target).
//
// Used by the image error measures (datasets/image.h: MSE and PSNR between two images), the linear models'
// validation losses (bilevel/tabular.h, bilevel/outer_loss.h's validation_mse), the `mse` outer loss and the
// outer loss of the bi-level denoising problem (bilevel/tv_denoise.h). (The graph's MeanSquaredError op,
// ddn/graph/ops.h, is an op on tensors with its own backward.) Sizes are the caller's to check.
#pragma once

#include <Eigen/Core>

namespace ddn {

// (1/n) ‖r‖² of a residual r of size n ≥ 1: the one formula of both forms below.
inline double MeanSquare(const Eigen::Ref<const Eigen::VectorXd>& r) {
  return r.squaredNorm() / static_cast<double>(r.size());
}

// The mean squared error of two vectors of the same size and, if `grad` is given, its gradient in the prediction.
inline double MeanSquaredError(const Eigen::Ref<const Eigen::VectorXd>& prediction,
                               const Eigen::Ref<const Eigen::VectorXd>& target, Eigen::VectorXd* grad = nullptr) {
  const Eigen::VectorXd r = prediction - target;
  if (grad) *grad = (2.0 / static_cast<double>(r.size())) * r;
  return MeanSquare(r);
}

// The mean squared error of the linear prediction Z u (rows of Z, e.g. [X 1] with an intercept column) and, if
// `grad` is given, its gradient in u. (The 2/n is applied after the product Zᵀr: the order the bi-level problems'
// pinned results were computed in.)
inline double MeanSquaredError(const Eigen::MatrixXd& Z, const Eigen::VectorXd& u, const Eigen::VectorXd& target,
                               Eigen::VectorXd* grad = nullptr) {
  const Eigen::VectorXd r = Z * u - target;
  if (grad) *grad = (2.0 / static_cast<double>(r.size())) * (Z.transpose() * r);
  return MeanSquare(r);
}

}  // namespace ddn
