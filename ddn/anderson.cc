#include "ddn/anderson.h"

#include <Eigen/Dense>
#include <cmath>
#include <limits>

namespace ddn {
namespace {

Eigen::MatrixXd Regularised(const Eigen::MatrixXd& G, double rho_scale) {
  const Eigen::Index c = G.cols();
  Eigen::MatrixXd M = G.transpose() * G;
  const double rho = rho_scale * M.trace() / static_cast<double>(c) + std::numeric_limits<double>::min();
  M.diagonal().array() += rho;
  return M;
}

}  // namespace

Eigen::VectorXd AndersonWeights(const Eigen::MatrixXd& G, double rho_scale) {
  const Eigen::Index c = G.cols();
  const Eigen::VectorXd a = Regularised(G, rho_scale).ldlt().solve(Eigen::VectorXd::Ones(c));
  const double s = a.sum();
  if (!(std::abs(s) > 0) || !a.allFinite()) {
    Eigen::VectorXd last = Eigen::VectorXd::Zero(c);
    last[c - 1] = 1.0;
    return last;
  }
  return a / s;
}

Eigen::MatrixXd AndersonWeightsAdjoint(const Eigen::MatrixXd& G, const Eigen::VectorXd& alpha_bar, double rho_scale) {
  const Eigen::Index c = G.cols();
  const auto ldlt = Regularised(G, rho_scale).ldlt();
  const Eigen::VectorXd a = ldlt.solve(Eigen::VectorXd::Ones(c));
  const double s = a.sum();
  if (!(std::abs(s) > 0) || !a.allFinite()) return Eigen::MatrixXd::Zero(G.rows(), c);
  const Eigen::VectorXd alpha = a / s;
  // α = a/s: ā = (ᾱ − (ᾱ·α)1)/s.  (M + ρI)a = 1: M̄ = −b aᵀ with b = (M + ρI)⁻¹ ā.
  const Eigen::VectorXd a_bar = (alpha_bar.array() - alpha_bar.dot(alpha)).matrix() / s;
  const Eigen::VectorXd b = ldlt.solve(a_bar);
  Eigen::MatrixXd M_bar = -b * a.transpose();
  // ρ = rho_scale·tr(GᵀG)/c adds rho_scale·tr(M̄)/c to the diagonal of GᵀG's adjoint.
  M_bar.diagonal().array() += rho_scale * M_bar.trace() / static_cast<double>(c);
  return G * (M_bar + M_bar.transpose());
}

}  // namespace ddn
