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

// Fixed-size Eigen types for D = 2, 3 (no heap allocation per problem), dynamic otherwise; y = (c, r) has D + 1.
template <int Dim>
struct SphereTypes {
  static constexpr int kY = Dim == Eigen::Dynamic ? Eigen::Dynamic : Dim + 1;
  using Vec = Eigen::Matrix<double, Dim, 1>;
  using YVec = Eigen::Matrix<double, kY, 1>;
  using YMat = Eigen::Matrix<double, kY, kY>;
};

template <int Dim>
Eigen::Map<const typename SphereTypes<Dim>::Vec> Point(const PointCloud& c, int64_t i) {
  return Eigen::Map<const typename SphereTypes<Dim>::Vec>(c.points + i * c.d, c.d);
}

// f, its gradient and Hessian in y = (c, r), and the residual scale Σ w(|φ'| + |φ''|ρ).
template <int Dim>
struct SphereSums {
  double f = 0;
  typename SphereTypes<Dim>::YVec g;
  typename SphereTypes<Dim>::YMat H;
  double scale = 0;
  double f_rounding = 0;   // a bound on the rounding error of f: 4ε Σ w (|φ'|(ρ + r) + φ)
  bool at_centre = false;  // a point (with weight > 0) at the centre
  bool kink = false;
  bool any_curvature = false;
};

template <int Dim>
SphereSums<Dim> Sums(const SphereFitProblem& q, const PenaltyEval& pen, const typename SphereTypes<Dim>::Vec& centre,
                     double radius, bool second) {
  using Vec = typename SphereTypes<Dim>::Vec;
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  SphereSums<Dim> s;
  s.g.setZero(d + 1);
  if (second) s.H.setZero(d + 1, d + 1);
  const bool kinked = q.kind == PenaltyKind::kHuber || q.kind == PenaltyKind::kTruncatedQuadratic;
  Vec u(d);
  for (int64_t i = 0; i < cl.n; ++i) {
    const double w = WeightAt(cl, i);
    u = Point<Dim>(cl, i) - centre;
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
      for (int r = 0; r < d; ++r) {
        for (int c = 0; c <= r; ++c) s.H(r, c) += (a - b) * u[r] * u[c];
        s.H(r, r) += b;
        s.H(d, r) += a * u[r];
      }
      s.H(d, d) += a;
    }
  }
  if (second) {
    for (int r = 0; r <= d; ++r)
      for (int c = r + 1; c <= d; ++c) s.H(r, c) = s.H(c, r);
  }
  return s;
}

template <int Dim>
double Residual(const SphereSums<Dim>& s) {
  return s.scale > 0 ? s.g.cwiseAbs().maxCoeff() / s.scale : 0.0;
}

}  // namespace

void ValidateSphereFit(const SphereFitProblem& q, bool check_points) {
  const PointCloud& c = q.cloud;
  if (c.d < 2) throw InvalidInput("fit_sphere: points must have dimension D >= 2, got D = " + std::to_string(c.d));
  if (!(q.alpha > 0) || !std::isfinite(q.alpha)) throw InvalidInput("fit_sphere: alpha must be > 0");
  const int64_t positive = internal::CheckCloud(c, "fit_sphere", check_points);
  if (positive < c.d + 1) {
    throw InvalidInput("fit_sphere: a " + std::string(c.d == 2 ? "circle" : "sphere") +
                       " in D = " + std::to_string(c.d) + " needs at least " + std::to_string(c.d + 1) +
                       " points with positive weight, got " + std::to_string(positive));
  }
}

double SphereFitObjective(const SphereFitProblem& q, const double* centre, double radius) {
  const PenaltyEval pen(q.kind, q.alpha);
  const Eigen::Map<const Eigen::VectorXd> c(centre, q.cloud.d);
  double f = 0;
  for (int64_t i = 0; i < q.cloud.n; ++i) {
    f += WeightAt(q.cloud, i) * pen.Phi((Point<Eigen::Dynamic>(q.cloud, i) - c).norm() - radius);
  }
  return f;
}

void AlgebraicSphereFit(const SphereFitProblem& q, double* centre, double* radius) {
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  // Centre and scale the points (conditioning); the fit ‖p̃‖² ≈ 2cᵀp̃ + k is similarity-equivariant.
  Eigen::VectorXd m = Eigen::VectorXd::Zero(d);
  double total = 0;
  for (int64_t i = 0; i < cl.n; ++i) {
    total += WeightAt(cl, i);
    m += WeightAt(cl, i) * Point<Eigen::Dynamic>(cl, i);
  }
  m /= total;
  Eigen::MatrixXd S = Eigen::MatrixXd::Zero(d, d);
  for (int64_t i = 0; i < cl.n; ++i) {
    const Eigen::VectorXd pt = Point<Eigen::Dynamic>(cl, i) - m;
    S.noalias() += WeightAt(cl, i) * pt * pt.transpose();
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S, Eigen::EigenvaluesOnly);
  const double lmin = es.eigenvalues()[0], lmax = es.eigenvalues()[d - 1];
  if (!(lmin > 1e-20 * lmax)) {
    throw InvalidInput(std::string("fit_sphere: the points lie in one ") +
                       (d == 2 ? "line (collinear)" : "hyperplane") + ": no finite " + (d == 2 ? "circle" : "sphere") +
                       " is determined by them");
  }
  const double scale = std::sqrt(S.trace() / total);
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(d + 1, d + 1);
  Eigen::VectorXd b = Eigen::VectorXd::Zero(d + 1), z(d + 1);
  for (int64_t i = 0; i < cl.n; ++i) {
    const Eigen::VectorXd pt = (Point<Eigen::Dynamic>(cl, i) - m) / scale;
    z.head(d) = 2 * pt;
    z[d] = 1;
    A.noalias() += WeightAt(cl, i) * z * z.transpose();
    b += (WeightAt(cl, i) * pt.squaredNorm()) * z;
  }
  const Eigen::VectorXd sol = A.ldlt().solve(b);
  const Eigen::VectorXd c = sol.head(d);
  const double r2 = sol[d] + c.squaredNorm();
  for (int k = 0; k < d; ++k) centre[k] = m[k] + scale * c[k];
  *radius = scale * std::sqrt(std::max(r2, 0.0));
}

namespace {

// Newton with a Levenberg–Marquardt safeguard on f(y) = Σ w φ(‖p − c‖ − r) from *y, to a stationary point at
// rounding level (or a stall); *s holds the sums at the final *y.
template <int Dim>
void LocalSolve(const SphereFitProblem& q, const PenaltyEval& pen, const RobustFitOptions& options,
                typename SphereTypes<Dim>::YVec* y_io, SphereSums<Dim>* s_out, int* iterations_io,
                double* residual_out) {
  using YVec = typename SphereTypes<Dim>::YVec;
  using YMat = typename SphereTypes<Dim>::YMat;
  const int d = static_cast<int>(q.cloud.d);
  YVec& y = *y_io;
  SphereSums<Dim> s = Sums<Dim>(q, pen, y.head(d), y[d], true);
  double residual = Residual(s), mu = 0;
  int iterations = 0, stalls = 0;
  while (iterations < options.max_iterations && residual > 4 * kEps) {
    ++iterations;
    bool moved = false;
    // Newton when H is positive definite, else (and when the step does not descend) damped steps (H + μ·diag).
    for (int attempt = 0; attempt < 40 && !moved; ++attempt) {
      YMat K = s.H;
      if (mu > 0) K.diagonal() += mu * (s.H.diagonal().cwiseAbs().array() + 1e-12 * s.scale).matrix();
      Eigen::LLT<YMat> llt(K);
      if (llt.info() != Eigen::Success) {
        mu = std::max(2 * mu, 1e-6);
        continue;
      }
      const YVec step = -llt.solve(s.g);
      const YVec y1 = y + step;
      const SphereSums<Dim> s1 = Sums<Dim>(q, pen, y1.head(d), y1[d], true);
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
  *s_out = s;
  *iterations_io += iterations;
  *residual_out = residual;
}

bool Redescending(PenaltyKind kind) {
  return kind == PenaltyKind::kWelsch || kind == PenaltyKind::kTruncatedQuadratic || kind == PenaltyKind::kCauchy ||
         kind == PenaltyKind::kGemanMcClure;
}

template <int Dim>
void Solve(const SphereFitProblem& q, double* centre_out, double* radius_out, ProblemStatus* status,
           const RobustFitOptions& options) {
  using YVec = typename SphereTypes<Dim>::YVec;
  using YMat = typename SphereTypes<Dim>::YMat;
  const int d = static_cast<int>(q.cloud.d);
  const PenaltyEval pen(q.kind, q.alpha);
  YVec start(d + 1);
  AlgebraicSphereFit(q, start.data(), &start[d]);
  YVec y = start;
  SphereSums<Dim> s;
  double residual = 0;
  int iterations = 0;
  LocalSolve<Dim>(q, pen, options, &y, &s, &iterations, &residual);
  // The non-convex penalties also start from the pseudo-Huber fit with the same α (itself from the algebraic fit),
  // which has already discounted the points far from the sphere; the lower objective wins (as for fit_plane).
  if (Redescending(q.kind)) {
    YVec y2 = start;
    SphereSums<Dim> s2;
    double residual2 = 0;
    LocalSolve<Dim>(q, PenaltyEval(PenaltyKind::kPseudoHuber, q.alpha), options, &y2, &s2, &iterations, &residual2);
    LocalSolve<Dim>(q, pen, options, &y2, &s2, &iterations, &residual2);
    if (s2.f < s.f - (s.f_rounding + s2.f_rounding) && residual2 <= std::max(residual, options.failure_residual)) {
      y = y2;
      s = s2;
      residual = residual2;
    }
  }
  status->iterations = iterations;
  status->residual = residual;
  status->Set(kNotCertified, "a local minimum (the geometric fit is not convex)");
  if (!s.any_curvature) {
    status->Set(kAllOutliers, "no point within the penalty's reach of the sphere: the objective is flat here");
  } else if (residual > options.failure_residual) {
    throw NumericalFailure("fit_sphere: the solve did not converge (scaled residual " + FormatDouble(residual) +
                           " after " + std::to_string(iterations) + " iterations)");
  }
  if (s.at_centre) status->Set(kNonSmooth, "a point lies at the centre, where its distance is not differentiable");
  if (s.kink) status->Set(kNonSmooth, "a point lies at the kink of the penalty (|r| = alpha)");
  const Eigen::SelfAdjointEigenSolver<YMat> es(s.H, Eigen::EigenvaluesOnly);
  if (s.any_curvature && !(es.eigenvalues()[0] > options.non_unique_gap * es.eigenvalues().cwiseAbs().maxCoeff())) {
    status->Set(kNonUnique, "singular Hessian at the solution: the minimiser may not be unique");
  }
  for (int k = 0; k < d; ++k) centre_out[k] = y[k];
  *radius_out = y[d];
}

template <int Dim>
void Backward(const SphereFitProblem& q, const double* centre, double radius, const double* v_centre, double v_radius,
              double* d_points, double* d_weights, ProblemStatus* status) {
  using Vec = typename SphereTypes<Dim>::Vec;
  using YVec = typename SphereTypes<Dim>::YVec;
  using YMat = typename SphereTypes<Dim>::YMat;
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  const PenaltyEval pen(q.kind, q.alpha);
  const Vec c = Eigen::Map<const Vec>(centre, d);
  const SphereSums<Dim> s = Sums<Dim>(q, pen, c, radius, true);
  YVec v(d + 1), w(d + 1);
  v.head(d) = Eigen::Map<const Vec>(v_centre, d);
  v[d] = v_radius;
  if (!s.any_curvature) {
    w.setZero();
    status->Set(kAllOutliers, "no point within the penalty's reach: gradient 0");
  } else {
    // Regular when LDLT's pivots are all well away from 0 (relative to the largest); the eigendecomposition of
    // the minimum-norm solution is only computed otherwise.
    Eigen::LDLT<YMat> ldlt(s.H);
    const auto pivots = ldlt.vectorD().cwiseAbs();
    if (ldlt.info() == Eigen::Success && pivots.minCoeff() > 1e-10 * pivots.maxCoeff()) {
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
    u = Point<Dim>(cl, i) - c;
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

}  // namespace

void SolveSphereFit(const SphereFitProblem& q, double* centre, double* radius, ProblemStatus* status,
                    const RobustFitOptions& options) {
  switch (q.cloud.d) {
    case 2:
      Solve<2>(q, centre, radius, status, options);
      break;
    case 3:
      Solve<3>(q, centre, radius, status, options);
      break;
    default:
      Solve<Eigen::Dynamic>(q, centre, radius, status, options);
      break;
  }
}

void SphereFitBackward(const SphereFitProblem& q, const double* centre, double radius, const double* v_centre,
                       double v_radius, double* d_points, double* d_weights, ProblemStatus* status) {
  switch (q.cloud.d) {
    case 2:
      Backward<2>(q, centre, radius, v_centre, v_radius, d_points, d_weights, status);
      break;
    case 3:
      Backward<3>(q, centre, radius, v_centre, v_radius, d_points, d_weights, status);
      break;
    default:
      Backward<Eigen::Dynamic>(q, centre, radius, v_centre, v_radius, d_points, d_weights, status);
      break;
  }
}

}  // namespace ddn::surface
