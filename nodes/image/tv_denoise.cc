#include "nodes/image/tv_denoise.h"

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ddn/error.h"

namespace ddn::image {

struct TvDenoiser::Sparse {
  using Matrix = Eigen::SparseMatrix<double>;
  Matrix H;  // at the last factorisation
  Eigen::SimplicialLDLT<Matrix> ldlt;
  bool analysed = false;
  bool factorised = false;
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
    const double m[2][2] = {{(psi * psi - dx * dx) / psi3, -dx * dy / psi3},
                            {-dx * dy / psi3, (psi * psi - dy * dy) / psi3}};
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

TvDenoiser::TvDenoiser(int rows, int cols, double epsilon)
    : rows_(rows), cols_(cols), epsilon_(epsilon), sparse_(std::make_unique<Sparse>()) {
  if (!(epsilon > 0)) throw InvalidInput("tv-denoise: epsilon must be > 0");
}

TvDenoiser::~TvDenoiser() = default;
TvDenoiser::TvDenoiser(TvDenoiser&&) noexcept = default;
TvDenoiser& TvDenoiser::operator=(TvDenoiser&&) noexcept = default;

double TvDenoiser::Objective(const Eigen::VectorXd& g, const Eigen::VectorXd& u, double lambda) const {
  double tv = 0;
  PixelTerms{rows_, cols_, epsilon_ * epsilon_}.ForEach(u,
                                                        [&](int, int, int, double, double, double psi) { tv += psi; });
  return 0.5 * (u - g).squaredNorm() + lambda * tv;
}

Eigen::VectorXd TvDenoiser::TvGradient(const Eigen::VectorXd& u) const {
  Eigen::VectorXd grad_tv;
  TvDerivatives(PixelTerms{rows_, cols_, epsilon_ * epsilon_}, u, 0.0, &grad_tv, nullptr);
  return grad_tv;
}

void TvDenoiser::Solve(const Eigen::VectorXd& g, double lambda, Eigen::VectorXd* u_ptr, const char* what,
                       ProblemStatus* status) {
  Eigen::VectorXd& u = *u_ptr;
  const PixelTerms terms{rows_, cols_, epsilon_ * epsilon_};
  const Eigen::Index N = u.size();
  std::vector<Eigen::Triplet<double>> triplets;
  Eigen::VectorXd grad_tv;
  auto& sp = *sparse_;
  sp.factorised = false;
  double f = Objective(g, u, lambda);
  for (int it = 1; it <= 300; ++it) {
    TvDerivatives(terms, u, lambda, &grad_tv, &triplets);
    const Eigen::VectorXd grad = (u - g) + lambda * grad_tv;
    sp.H.resize(N, N);
    sp.H.setFromTriplets(triplets.begin(), triplets.end());
    if (!sp.analysed) {
      sp.ldlt.analyzePattern(sp.H);
      sp.analysed = true;
    }
    sp.ldlt.factorize(sp.H);
    if (sp.ldlt.info() != Eigen::Success) {
      throw NumericalFailure(std::string(what) + ": the inner Hessian could not be factorised");
    }
    const Eigen::VectorXd d = -sp.ldlt.solve(grad);
    const bool tiny = d.lpNorm<Eigen::Infinity>() <= 1e-10 * (1.0 + u.lpNorm<Eigen::Infinity>());
    const double slope = grad.dot(d);
    double t = 1.0, f_new = 0;
    Eigen::VectorXd u_new;
    int b = 0;
    for (; b < 60; ++b, t *= 0.5) {
      u_new = u + t * d;
      f_new = Objective(g, u_new, lambda);
      if (f_new <= f + 1e-4 * t * slope + 8 * std::numeric_limits<double>::epsilon() * std::abs(f)) break;
    }
    if (b == 60 && !tiny) throw NumericalFailure(std::string(what) + ": the inner line search failed");
    if (b < 60) {
      u = u_new;
      f = f_new;
    }
    if (tiny) {
      // Refresh H at the final point for the backward.
      TvDerivatives(terms, u, lambda, &grad_tv, &triplets);
      sp.H.setFromTriplets(triplets.begin(), triplets.end());
      sp.ldlt.factorize(sp.H);
      sp.factorised = sp.ldlt.info() == Eigen::Success;
      if (status) {
        status->iterations += it;
        status->residual = std::max(status->residual, ((u - g) + lambda * grad_tv).lpNorm<Eigen::Infinity>());
      }
      return;
    }
  }
  throw NumericalFailure(std::string(what) + ": the inner Newton solve did not converge in 300 iterations");
}

void TvDenoiser::Factorize(const Eigen::VectorXd& u, double lambda, const char* what) {
  std::vector<Eigen::Triplet<double>> triplets;
  Eigen::VectorXd grad_tv;
  TvDerivatives(PixelTerms{rows_, cols_, epsilon_ * epsilon_}, u, lambda, &grad_tv, &triplets);
  auto& sp = *sparse_;
  sp.H.resize(u.size(), u.size());
  sp.H.setFromTriplets(triplets.begin(), triplets.end());
  if (!sp.analysed) {
    sp.ldlt.analyzePattern(sp.H);
    sp.analysed = true;
  }
  sp.ldlt.factorize(sp.H);
  sp.factorised = sp.ldlt.info() == Eigen::Success;
  if (!sp.factorised) throw NumericalFailure(std::string(what) + ": the Hessian could not be factorised");
}

Eigen::VectorXd TvDenoiser::SolveHessian(const Eigen::VectorXd& v, const char* what) const {
  const auto& sp = *sparse_;
  Eigen::VectorXd w;
  if (sp.factorised) w = sp.ldlt.solve(v);
  if (!sp.factorised || sp.ldlt.info() != Eigen::Success || !w.allFinite()) {
    throw NumericalFailure(std::string(what) + ": the implicit solve failed");
  }
  return w;
}

Eigen::MatrixXd TvDenoiser::DenseHessian(const Eigen::VectorXd& u, double lambda) const {
  std::vector<Eigen::Triplet<double>> triplets;
  Eigen::VectorXd grad_tv;
  TvDerivatives(PixelTerms{rows_, cols_, epsilon_ * epsilon_}, u, lambda, &grad_tv, &triplets);
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(u.size(), u.size());
  for (const auto& t : triplets) H(t.row(), t.col()) += t.value();
  return H;
}

}  // namespace ddn::image
