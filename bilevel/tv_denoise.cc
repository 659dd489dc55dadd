#include "bilevel/tv_denoise.h"

#include "ddn/error.h"
#include "ddn/losses.h"

namespace ddn::bilevel {
namespace {

// The noisy image, once it is known to match the clean one (checked before the denoiser is made).
const Image& CheckedNoisy(const Image& clean, const Image& noisy) {
  if (clean.rows != noisy.rows || clean.cols != noisy.cols || clean.pixels.size() == 0) {
    throw InvalidInput("tv-denoise: the clean and noisy images must be non-empty and of the same size");
  }
  return noisy;
}

}  // namespace

TvDenoiseProblem::TvDenoiseProblem(const Image& clean, const Image& noisy, double epsilon)
    : clean_(clean), noisy_(CheckedNoisy(clean, noisy)), denoiser_(noisy.rows, noisy.cols, epsilon) {
  u_ = noisy_.pixels;
}

double TvDenoiseProblem::InnerObjective(const Eigen::VectorXd& u, double lambda) const {
  return denoiser_.Objective(noisy_.pixels, u, lambda);
}

void TvDenoiseProblem::SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) {
  lambda_ = theta[0];
  denoiser_.Solve(noisy_.pixels, lambda_, &u_, "tv-denoise", status);
}

double TvDenoiseProblem::OuterLoss(Eigen::VectorXd* grad_w) const {
  return ddn::MeanSquaredError(u_, clean_.pixels, grad_w);
}

ImplicitSystem TvDenoiseProblem::InnerBlocks() const {
  ImplicitSystem s;
  s.H = denoiser_.DenseHessian(u_, lambda_);
  s.B = denoiser_.TvGradient(u_);
  return s;
}

Eigen::VectorXd TvDenoiseProblem::HypergradientVjp(const Eigen::VectorXd& v, ProblemStatus*) const {
  // dL/dλ = −Bᵀ H⁻¹ v with the factorisation of H at u* left by SolveInner.
  const Eigen::VectorXd w = denoiser_.SolveHessian(v, "tv-denoise");
  return Eigen::VectorXd::Constant(1, -denoiser_.TvGradient(u_).dot(w));
}

Image TvDenoiseProblem::Denoised() const {
  Image im = noisy_;
  im.name = noisy_.name + " (denoised)";
  im.pixels = u_;
  return im;
}

}  // namespace ddn::bilevel
