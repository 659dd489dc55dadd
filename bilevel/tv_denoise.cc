#include "bilevel/tv_denoise.h"

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ddn/error.h"
#include "ddn/losses.h"

namespace ddn::bilevel {


// ---- The problem -------------------------------------------------------------------------------------

struct TvDenoiseProblem::Sparse {
  using Matrix = Eigen::SparseMatrix<double>;
  Matrix H;  // at the current solution
  Eigen::SimplicialLDLT<Matrix> ldlt;
  bool analysed = false;
};

namespace {

// Per pixel p: the differences d = (dx, dy), ψ and the indices of the right / lower neighbours (−1 at
// the border, where that difference is 0).
struct PixelTerms {
  int rows, cols;
  double eps2;
  template <typename Fn>
  void ForEach(const Eigen::VectorXd& u, Fn fn) const {
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < cols; ++j) {
        const int p = i * cols + j;
        const int a = j + 1 < cols ? p + 1 : -1;
        const int b = i + 1 < rows ? p + cols : -1;
        const double dx = a >= 0 ? u[a] - u[p] : 0.0;
        const double dy = b >= 0 ? u[b] - u[p] : 0.0;
        fn(p, a, b, dx, dy, std::sqrt(eps2 + dx * dx + dy * dy));
      }
    }
  }
};

}  // namespace

TvDenoiseProblem::TvDenoiseProblem(const Image& clean, const Image& noisy, double epsilon)
    : clean_(clean), noisy_(noisy), epsilon_(epsilon), sparse_(std::make_unique<Sparse>()) {
  if (clean.rows != noisy.rows || clean.cols != noisy.cols || clean.pixels.size() == 0) {
    throw InvalidInput("tv-denoise: the clean and noisy images must be non-empty and of the same size");
  }
  if (!(epsilon > 0)) throw InvalidInput("tv-denoise: epsilon must be > 0");
  u_ = noisy_.pixels;
}

TvDenoiseProblem::~TvDenoiseProblem() = default;

double TvDenoiseProblem::InnerObjective(const Eigen::VectorXd& u, double lambda) const {
  double tv = 0;
  PixelTerms{noisy_.rows, noisy_.cols, epsilon_ * epsilon_}.ForEach(
      u, [&](int, int, int, double, double, double psi) { tv += psi; });
  return 0.5 * (u - noisy_.pixels).squaredNorm() + lambda * tv;
}

namespace {

// Gradient of the TV term (= B) and, if `triplets` is given, λ Σ G_pᵀ M_p G_p plus the identity.
void TvDerivatives(const PixelTerms& terms, const Eigen::VectorXd& u, double lambda, Eigen::VectorXd* grad_tv,
                   std::vector<Eigen::Triplet<double>>* triplets) {
  const Eigen::Index N = u.size();
  grad_tv->setZero(N);
  if (triplets) {
    triplets->clear();
    triplets->reserve(static_cast<size_t>(N) * 10);
    for (Eigen::Index i = 0; i < N; ++i) triplets->emplace_back(i, i, 1.0);
  }
  terms.ForEach(u, [&](int p, int a, int b, double dx, double dy, double psi) {
    const double gx = dx / psi, gy = dy / psi;
    if (a >= 0) {
      (*grad_tv)[a] += gx;
      (*grad_tv)[p] -= gx;
    }
    if (b >= 0) {
      (*grad_tv)[b] += gy;
      (*grad_tv)[p] -= gy;
    }
    if (!triplets) return;
    const double psi3 = psi * psi * psi;
    const double m[2][2] = {{(psi * psi - dx * dx) / psi3, -dx * dy / psi3}, {-dx * dy / psi3, (psi * psi - dy * dy) / psi3}};
    // Rows of G_p: x → (+1 at a, −1 at p), y → (+1 at b, −1 at p).
    const int idx[2][2] = {{a, p}, {b, p}};
    const double coef[2] = {1.0, -1.0};
    for (int r = 0; r < 2; ++r) {
      if (idx[r][0] < 0) continue;
      for (int s = 0; s < 2; ++s) {
        if (idx[s][0] < 0) continue;
        const double w = lambda * m[r][s];
        for (int k = 0; k < 2; ++k) {
          for (int l = 0; l < 2; ++l) triplets->emplace_back(idx[r][k], idx[s][l], w * coef[k] * coef[l]);
        }
      }
    }
  });
}

}  // namespace

void TvDenoiseProblem::SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) {
  lambda_ = theta[0];
  const PixelTerms terms{noisy_.rows, noisy_.cols, epsilon_ * epsilon_};
  const Eigen::Index N = u_.size();
  std::vector<Eigen::Triplet<double>> triplets;
  Eigen::VectorXd grad_tv;
  auto& sp = *sparse_;
  double f = InnerObjective(u_, lambda_);
  for (int it = 1; it <= 300; ++it) {
    TvDerivatives(terms, u_, lambda_, &grad_tv, &triplets);
    const Eigen::VectorXd g = (u_ - noisy_.pixels) + lambda_ * grad_tv;
    sp.H.resize(N, N);
    sp.H.setFromTriplets(triplets.begin(), triplets.end());
    if (!sp.analysed) {
      sp.ldlt.analyzePattern(sp.H);
      sp.analysed = true;
    }
    sp.ldlt.factorize(sp.H);
    if (sp.ldlt.info() != Eigen::Success) throw NumericalFailure("tv-denoise: the inner Hessian could not be factorised");
    const Eigen::VectorXd d = -sp.ldlt.solve(g);
    const bool tiny = d.lpNorm<Eigen::Infinity>() <= 1e-10 * (1.0 + u_.lpNorm<Eigen::Infinity>());
    const double slope = g.dot(d);
    double t = 1.0, f_new = 0;
    Eigen::VectorXd u_new;
    int b = 0;
    for (; b < 60; ++b, t *= 0.5) {
      u_new = u_ + t * d;
      f_new = InnerObjective(u_new, lambda_);
      if (f_new <= f + 1e-4 * t * slope + 8 * std::numeric_limits<double>::epsilon() * std::abs(f)) break;
    }
    if (b == 60 && !tiny) throw NumericalFailure("tv-denoise: the inner line search failed");
    if (b < 60) {
      u_ = u_new;
      f = f_new;
    }
    if (tiny) {
      // Refresh H at the final point for the hypergradient.
      TvDerivatives(terms, u_, lambda_, &grad_tv, &triplets);
      sp.H.setFromTriplets(triplets.begin(), triplets.end());
      sp.ldlt.factorize(sp.H);
      if (status) {
        status->iterations += it;
        status->residual = std::max(status->residual, ((u_ - noisy_.pixels) + lambda_ * grad_tv).lpNorm<Eigen::Infinity>());
      }
      return;
    }
  }
  throw NumericalFailure("tv-denoise: the inner Newton solve did not converge in 300 iterations");
}

double TvDenoiseProblem::OuterLoss(Eigen::VectorXd* grad_w) const {
  return ddn::MeanSquaredError(u_, clean_.pixels, grad_w);
}

ImplicitSystem TvDenoiseProblem::InnerBlocks() const {
  const PixelTerms terms{noisy_.rows, noisy_.cols, epsilon_ * epsilon_};
  std::vector<Eigen::Triplet<double>> triplets;
  Eigen::VectorXd grad_tv;
  TvDerivatives(terms, u_, lambda_, &grad_tv, &triplets);
  const Eigen::Index N = u_.size();
  ImplicitSystem s;
  s.H = Eigen::MatrixXd::Zero(N, N);
  for (const auto& t : triplets) s.H(t.row(), t.col()) += t.value();
  s.B = grad_tv;
  return s;
}

Eigen::VectorXd TvDenoiseProblem::HypergradientVjp(const Eigen::VectorXd& v, ProblemStatus*) const {
  // dL/dλ = −Bᵀ H⁻¹ v with the factorisation of H at u* left by SolveInner.
  const PixelTerms terms{noisy_.rows, noisy_.cols, epsilon_ * epsilon_};
  Eigen::VectorXd grad_tv;
  TvDerivatives(terms, u_, lambda_, &grad_tv, nullptr);
  const Eigen::VectorXd w = sparse_->ldlt.solve(v);
  if (sparse_->ldlt.info() != Eigen::Success || !w.allFinite()) {
    throw NumericalFailure("tv-denoise: the implicit solve failed");
  }
  return Eigen::VectorXd::Constant(1, -grad_tv.dot(w));
}

Image TvDenoiseProblem::Denoised() const {
  Image im = noisy_;
  im.name = noisy_.name + " (denoised)";
  im.pixels = u_;
  return im;
}

}  // namespace ddn::bilevel
