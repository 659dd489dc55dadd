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
// Derivatives. With G_p the 2×N difference operator at pixel p and d_p = G_p u,
//   ∇_u f   = (u − g) + λ Σ_p G_pᵀ d_p / ψ_p
//   H       = I + λ Σ_p G_pᵀ M_p G_p,   M_p = (I − d_p d_pᵀ / ψ_p²) / ψ_p   (positive semi-definite)
//   B       = ∂∇_u f / ∂λ = Σ_p G_pᵀ d_p / ψ_p   (one column)
//   dL/dλ   = −Bᵀ H⁻¹ v,   v = 2(u* − c)/N.
//
// Why sparse. H couples each pixel with its right, lower and lower-left neighbours only (≤ 7 non-zeros a
// row), but N is in the thousands: ddn::ImplicitVjp would factorise a dense N×N matrix (N³/3 flops and
// 8N² bytes: ~0.3 GFlop and 70 MB for a 96×96 image, cubic growth), while a sparse Cholesky (Eigen's
// SimplicialLDLT with a fill-reducing ordering) of the same H takes milliseconds. The formula is
// exactly the IFT one of ddn/implicit.h; only the linear algebra differs. The inner Newton solve reuses
// the same sparse factorisation (the pattern is analysed once), so a solve costs a few tens of
// factorisations. InnerBlocks still returns the dense H and B (tests compare the two on tiny images).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string>

#include "bilevel/bilevel.h"
#include "datasets/image.h"

namespace ddn::bilevel {

// Grey images, their noise and error measures: datasets/image.h; image files (OpenCV): datasets/image_io.h.
using datasets::AddNoise;
using datasets::Image;
using datasets::MeanSquaredError;
using datasets::Psnr;

class TvDenoiseProblem : public Problem {
 public:
  TvDenoiseProblem(const Image& clean, const Image& noisy, double epsilon = 0.01);
  ~TvDenoiseProblem() override;
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
  struct Sparse;  // Eigen sparse matrices and factorisation (kept out of this header)
  Image clean_, noisy_;
  double epsilon_;
  double lambda_ = 0;
  Eigen::VectorXd u_;
  std::unique_ptr<Sparse> sparse_;
};

}  // namespace ddn::bilevel
