#include "ddn/implicit.h"

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <cmath>

#include "ddn/error.h"

namespace ddn {

bool SolveSymmetric(const Eigen::MatrixXd& K, const Eigen::MatrixXd& r, Eigen::MatrixXd* z, double rcond,
                    bool allow_cholesky) {
  const Eigen::Index n = K.rows();
  if (n == 0) {
    *z = Eigen::MatrixXd::Zero(0, r.cols());
    return true;
  }
  const double scale = K.cwiseAbs().maxCoeff();
  if (scale == 0.0) {  // K = 0: the minimum-norm solution is 0
    *z = Eigen::MatrixXd::Zero(n, r.cols());
    return false;
  }
  if (allow_cholesky) {
    Eigen::LLT<Eigen::MatrixXd> llt(K);
    if (llt.info() == Eigen::Success) {
      // rcond estimate from the Cholesky factor: (min L_ii / max L_ii)² bounds the extreme eigenvalues'
      // ratio from above, so a small value is a reliable warning; a large one is confirmed by rcond().
      const Eigen::VectorXd d = llt.matrixL().toDenseMatrix().diagonal();
      const double ratio = d.minCoeff() / d.maxCoeff();
      if (ratio * ratio > rcond && llt.rcond() > rcond) {
        *z = llt.solve(r);
        return true;
      }
    }
  }
  // Indefinite (a KKT matrix) or near-singular: a rank-revealing decomposition. The threshold is
  // relative to the largest pivot, matching rcond.
  Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod;
  cod.setThreshold(rcond);
  cod.compute(K);
  *z = cod.solve(r);
  if (cod.rank() < n) return false;
  // Full rank by the threshold: confirm the residual is small (an indefinite but regular KKT matrix).
  return true;
}

namespace {

// Symmetric diagonal scaling S of K = [H Aᵀ; A 0] (A with p rows) such that the rank test on S K S is relative and
// does not depend on the units of f or of the constraints: variable j by 1/√(max_k |H_jk| + γ Σ_i A_ij²) with
// γ = max|H| / max_i ‖A_i‖², each constraint row then to a largest entry of 1 (as the generic solver does).
Eigen::VectorXd KktScaling(const Eigen::MatrixXd& H, const Eigen::MatrixXd& A) {
  const Eigen::Index m = H.rows(), p = A.rows();
  Eigen::VectorXd s = Eigen::VectorXd::Ones(m + p);
  const Eigen::VectorXd hrow = m > 0 ? Eigen::VectorXd(H.cwiseAbs().rowwise().maxCoeff()) : Eigen::VectorXd();
  const Eigen::VectorXd asq =
      p > 0 ? Eigen::VectorXd(A.cwiseAbs2().colwise().sum().transpose()) : Eigen::VectorXd::Zero(m);
  const double hmax = m > 0 ? hrow.maxCoeff() : 0.0;
  const double amax = p > 0 ? A.cwiseAbs2().rowwise().sum().maxCoeff() : 0.0;
  const double gamma = hmax > 0 && amax > 0 ? hmax / amax : 1.0;
  for (Eigen::Index j = 0; j < m; ++j) {
    const double d = hrow[j] + gamma * asq[j];
    if (d > 0 && std::isfinite(d)) s[j] = 1.0 / std::sqrt(d);
  }
  for (Eigen::Index i = 0; i < p; ++i) {
    const double r = (A.row(i).cwiseAbs().transpose().cwiseProduct(s.head(m))).maxCoeff();
    if (r > 0 && std::isfinite(r)) s[m + i] = 1.0 / r;
  }
  return s;
}

}  // namespace

Eigen::VectorXd ImplicitVjp(const ImplicitSystem& s, const Eigen::VectorXd& v, ProblemStatus* status,
                            const ImplicitOptions& options, Eigen::VectorXd* w_out) {
  const Eigen::Index m = s.H.rows(), n = s.B.cols(), p = s.A.rows();
  if (s.H.cols() != m || s.B.rows() != m || v.size() != m ||
      (p > 0 && (s.A.cols() != m || s.C.rows() != p || s.C.cols() != n))) {
    throw NumericalFailure("implicit system has inconsistent block sizes");
  }
  // Solved on the equilibrated system S K S (S r), so that the rank test is relative (see KktScaling).
  Eigen::MatrixXd z;
  bool regular;
  const Eigen::VectorXd scale = KktScaling(s.H, s.A);
  if (p == 0) {
    const Eigen::MatrixXd Hs = scale.asDiagonal() * s.H * scale.asDiagonal();
    regular = SolveSymmetric(Hs, scale.cwiseProduct(v), &z, options.rcond, !options.force_least_squares);
  } else {
    Eigen::MatrixXd K = Eigen::MatrixXd::Zero(m + p, m + p);
    K.topLeftCorner(m, m) = s.H;
    K.topRightCorner(m, p) = s.A.transpose();
    K.bottomLeftCorner(p, m) = s.A;
    K = scale.asDiagonal() * K * scale.asDiagonal();
    Eigen::VectorXd r = Eigen::VectorXd::Zero(m + p);
    r.head(m) = v;
    regular = SolveSymmetric(K, scale.cwiseProduct(r), &z, options.rcond, /*allow_cholesky=*/false);
    if (p > m && status) status->Set(kDegenerate, "more active constraints than variables");
  }
  z = scale.asDiagonal() * z;
  if (!regular && status) {
    status->Set(kNonRegular, p == 0 ? "singular Hessian: minimum-norm least-squares gradient"
                                    : "singular KKT matrix: minimum-norm least-squares gradient");
  }
  const Eigen::VectorXd w = z.col(0).head(m);
  Eigen::VectorXd dx = -(s.B.transpose() * w);
  if (p > 0) dx -= s.C.transpose() * z.col(0).tail(p);
  if (w_out) *w_out = w;
  return dx;
}

Eigen::MatrixXd ImplicitJacobian(const ImplicitSystem& s, ProblemStatus* status, const ImplicitOptions& options) {
  const Eigen::Index m = s.H.rows(), n = s.B.cols();
  Eigen::MatrixXd J(m, n);
  for (Eigen::Index i = 0; i < m; ++i) {
    J.row(i) = ImplicitVjp(s, Eigen::VectorXd::Unit(m, i), status, options).transpose();
  }
  return J;
}

}  // namespace ddn
