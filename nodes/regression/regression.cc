#include "nodes/regression/regression.h"

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "ddn/error.h"
#include "nodes/pooling/penalties.h"

namespace ddn::regression {
namespace {

double Softplus(double s) {
  return std::max(s, 0.0) + std::log1p(std::exp(-std::abs(s)));
}
double Sigmoid(double s) {
  if (s >= 0) return 1.0 / (1.0 + std::exp(-s));
  const double e = std::exp(s);
  return e / (1.0 + e);
}

}  // namespace

Eigen::MatrixXd DesignWithIntercept(const double* X, int64_t n, int64_t p) {
  Eigen::MatrixXd Z(n, p + 1);
  Z.leftCols(p) = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(X, n, p);
  Z.col(p).setOnes();
  return Z;
}

// In blocks of rows: the scaled copy of a block (not of all n rows: 88 MB per Newton step for 1e6 rows × 11
// columns) stays in cache.
Eigen::MatrixXd WeightedGram(const Eigen::MatrixXd& Z, const Eigen::VectorXd& w) {
  constexpr Eigen::Index kBlock = 4096;
  const Eigen::Index n = Z.rows(), m = Z.cols();
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(m, m), scaled;
  for (Eigen::Index b = 0; b < n; b += kBlock) {
    const Eigen::Index rows = std::min(kBlock, n - b);
    scaled = Z.middleRows(b, rows).array().colwise() * w.segment(b, rows).array();
    G.noalias() += Z.middleRows(b, rows).transpose() * scaled;
  }
  return G;
}

int NewtonMinimize(const std::function<double(const Eigen::VectorXd&, Eigen::VectorXd*, Eigen::MatrixXd*)>& fn,
                   Eigen::VectorXd* u, const std::string& what, ProblemStatus* status, int max_iterations) {
  constexpr double kEps = std::numeric_limits<double>::epsilon();
  Eigen::VectorXd g, g_new;
  Eigen::MatrixXd H;
  double f = fn(*u, &g, &H);
  auto converged = [&](int it, const Eigen::VectorXd& gradient) {
    if (status) {
      status->iterations += it;
      status->residual = std::max(status->residual, gradient.lpNorm<Eigen::Infinity>());
    }
    return it;
  };
  for (int it = 1; it <= max_iterations; ++it) {
    // Blocked Cholesky (fast); LDLT only if H is not numerically positive definite.
    Eigen::VectorXd d;
    Eigen::LLT<Eigen::MatrixXd> llt(H);
    if (llt.info() == Eigen::Success) {
      d = -llt.solve(g);
    } else {
      Eigen::LDLT<Eigen::MatrixXd> ldlt(H);
      d = -ldlt.solve(g);
      if (ldlt.info() != Eigen::Success) d.setConstant(std::numeric_limits<double>::quiet_NaN());
    }
    if (!d.allFinite()) throw NumericalFailure(what + ": the inner Hessian could not be factorised");
    const double slope = g.dot(d);
    const double step = d.lpNorm<Eigen::Infinity>();
    const bool tiny = step <= 1e-10 * (1.0 + u->lpNorm<Eigen::Infinity>());
    // The decrease the quadratic model predicts (−slope/2) is below the rounding of f: comparisons of f are
    // rounding noise from here on (backtracking then searched for a "decrease" for hundreds of iterations on
    // large data with a small robust scale). Near the minimum of a smooth convex f, full Newton steps shrink the
    // gradient quadratically: they are taken while they do, and the solve ends at a tiny step, or when the
    // gradient stops shrinking (the rounding floor of its sum over the rows).
    const bool flat = -slope <= 64 * kEps * std::abs(f);
    if (tiny || flat) {
      const Eigen::VectorXd u_new = *u + d;
      const double f_new = fn(u_new, &g_new, nullptr);
      const double gnorm = g.lpNorm<Eigen::Infinity>(), gnorm_new = g_new.lpNorm<Eigen::Infinity>();
      // (f itself is no judge here: its sum over the rows is rounded at ~n·ε·|f|.)
      const bool better = std::isfinite(f_new) && g_new.allFinite() && gnorm_new <= gnorm;
      if (better) *u = u_new;
      if (tiny || !better || gnorm_new > 0.5 * gnorm) return converged(it, better ? g_new : g);
      f = fn(*u, &g, &H);
      continue;
    }
    double t = 1.0;
    Eigen::VectorXd u_new;
    double f_new = 0;
    int b = 0;
    for (; b < 60; ++b, t *= 0.5) {
      u_new = *u + t * d;
      f_new = fn(u_new, &g_new, nullptr);
      // Armijo, with room for rounding once f has converged to machine precision.
      if (std::isfinite(f_new) && f_new <= f + 1e-4 * t * slope + 8 * kEps * std::abs(f)) break;
    }
    if (b == 60) throw NumericalFailure(what + ": the inner line search failed");
    *u = u_new;
    f = fn(*u, &g, &H);
  }
  throw NumericalFailure(what + ": the inner Newton solve did not converge in " + std::to_string(max_iterations) +
                         " iterations");
}

// ---- ridge ------------------------------------------------------------------------------------------------------

Eigen::MatrixXd RidgeHessian(const Eigen::MatrixXd& gram, const Eigen::VectorXd& lambda) {
  const Eigen::Index p = gram.rows() - 1;
  const bool per_feature = lambda.size() > 1;
  Eigen::MatrixXd H = gram;
  for (Eigen::Index j = 0; j < p; ++j) H(j, j) += per_feature ? lambda[j] : lambda[0];
  return H;
}

void SolveRidge(const Eigen::MatrixXd& gram, const Eigen::VectorXd& zty, const Eigen::VectorXd& lambda,
                Eigen::VectorXd* u, ProblemStatus* status) {
  const Eigen::MatrixXd H = RidgeHessian(gram, lambda);
  Eigen::LLT<Eigen::MatrixXd> llt(H);
  if (llt.info() != Eigen::Success) throw NumericalFailure("ridge: the inner Hessian is not positive definite");
  // The inner problem is quadratic: one Newton step from anywhere, then one refinement step for the
  // last bits of accuracy.
  *u = llt.solve(zty);
  const Eigen::VectorXd residual = H * *u - zty;
  *u -= llt.solve(residual);
  if (status) {
    status->iterations += 2;
    status->residual = std::max(status->residual, (H * *u - zty).lpNorm<Eigen::Infinity>());
  }
}

ImplicitSystem RidgeBlocks(const Eigen::MatrixXd& gram, const Eigen::VectorXd& lambda, const Eigen::VectorXd& u) {
  const Eigen::Index p = gram.rows() - 1;
  const bool per_feature = lambda.size() > 1;
  ImplicitSystem s;
  s.H = RidgeHessian(gram, lambda);
  s.B = Eigen::MatrixXd::Zero(p + 1, lambda.size());
  for (Eigen::Index j = 0; j < p; ++j) s.B(j, per_feature ? j : 0) = u[j];
  return s;
}

// ---- logistic ---------------------------------------------------------------------------------------------------

double BinaryLogLoss(const Eigen::MatrixXd& Z, const Eigen::Ref<const Eigen::VectorXd>& y, const Eigen::VectorXd& u,
                     Eigen::VectorXd* grad, Eigen::MatrixXd* hess) {
  const Eigen::Index n = Z.rows();
  const double inv_n = 1.0 / static_cast<double>(n);
  const Eigen::VectorXd s = Z * u;
  double f = 0;
  Eigen::VectorXd r(n), c(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    f += Softplus(s[i]) - y[i] * s[i];
    const double q = Sigmoid(s[i]);
    r[i] = q - y[i];
    c[i] = q * (1.0 - q) * inv_n;
  }
  if (grad) *grad = Z.transpose() * r * inv_n;
  if (hess) *hess = WeightedGram(Z, c);
  return f * inv_n;
}

Eigen::MatrixXd UnpackClasses(const Eigen::VectorXd& u, Eigen::Index columns, int classes) {
  Eigen::MatrixXd U = Eigen::MatrixXd::Zero(columns, classes);
  for (Eigen::Index i = 0; i < u.size(); ++i) U(i % columns, i / columns) = u[i];
  return U;
}

double MultinomialLogLoss(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, const Eigen::VectorXd& u,
                          Eigen::VectorXd* grad, Eigen::MatrixXd* hess) {
  const Eigen::Index n = Z.rows(), p1 = Z.cols(), K = Y.cols(), m = u.size();
  const double inv_n = 1.0 / static_cast<double>(n);
  const Eigen::MatrixXd S = Z * UnpackClasses(u, p1, static_cast<int>(K));
  Eigen::MatrixXd P(n, K);
  double f = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double smax = S.row(i).maxCoeff();
    const Eigen::RowVectorXd e = (S.row(i).array() - smax).exp();
    const double sum = e.sum();
    // (With one-hot labels Σ_k Y_ik s_ik is s_{i,y_i} exactly: the other products are zeros.)
    f += smax + std::log(sum) - Y.row(i).dot(S.row(i));
    P.row(i) = e / sum;
  }
  if (grad) {
    const Eigen::MatrixXd G = Z.transpose() * (P - Y) * inv_n;  // p1 × K
    grad->resize(m);
    for (Eigen::Index i = 0; i < m; ++i) (*grad)[i] = G(i % p1, i / p1);
  }
  if (hess) {
    // Σ_i (diag(p_i) − p_i p_iᵀ) ⊗ z_i z_iᵀ / n = blockdiag_k(Zᵀ diag(P_k) Z)/n − YᵀY/n with
    // Y = [P_1 ⊙ Z, …, P_K ⊙ Z] (row i of block k is p_ik z_i): one symmetric rank-n update. (Independent of the
    // labels: they enter f linearly.)
    Eigen::MatrixXd PZ(n, K * p1);
    for (Eigen::Index k = 0; k < K; ++k) PZ.middleCols(k * p1, p1) = Z.array().colwise() * P.col(k).array();
    Eigen::MatrixXd full = Eigen::MatrixXd::Zero(K * p1, K * p1);
    full.selfadjointView<Eigen::Lower>().rankUpdate(PZ.transpose(), -inv_n);
    for (Eigen::Index k = 0; k < K; ++k) {
      full.block(k * p1, k * p1, p1, p1).noalias() += Z.transpose() * PZ.middleCols(k * p1, p1) * inv_n;
    }
    full.triangularView<Eigen::StrictlyUpper>() = full.transpose();
    *hess = full.topLeftCorner(m, m);
  }
  return f * inv_n;
}

void AddWeightPenalty(const Eigen::VectorXd& u, Eigen::Index columns, double lambda, double* f, Eigen::VectorXd* grad,
                      Eigen::MatrixXd* hess) {
  for (Eigen::Index i = 0; i < u.size(); ++i) {
    if (i % columns == columns - 1) continue;  // intercepts are not penalised
    *f += 0.5 * lambda * u[i] * u[i];
    if (grad) (*grad)[i] += lambda * u[i];
    if (hess) (*hess)(i, i) += lambda;
  }
}

Eigen::VectorXd WeightPenaltyColumn(const Eigen::VectorXd& u, Eigen::Index columns) {
  Eigen::VectorXd b = u;
  for (Eigen::Index i = 0; i < u.size(); ++i) {
    if (i % columns == columns - 1) b[i] = 0;
  }
  return b;
}

Eigen::Index LogisticUnknowns(Eigen::Index columns, Eigen::Index label_columns) {
  return label_columns == 1 ? columns : label_columns * columns - 1;
}

double LogisticLoss(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, const Eigen::VectorXd& u, Eigen::VectorXd* grad,
                    Eigen::MatrixXd* hess) {
  if (Y.cols() == 1) return BinaryLogLoss(Z, Y.col(0), u, grad, hess);
  return MultinomialLogLoss(Z, Y, u, grad, hess);
}

double LogisticObjective(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, double lambda, const Eigen::VectorXd& u,
                         Eigen::VectorXd* grad, Eigen::MatrixXd* hess) {
  double f = LogisticLoss(Z, Y, u, grad, hess);
  AddWeightPenalty(u, Z.cols(), lambda, &f, grad, hess);
  return f;
}

void SolveLogistic(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, double lambda, Eigen::VectorXd* u,
                   const std::string& what, ProblemStatus* status) {
  NewtonMinimize([&](const Eigen::VectorXd& x, Eigen::VectorXd* g,
                     Eigen::MatrixXd* H) { return LogisticObjective(Z, Y, lambda, x, g, H); },
                 u, what, status);
}

ImplicitSystem LogisticBlocks(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, double lambda,
                              const Eigen::VectorXd& u) {
  ImplicitSystem s;
  Eigen::VectorXd g;
  LogisticObjective(Z, Y, lambda, u, &g, &s.H);
  s.B = WeightPenaltyColumn(u, Z.cols());
  return s;
}

// ---- robust -----------------------------------------------------------------------------------------------------

double RobustObjective(const Eigen::MatrixXd& Z, const Eigen::VectorXd& y, const Eigen::VectorXd& u, double alpha,
                       double mu, Eigen::VectorXd* grad, Eigen::MatrixXd* hess) {
  const Eigen::Index n = Z.rows(), p = Z.cols() - 1;
  const double inv_n = 1.0 / static_cast<double>(n), inv_a2 = 1.0 / (alpha * alpha);
  const Eigen::VectorXd r = Z * u - y;
  double f = 0;
  Eigen::VectorXd d1(n), d2(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const pooling::PenaltyValues v = pooling::EvaluatePenalty<pooling::PenaltyKind::kPseudoHuber>(r[i], alpha, inv_a2);
    f += v.phi;
    d1[i] = v.d1 * inv_n;
    d2[i] = v.d2 * inv_n;
  }
  f *= inv_n;
  const Eigen::VectorXd w = u.head(p);
  f += 0.5 * mu * w.squaredNorm();
  if (grad) {
    *grad = Z.transpose() * d1;
    grad->head(p) += mu * w;
  }
  if (hess) {
    *hess = WeightedGram(Z, d2);
    hess->diagonal().head(p).array() += mu;
  }
  return f;
}

Eigen::VectorXd RobustAlphaColumn(const Eigen::MatrixXd& Z, const Eigen::VectorXd& y, const Eigen::VectorXd& u,
                                  double alpha) {
  const Eigen::Index n = Z.rows();
  const Eigen::VectorXd r = Z * u - y;
  Eigen::VectorXd c(n);
  for (Eigen::Index i = 0; i < n; ++i) c[i] = pooling::PseudoHuberSlopeByAlpha(r[i], alpha);
  return Z.transpose() * c / static_cast<double>(n);
}

// ---- the implicit derivatives with respect to the data -------------------------------------------------------------

void LinearModelVjp(const Eigen::MatrixXd& Z, const Eigen::VectorXd& w, const Eigen::VectorXd& q,
                    const Eigen::VectorXd& c, const Eigen::VectorXd& dc_ds, const Eigen::VectorXd& dc_dy, double* dy,
                    double* dX) {
  const Eigen::Index n = Z.rows(), p = Z.cols() - 1;
  const double inv_n = 1.0 / static_cast<double>(n);
  const Eigen::VectorXd t = Z * q;
  for (Eigen::Index i = 0; i < n; ++i) {
    if (dy) dy[i] = -t[i] * dc_dy[i] * inv_n;
    if (dX) {
      for (Eigen::Index j = 0; j < p; ++j) dX[i * p + j] = -(q[j] * c[i] + t[i] * dc_ds[i] * w[j]) * inv_n;
    }
  }
}

void MultinomialVjp(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& W, const Eigen::MatrixXd& Q,
                    const Eigen::MatrixXd& P, const Eigen::MatrixXd& C, double* dY, double* dX) {
  const Eigen::Index n = Z.rows(), p = Z.cols() - 1, K = Q.cols();
  const double inv_n = 1.0 / static_cast<double>(n);
  const Eigen::MatrixXd T = Z * Q;  // n × K, row i = t_iᵀ
  for (Eigen::Index i = 0; i < n; ++i) {
    if (dY) {
      for (Eigen::Index k = 0; k < K; ++k) dY[i * K + k] = T(i, k) * inv_n;
    }
    if (dX) {
      // A_i t_i = p_i ⊙ t_i − p_i (p_i · t_i).
      const Eigen::RowVectorXd At = P.row(i).cwiseProduct(T.row(i)) - P.row(i) * P.row(i).dot(T.row(i));
      for (Eigen::Index j = 0; j < p; ++j) {
        dX[i * p + j] = -(Q.row(j).dot(C.row(i)) + W.row(j).dot(At)) * inv_n;
      }
    }
  }
}

}  // namespace ddn::regression
