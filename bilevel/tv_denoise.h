// bilevel/tv_denoise.h: learning the weight of a total-variation regulariser for image denoising.
//
// Inner problem (one grey image, N = rows·cols pixels in [0, 1], noisy observation g):
//
//   u*(λ) = argmin_u  ½‖u − g‖² + λ Σ_p ψ_p(u),   ψ_p = √(ε² + (D_x u)_p² + (D_y u)_p²)
//
// with forward differences (D_x u)_p = u(i, j+1) − u(i, j), (D_y u)_p = u(i+1, j) − u(i, j) (zero on the last
// column/row: Neumann boundary) and a smoothing ε > 0 that makes the regulariser twice differentiable
// (isotropic TV as ε → 0). Outer loss: the mean squared error against the clean image c,
//
//   L(λ) = ‖u*(λ) − c‖² / N.
//
// λ is learned on one image and validated on others (each with its own seeded noise).
//
// The inner problem is the node tv_denoise's (nodes/image/tv_denoise.h has the derivatives, the sparse Newton solve
// and why the linear algebra is sparse): this problem holds one image::TvDenoiser, warm-starts its solve from the
// previous λ's answer, and evaluates the hypergradient with the factorisation of H at u* that the solve leaves,
//
//   dL/dλ = −∇TV(u*)ᵀ H⁻¹ v,   v = 2(u* − c)/N,
//
// the IFT formula of ddn/implicit.h with sparse linear algebra. InnerBlocks still returns the dense H and
// B = ∇TV(u*) (tests compare the two on tiny images).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>

#include "bilevel/bilevel.h"
#include "datasets/image.h"
#include "nodes/image/tv_denoise.h"

namespace ddn::bilevel {

// Grey images, their noise and error measures: datasets/image.h; image files (OpenCV): datasets/image_io.h.
using datasets::AddNoise;
using datasets::Image;
using datasets::MeanSquaredError;
using datasets::Psnr;

class TvDenoiseProblem : public Problem {
 public:
  TvDenoiseProblem(const Image& clean, const Image& noisy, double epsilon = 0.01);
  std::string name() const override { return "tv-denoise"; }
  std::vector<std::string> HyperparameterNames() const override { return {"lambda"}; }
  Eigen::VectorXd InitialHyperparameters() const override { return Eigen::VectorXd::Constant(1, 0.01); }
  Eigen::VectorXd LowerBounds() const override { return Eigen::VectorXd::Constant(1, 1e-4); }
  Eigen::VectorXd UpperBounds() const override { return Eigen::VectorXd::Constant(1, 10.0); }
  void SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) override;
  const Eigen::VectorXd& InnerSolution() const override { return u_; }
  double OuterLoss(Eigen::VectorXd* grad_w) const override;
  ImplicitSystem InnerBlocks() const override;  // dense: small images only
  Eigen::VectorXd HypergradientVjp(const Eigen::VectorXd& v, ProblemStatus* status) const override;

  // The inner objective at u for weight λ (tests).
  double InnerObjective(const Eigen::VectorXd& u, double lambda) const;
  // The denoised image of the last SolveInner.
  Image Denoised() const;

 private:
  Image clean_, noisy_;
  image::TvDenoiser denoiser_;  // the node's solver; keeps the factorisation of H at u_
  double lambda_ = 0;
  Eigen::VectorXd u_;
};

}  // namespace ddn::bilevel
