// nodes/image/tv_denoise.h: total-variation denoising of a grey image, its Newton solve on a sparse Hessian and the
// blocks of its implicit derivatives. The node tv_denoise (tv_denoise_node.cc) and the bi-level problem
// `ddn bilevel tv-denoise` (bilevel/tv_denoise.h) are built on TvDenoiser.
//
// The problem (one image, N = rows·cols pixels, noisy observation g, weight λ > 0, smoothing ε > 0):
//
//   u*(g, λ) = argmin_u  f(u) = ½‖u − g‖² + λ Σ_p ψ_p(u),   ψ_p = √(ε² + (D_x u)_p² + (D_y u)_p²)
//
// with forward differences (D_x u)_p = u(i, j+1) − u(i, j), (D_y u)_p = u(i+1, j) − u(i, j) (zero on the last
// column/row: Neumann boundary); ε makes the regulariser twice differentiable (isotropic TV as ε → 0). f is
// strictly convex (the data term alone is), so u* is unique.
//
// Derivatives. With G_p the 2×N difference operator at pixel p and d_p = G_p u:
//   ∇_u f   = (u − g) + λ Σ_p G_pᵀ d_p / ψ_p
//   H       = I + λ Σ_p G_pᵀ M_p G_p,   M_p = (I − d_p d_pᵀ / ψ_p²) / ψ_p   (positive semi-definite: H ⪰ I)
//   ∂∇_u f/∂λ = Σ_p G_pᵀ d_p / ψ_p = ∇TV(u),   ∂∇_u f/∂g = −I,
// so by the implicit function theorem (Gould et al., DDN TPAMI 2022, Prop. 4.3) with q = H⁻¹ v:
//   dL/dg = q,   dL/dλ = −∇TV(u)ᵀ q.
//
// Why sparse. H couples each pixel with its right, lower and lower-left neighbours only (≤ 7 non-zeros a row), but
// N is in the thousands: a dense factorisation costs N³/3 flops and 8N² bytes (~0.3 GFlop and 70 MB for a 96×96
// image), a sparse Cholesky (Eigen's SimplicialLDLT with a fill-reducing ordering) milliseconds. The Newton solve
// reuses the factorisation's symbolic analysis (the pattern is analysed once per TvDenoiser), and the last
// factorisation (at the answer) serves the backward's solve.
//
// Solve: Newton's method with a backtracking (Armijo) line search from the start given (g for a cold start, the
// previous answer for a warm one), until a Newton step's max-norm is ≤ 1e-10 (1 + ‖u‖∞).
#pragma once

#include <Eigen/Core>
#include <memory>

#include "ddn/status.h"

namespace ddn::image {

class TvDenoiser {
 public:
  // Images of rows × cols pixels (row-major: pixel (i, j) is entry i·cols + j); ε > 0 (InvalidInput otherwise).
  TvDenoiser(int rows, int cols, double epsilon);
  ~TvDenoiser();
  TvDenoiser(TvDenoiser&&) noexcept;
  TvDenoiser& operator=(TvDenoiser&&) noexcept;

  int rows() const { return rows_; }
  int cols() const { return cols_; }
  double epsilon() const { return epsilon_; }

  // f(u) for the observation g and weight λ.
  double Objective(const Eigen::VectorXd& g, const Eigen::VectorXd& u, double lambda) const;
  // ∇TV(u) = Σ_p G_pᵀ d_p / ψ_p (= ∂∇_u f/∂λ).
  Eigen::VectorXd TvGradient(const Eigen::VectorXd& u) const;
  // Minimises f from *u (a warm start, or g); throws NumericalFailure naming `what` after 300 iterations or a
  // failed line search. Leaves H at the answer factorised. status (if given): iterations += Newton steps,
  // residual = max(residual, ‖∇_u f‖∞ at the answer).
  void Solve(const Eigen::VectorXd& g, double lambda, Eigen::VectorXd* u, const char* what, ProblemStatus* status);
  // Factorises H at (u, λ) (the backward of a node, whose Solve ran on another TvDenoiser). NumericalFailure if
  // the factorisation fails.
  void Factorize(const Eigen::VectorXd& u, double lambda, const char* what);
  // H⁻¹ v with the last factorisation (Solve's or Factorize's); NumericalFailure naming `what` if not finite.
  Eigen::VectorXd SolveHessian(const Eigen::VectorXd& v, const char* what) const;
  // The dense H at (u, λ): small images only (tests, ddn::ImplicitVjp).
  Eigen::MatrixXd DenseHessian(const Eigen::VectorXd& u, double lambda) const;

 private:
  struct Sparse;  // Eigen sparse matrices and factorisation (kept out of this header)
  int rows_, cols_;
  double epsilon_;
  std::unique_ptr<Sparse> sparse_;
};

}  // namespace ddn::image
