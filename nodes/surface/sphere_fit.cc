// The sphere (circle) fit of surface_fits.h: the algebraic (Kåsa) start, Newton with a Levenberg–Marquardt
// safeguard on the geometric objective Σ w φ(‖p − c‖ − r), and the closed-form implicit backward.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ddn/error.h"
#include "ddn/params.h"
#include "nodes/surface/fit_util.h"
#include "nodes/surface/surface_fits.h"

namespace ddn::surface {

using internal::WeightAt;
using pooling::PenaltyEval;
using pooling::PenaltyValues;

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
using Vec = Eigen::VectorXd;
using Mat = Eigen::MatrixXd;

Eigen::Map<const Vec> Point(const PointCloud& c, int64_t i) { return Eigen::Map<const Vec>(c.points + i * c.d, c.d); }

// f, its gradient and Hessian in y = (c, r), and the residual scale Σ w(|φ'| + |φ''|ρ).
struct SphereSums {
  double f = 0;
  Vec g;
  Mat H;
  double scale = 0;
  double f_rounding = 0;   // a bound on the rounding error of f: 4ε Σ w (|φ'|(ρ + r) + φ)
  bool at_centre = false;  // a point (with weight > 0) at the centre
  bool kink = false;
  bool any_curvature = false;
};

SphereSums Sums(const SphereFitProblem& q, const PenaltyEval& pen, const Vec& centre, double radius, bool second) {
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  SphereSums s;
  s.g.setZero(d + 1);
  if (second) s.H.setZero(d + 1, d + 1);
  const bool kinked = q.kind == PenaltyKind::kHuber || q.kind == PenaltyKind::kTruncatedQuadratic;
  Vec u(d);
  for (int64_t i = 0; i < cl.n; ++i) {
    const double w = WeightAt(cl, i);
    u = Point(cl, i) - centre;
    const double rho = u.norm();
    if (rho > 0) {
      u /= rho;
    } else if (w > 0) {
      s.at_centre = true;
    }
    const PenaltyValues v = pen(rho - radius);
    s.f += w * v.phi;
    s.g.head(d) -= (w * v.d1) * u;
    s.g[d] -= w * v.d1;
    s.scale += w * (std::abs(v.d1) + std::abs(v.d2) * rho);
    s.f_rounding += 4 * kEps * w * (std::abs(v.d1) * (rho + std::abs(radius)) + v.phi);
    if (w > 0 && v.d2 != 0) s.any_curvature = true;
    if (kinked && w > 0 && std::abs(std::abs(rho - radius) - q.alpha) <= 1e-9 * (q.alpha + rho)) s.kink = true;
    if (second) {
      const double a = w * v.d2, b = rho > 0 ? w * v.d1 / rho : 0.0;
      s.H.topLeftCorner(d, d).noalias() += (a - b) * u * u.transpose();
      s.H.topLeftCorner(d, d).diagonal().array() += b;
      s.H.col(d).head(d) += a * u;
      s.H(d, d) += a;
    }
  }
  if (second) s.H.row(d).head(d) = s.H.col(d).head(d).transpose();
  return s;
}

double Residual(const SphereSums& s) { return s.scale > 0 ? s.g.cwiseAbs().maxCoeff() / s.scale : 0.0; }

}  // namespace

void ValidateSphereFit(const SphereFitProblem& q, bool check_points) {
  const PointCloud& c = q.cloud;
  if (c.d < 2) throw InvalidInput("fit_sphere: points must have dimension D >= 2, got D = " + std::to_string(c.d));
  if (!(q.alpha > 0) || !std::isfinite(q.alpha)) throw InvalidInput("fit_sphere: alpha must be > 0");
  const int64_t positive = internal::CheckCloud(c, "fit_sphere", check_points);
  if (positive < c.d + 1) {
    throw InvalidInput("fit_sphere: a " + std::string(c.d == 2 ? "circle" : "sphere") + " in D = " +
                       std::to_string(c.d) + " needs at least " + std::to_string(c.d + 1) +
                       " points with positive weight, got " + std::to_string(positive));
  }
}

double SphereFitObjective(const SphereFitProblem& q, const double* centre, double radius) {
  const PenaltyEval pen(q.kind, q.alpha);
  const Eigen::Map<const Vec> c(centre, q.cloud.d);
  double f = 0;
  for (int64_t i = 0; i < q.cloud.n; ++i) f += WeightAt(q.cloud, i) * pen.Phi((Point(q.cloud, i) - c).norm() - radius);
  return f;
}

void AlgebraicSphereFit(const SphereFitProblem& q, double* centre, double* radius) {
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  // Centre and scale the points (conditioning); the fit ‖p̃‖² ≈ 2cᵀp̃ + k is similarity-equivariant.
  Vec m = Vec::Zero(d);
  double total = 0;
  for (int64_t i = 0; i < cl.n; ++i) {
    total += WeightAt(cl, i);
    m += WeightAt(cl, i) * Point(cl, i);
  }
  m /= total;
  Mat S = Mat::Zero(d, d);
  for (int64_t i = 0; i < cl.n; ++i) {
    const Vec pt = Point(cl, i) - m;
    S.noalias() += WeightAt(cl, i) * pt * pt.transpose();
  }
  const Eigen::SelfAdjointEigenSolver<Mat> es(S, Eigen::EigenvaluesOnly);
  const double lmin = es.eigenvalues()[0], lmax = es.eigenvalues()[d - 1];
  if (!(lmin > 1e-20 * lmax)) {
    throw InvalidInput(std::string("fit_sphere: the points lie in one ") + (d == 2 ? "line (collinear)" : "hyperplane") +
                       ": no finite " + (d == 2 ? "circle" : "sphere") + " is determined by them");
  }
  const double scale = std::sqrt(S.trace() / total);
  Mat A = Mat::Zero(d + 1, d + 1);
  Vec b = Vec::Zero(d + 1), z(d + 1);
  for (int64_t i = 0; i < cl.n; ++i) {
    const Vec pt = (Point(cl, i) - m) / scale;
    z.head(d) = 2 * pt;
    z[d] = 1;
    A.noalias() += WeightAt(cl, i) * z * z.transpose();
    b += (WeightAt(cl, i) * pt.squaredNorm()) * z;
  }
  const Vec sol = A.ldlt().solve(b);
  const Vec c = sol.head(d);
  const double r2 = sol[d] + c.squaredNorm();
  for (int k = 0; k < d; ++k) centre[k] = m[k] + scale * c[k];
  *radius = scale * std::sqrt(std::max(r2, 0.0));
}

void SolveSphereFit(const SphereFitProblem& q, double* centre_out, double* radius_out, ProblemStatus* status,
                    const RobustFitOptions& options) {
  const int d = static_cast<int>(q.cloud.d);
  const PenaltyEval pen(q.kind, q.alpha);
  Vec y(d + 1);
  AlgebraicSphereFit(q, y.data(), &y[d]);
  SphereSums s = Sums(q, pen, y.head(d), y[d], true);
  double residual = Residual(s), mu = 0;
  int iterations = 0, stalls = 0;
  while (iterations < options.max_iterations && residual > 4 * kEps) {
    ++iterations;
    bool moved = false;
    // Newton when H is positive definite, else (and when the step does not descend) damped steps (H + μ·diag).
    for (int attempt = 0; attempt < 40 && !moved; ++attempt) {
      Mat K = s.H;
      if (mu > 0) K.diagonal() += mu * (s.H.diagonal().cwiseAbs().array() + 1e-12 * s.scale).matrix();
      Eigen::LLT<Mat> llt(K);
      if (llt.info() != Eigen::Success) {
        mu = std::max(2 * mu, 1e-6);
        continue;
      }
      const Vec step = -llt.solve(s.g);
      const Vec y1 = y + step;
      const SphereSums s1 = Sums(q, pen, y1.head(d), y1[d], true);
      const double r1 = Residual(s1);
      // Descent, or a smaller residual where f only moves by rounding.
      const double tol = s.f_rounding + s1.f_rounding;
      if (s1.f < s.f - tol || (s1.f <= s.f + tol && r1 < residual)) {
        y = y1;
        s = s1;
        residual = r1;
        moved = true;
        mu = mu > 1e-6 ? mu / 4 : 0.0;
      } else if (s1.f <= s.f + tol) {
        break;  // at rounding level
      } else {
        mu = std::max(4 * mu, 1e-6);
      }
    }
    if (!moved && ++stalls >= 2) break;
  }
  status->iterations = iterations;
  status->residual = residual;
  status->Set(kNotCertified, "a local minimum from the algebraic fit (the geometric fit is not convex)");
  if (!s.any_curvature) {
    status->Set(kAllOutliers, "no point within the penalty's reach of the sphere: the objective is flat here");
  } else if (residual > options.failure_residual) {
    throw NumericalFailure("fit_sphere: the solve did not converge (scaled residual " + FormatDouble(residual) +
                           " after " + std::to_string(iterations) + " iterations)");
  }
  if (s.at_centre) status->Set(kNonSmooth, "a point lies at the centre, where its distance is not differentiable");
  if (s.kink) status->Set(kNonSmooth, "a point lies at the kink of the penalty (|r| = alpha)");
  const Eigen::SelfAdjointEigenSolver<Mat> es(s.H, Eigen::EigenvaluesOnly);
  if (s.any_curvature && !(es.eigenvalues()[0] > options.non_unique_gap * es.eigenvalues().cwiseAbs().maxCoeff())) {
    status->Set(kNonUnique, "singular Hessian at the solution: the minimiser may not be unique");
  }
  for (int k = 0; k < d; ++k) centre_out[k] = y[k];
  *radius_out = y[d];
}

void SphereFitBackward(const SphereFitProblem& q, const double* centre, double radius, const double* v_centre,
                       double v_radius, double* d_points, double* d_weights, ProblemStatus* status) {
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  const PenaltyEval pen(q.kind, q.alpha);
  const Eigen::Map<const Vec> c(centre, d);
  const SphereSums s = Sums(q, pen, c, radius, true);
  Vec v(d + 1), w(d + 1);
  v.head(d) = Eigen::Map<const Vec>(v_centre, d);
  v[d] = v_radius;
  if (!s.any_curvature) {
    w.setZero();
    status->Set(kAllOutliers, "no point within the penalty's reach: gradient 0");
  } else {
    Eigen::LDLT<Mat> ldlt(s.H);
    const Eigen::SelfAdjointEigenSolver<Mat> es(s.H, Eigen::EigenvaluesOnly);
    const double top = es.eigenvalues().cwiseAbs().maxCoeff();
    if (ldlt.info() == Eigen::Success && es.eigenvalues().cwiseAbs().minCoeff() > 1e-10 * top) {
      w = ldlt.solve(v);
    } else {
      internal::SolveSymmetricPseudo(s.H, v, &w, 1e-10);
      status->Set(kNonRegular, "singular Hessian: minimum-norm gradient");
    }
  }
  const auto wc = w.head(d);
  const double wr = w[d];
  Vec u(d);
  for (int64_t i = 0; i < cl.n; ++i) {
    const double wi = WeightAt(cl, i);
    u = Point(cl, i) - c;
    const double rho = u.norm();
    if (rho > 0) u /= rho;
    const PenaltyValues pv = pen(rho - radius);
    const double uw = u.dot(wc), b = rho > 0 ? pv.d1 / rho : 0.0;
    Eigen::Map<Vec> dp(d_points + i * d, d);
    // (φ'' uuᵀ + φ'/ρ (I − uuᵀ)) w_c + φ'' u w_r
    dp = wi * (b * wc + ((pv.d2 - b) * uw + pv.d2 * wr) * u);
    if (d_weights) d_weights[i] = pv.d1 * (uw + wr);
  }
}

}  // namespace ddn::surface
