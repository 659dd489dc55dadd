// nodes/surface/fit_util.h: small dense linear algebra shared by the surface fits (internal to nodes/surface).
//
//   TangentBasis(n)        an orthonormal basis of n⊥ (D × (D−1)) from the Householder reflection that maps n to
//                          ∓e_k, k = argmax |n_k| (stable for every unit n).
//   SmallestEigenpair(S)   the smallest eigenvalue λ₁ of a symmetric S with a unit eigenvector, λ₂ and λ_max:
//                          Eigen's closed form for 2×2 and 3×3, the QR iteration otherwise, followed by one
//                          Newton step on the Rayleigh quotient on the sphere, (TᵀST − λ₁I) z = −TᵀSn, which
//                          brings ‖Sn − λ₁n‖ to rounding level when the gap λ₂ − λ₁ is not tiny.
//   SolveSymmetricPseudo   K x = r for a small symmetric K: LDLT when K is well conditioned, otherwise the
//                          minimum-norm solution from the eigendecomposition (eigenvalues below rcond·max|λ|
//                          dropped); reports which.
//   Validate helpers       one-line InvalidInput messages naming the input, the index and the value.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "ddn/error.h"
#include "ddn/params.h"
#include "nodes/surface/surface_fits.h"

namespace ddn::surface::internal {

template <int Dim>
struct Fixed {
  static constexpr int kTangent = Dim == Eigen::Dynamic ? Eigen::Dynamic : Dim - 1;
  using Vec = Eigen::Matrix<double, Dim, 1>;
  using Mat = Eigen::Matrix<double, Dim, Dim>;
  using Basis = Eigen::Matrix<double, Dim, kTangent>;
  using TVec = Eigen::Matrix<double, kTangent, 1>;
  using TMat = Eigen::Matrix<double, kTangent, kTangent>;
};

template <int Dim>
typename Fixed<Dim>::Basis TangentBasis(const typename Fixed<Dim>::Vec& n) {
  const int d = static_cast<int>(n.size());
  int k = 0;
  for (int j = 1; j < d; ++j)
    if (std::abs(n[j]) > std::abs(n[k])) k = j;
  typename Fixed<Dim>::Vec v = n;
  v[k] += n[k] >= 0 ? 1.0 : -1.0;
  const double vv = v.squaredNorm();
  typename Fixed<Dim>::Basis T(d, d - 1);
  for (int col = 0, j = 0; j < d; ++j) {
    if (j == k) continue;
    // Column j of I − 2vvᵀ/(vᵀv).
    T.col(col) = (-2.0 * v[j] / vv) * v;
    T(j, col) += 1.0;
    ++col;
  }
  return T;
}

template <int Dim>
struct Eigenpair {
  double lambda1 = 0, lambda2 = 0, lambda_max = 0;
  typename Fixed<Dim>::Vec vector;
};

template <int Dim>
Eigenpair<Dim> SmallestEigenpair(const typename Fixed<Dim>::Mat& S) {
  using Mat = typename Fixed<Dim>::Mat;
  Eigenpair<Dim> out;
  const int d = static_cast<int>(S.rows());
  Eigen::SelfAdjointEigenSolver<Mat> es;
  if constexpr (Dim == 2 || Dim == 3) {
    es.computeDirect(S);
  } else {
    es.compute(S);
  }
  out.vector = es.eigenvectors().col(0);
  out.vector.normalize();
  out.lambda1 = es.eigenvalues()[0];
  out.lambda2 = es.eigenvalues()[1];
  out.lambda_max = es.eigenvalues()[d - 1];
  // One Riemannian Newton step on ½nᵀSn over the sphere, unless the eigen-residual is at rounding level already.
  const typename Fixed<Dim>::Vec Sn = S * out.vector;
  const double lambda = out.vector.dot(Sn);
  const double scale = std::max(std::abs(out.lambda_max), std::abs(out.lambda1));
  if ((Sn - lambda * out.vector).norm() > 4 * std::numeric_limits<double>::epsilon() * scale &&
      out.lambda2 - out.lambda1 > 1e-8 * scale) {
    const auto T = TangentBasis<Dim>(out.vector);
    const typename Fixed<Dim>::TVec g = T.transpose() * Sn;
    typename Fixed<Dim>::TMat M = T.transpose() * S * T;
    M.diagonal().array() -= lambda;
    Eigen::LLT<typename Fixed<Dim>::TMat> llt(M);
    if (llt.info() == Eigen::Success) {
      const typename Fixed<Dim>::TVec z = -llt.solve(g);
      out.vector = (out.vector + T * z).normalized();
    }
  }
  out.lambda1 = out.vector.dot(S * out.vector);
  return out;
}

// Solves K x = r (K small, symmetric). Returns false if the minimum-norm solution was used.
template <class MatK, class VecR>
bool SolveSymmetricPseudo(const MatK& K, const VecR& r, VecR* x, double rcond = 1e-10) {
  Eigen::SelfAdjointEigenSolver<MatK> es(K);
  const auto& ev = es.eigenvalues();
  const double top = ev.cwiseAbs().maxCoeff();
  bool regular = true;
  VecR coeff = es.eigenvectors().transpose() * r;
  for (int j = 0; j < static_cast<int>(ev.size()); ++j) {
    if (!(std::abs(ev[j]) > rcond * top)) {
      coeff[j] = 0;
      regular = false;
    } else {
      coeff[j] /= ev[j];
    }
  }
  *x = es.eigenvectors() * coeff;
  return regular;
}

// Checks the weights of a cloud (finite, ≥ 0) and, if `check_points`, the points (finite); returns the number of
// points with positive weight. `node` names the node in messages. (The nodes' batch layer has checked every input
// for NaN and Inf already: they pass check_points = false.)
inline int64_t CheckCloud(const PointCloud& c, const std::string& node, bool check_points = true) {
  for (int64_t k = 0; check_points && k < c.n * c.d; ++k) {
    if (!std::isfinite(c.points[k])) {
      throw InvalidInput(node + ": input 'points' has a non-finite value (" + FormatDouble(c.points[k]) +
                         ") at point " + std::to_string(k / c.d) + ", coordinate " + std::to_string(k % c.d));
    }
  }
  if (!c.weights) return c.n;
  int64_t positive = 0;
  for (int64_t i = 0; i < c.n; ++i) {
    const double w = c.weights[i];
    if (!std::isfinite(w)) {
      throw InvalidInput(node + ": input 'weights' has a non-finite value (" + FormatDouble(w) + ") at index " +
                         std::to_string(i));
    }
    if (w < 0) {
      throw InvalidInput(node + ": input 'weights' must be >= 0, got " + FormatDouble(w) + " at index " +
                         std::to_string(i));
    }
    positive += w > 0;
  }
  if (positive == 0) throw InvalidInput(node + ": input 'weights' is all zero: there is nothing to fit");
  return positive;
}

inline double WeightAt(const PointCloud& c, int64_t i) {
  return c.weights ? c.weights[i] : 1.0;
}

}  // namespace ddn::surface::internal
