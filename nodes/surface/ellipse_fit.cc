// The direct least-squares ellipse fit of surface_fits.h (Fitzgibbon, Pilu & Fisher 1999; the reduced 3×3 form of
// Halíř & Flusser 1998), its implicit backward, and the conic → (centre, axes, angle) map with its derivative.
#include <ceres/jet.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ddn/error.h"
#include "ddn/params.h"
#include "ddn/scalar.h"
#include "nodes/surface/fit_util.h"
#include "nodes/surface/surface_fits.h"

namespace ddn::surface {

using internal::WeightAt;

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
using Vec6 = Eigen::Matrix<double, 6, 1>;
using Mat6 = Eigen::Matrix<double, 6, 6>;

// Coordinates u = (p − m)/s with m the weighted centroid and s the RMS distance to it per coordinate.
struct Normalisation {
  Eigen::Vector2d m;
  double s = 1;
};

Normalisation Normalise(const PointCloud& cl) {
  Normalisation nz;
  nz.m.setZero();
  double total = 0;
  for (int64_t i = 0; i < cl.n; ++i) {
    total += WeightAt(cl, i);
    nz.m += WeightAt(cl, i) * Eigen::Vector2d(cl.points[2 * i], cl.points[2 * i + 1]);
  }
  nz.m /= total;
  Eigen::Matrix2d S = Eigen::Matrix2d::Zero();
  for (int64_t i = 0; i < cl.n; ++i) {
    const Eigen::Vector2d pt = Eigen::Vector2d(cl.points[2 * i], cl.points[2 * i + 1]) - nz.m;
    S.noalias() += WeightAt(cl, i) * pt * pt.transpose();
  }
  Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> es;
  es.computeDirect(S);
  if (!(es.eigenvalues()[0] > 1e-20 * es.eigenvalues()[1])) {
    throw InvalidInput("fit_ellipse: the points (with positive weight) are collinear: no ellipse is determined");
  }
  nz.s = std::sqrt(S.trace() / (2 * total));
  return nz;
}

Vec6 Monomials(double x, double y) {
  Vec6 z;
  z << x * x, x * y, y * y, x, y, 1.0;
  return z;
}

Eigen::Vector2d NormalisedPoint(const PointCloud& cl, const Normalisation& nz, int64_t i) {
  return (Eigen::Vector2d(cl.points[2 * i], cl.points[2 * i + 1]) - nz.m) / nz.s;
}

Mat6 Scatter(const PointCloud& cl, const Normalisation& nz) {
  Mat6 S = Mat6::Zero();
  for (int64_t i = 0; i < cl.n; ++i) {
    const Eigen::Vector2d u = NormalisedPoint(cl, nz, i);
    const Vec6 z = Monomials(u[0], u[1]);
    S.noalias() += WeightAt(cl, i) * z * z.transpose();
  }
  return S;
}

// C with θᵀCθ = 4ac − b².
Mat6 ConstraintMatrix() {
  Mat6 C = Mat6::Zero();
  C(0, 2) = C(2, 0) = 2;
  C(1, 1) = -1;
  return C;
}

// θ (original coordinates) = G θ' (normalised coordinates); both satisfy 4ac − b² = 1.
Mat6 ToOriginal(const Normalisation& nz) {
  const double mx = nz.m[0], my = nz.m[1], s = nz.s;
  Mat6 G = Mat6::Zero();
  G(0, 0) = G(1, 1) = G(2, 2) = 1;
  G(3, 0) = -2 * mx, G(3, 1) = -my, G(3, 3) = s;
  G(4, 1) = -mx, G(4, 2) = -2 * my, G(4, 4) = s;
  G(5, 0) = mx * mx, G(5, 1) = mx * my, G(5, 2) = my * my, G(5, 3) = -s * mx, G(5, 4) = -s * my, G(5, 5) = s * s;
  return G;
}

// The KKT residual ‖Sθ − λCθ‖∞ / (‖S‖∞‖θ‖∞), λ = θᵀSθ / θᵀCθ.
double KktResidual(const Mat6& S, const Mat6& C, const Vec6& t) {
  const double lambda = t.dot(S * t) / t.dot(C * t);
  const double scale = S.cwiseAbs().rowwise().sum().maxCoeff() * t.cwiseAbs().maxCoeff();
  return scale > 0 ? (S * t - lambda * (C * t)).cwiseAbs().maxCoeff() / scale : 0.0;
}

// The direct fit in normalised coordinates.
Vec6 DirectFit(const Mat6& S, int* iterations, double* residual) {
  const Eigen::Matrix3d S1 = S.topLeftCorner<3, 3>(), S2 = S.topRightCorner<3, 3>(), S3 = S.bottomRightCorner<3, 3>();
  const Eigen::LLT<Eigen::Matrix3d> s3(S3);
  const Eigen::Matrix3d T = -s3.solve(S2.transpose());  // a₂ = T a₁
  Eigen::Matrix3d M = S1 + S2 * T;
  M = 0.5 * (M + M.transpose()).eval();
  Eigen::Matrix3d C1 = Eigen::Matrix3d::Zero();
  C1(0, 2) = C1(2, 0) = 2;
  C1(1, 1) = -1;
  Eigen::Vector3d a1 = Eigen::Vector3d::Zero();
  bool found = false;
  const Eigen::SelfAdjointEigenSolver<Eigen::Matrix3d> ms(M);
  if (ms.eigenvalues()[0] > 1e-13 * ms.eigenvalues()[2]) {
    // M positive definite: C₁a = μ M a has exactly one positive μ (C₁ has one positive eigenvalue): μ = 1/λ.
    const Eigen::GeneralizedSelfAdjointEigenSolver<Eigen::Matrix3d> ges(C1, M);
    if (ges.info() == Eigen::Success && ges.eigenvalues()[2] > 0) {
      a1 = ges.eigenvectors().col(2);
      found = true;
    }
  } else {
    // The points lie on a conic (λ = 0): its coefficients span M's null space.
    const Eigen::Vector3d v = ms.eigenvectors().col(0);
    if (v.dot(C1 * v) > 0) {
      a1 = v;
      found = true;
    }
  }
  if (!found) {
    // The general (non-symmetric) form C₁⁻¹M a = λ a: the eigenvector with a₁ᵀC₁a₁ > 0.
    const Eigen::EigenSolver<Eigen::Matrix3d> es(C1.inverse() * M);
    double best = std::numeric_limits<double>::infinity();
    for (int j = 0; j < 3; ++j) {
      if (std::abs(es.eigenvalues()[j].imag()) > 1e-12 * std::abs(es.eigenvalues()[j].real())) continue;
      const Eigen::Vector3d v = es.eigenvectors().col(j).real();
      const double cond = v.dot(C1 * v);
      if (cond > 0 && es.eigenvalues()[j].real() < best) {
        best = es.eigenvalues()[j].real();
        a1 = v;
        found = true;
      }
    }
  }
  if (!found) throw NumericalFailure("fit_ellipse: no elliptic solution of the direct fit was found");
  Vec6 t;
  t.head<3>() = a1;
  t.tail<3>() = T * a1;
  const Mat6 C = ConstraintMatrix();
  t /= std::sqrt(t.dot(C * t));
  // Newton on the KKT conditions F(θ, λ) = (Sθ − λCθ, ½(1 − θᵀCθ)) = 0 to rounding level.
  *residual = KktResidual(S, C, t);
  for (int it = 0; it < 3 && *residual > 4 * kEps; ++it) {
    const double lambda = t.dot(S * t);
    Eigen::Matrix<double, 7, 7> J = Eigen::Matrix<double, 7, 7>::Zero();
    J.topLeftCorner<6, 6>() = S - lambda * C;
    J.topRightCorner<6, 1>() = -(C * t);
    J.bottomLeftCorner<1, 6>() = -(C * t).transpose();
    Eigen::Matrix<double, 7, 1> F;
    F.head<6>() = S * t - lambda * (C * t);
    F[6] = 0.5 * (1 - t.dot(C * t));
    const Eigen::Matrix<double, 7, 1> step = J.completeOrthogonalDecomposition().solve(-F);
    Vec6 t1 = t + step.head<6>();
    const double c1 = t1.dot(C * t1);
    if (!(c1 > 0)) break;
    t1 /= std::sqrt(c1);
    const double r1 = KktResidual(S, C, t1);
    ++*iterations;
    if (!(r1 < *residual)) break;
    t = t1;
    *residual = r1;
  }
  return t;
}

// The conic → geometry map in the scalar-generic dialect (double and ceres::Jet).
template <typename T>
bool Geometry(const T* q, T* centre, T* axes, T* angle) {
  using std::atan2;
  using std::sqrt;
  const T &a = q[0], &b = q[1], &c = q[2], &d = q[3], &e = q[4], &f = q[5];
  const T half = Constant<T>(0.5);
  const T det = a * c - Constant<T>(0.25) * b * b;
  if (!(Value(det) > 0) || !(Value(a) > 0)) {
    throw InvalidInput("fit_ellipse: the conic is not an ellipse (4ac - b^2 <= 0 or a <= 0)");
  }
  // x₀ = −½A⁻¹(d, e), A⁻¹ = [c, −b/2; −b/2, a]/det.
  const T x0 = -half * (c * d - half * b * e) / det;
  const T y0 = -half * (a * e - half * b * d) / det;
  const T k = -(f + half * (d * x0 + e * y0));
  if (!(Value(k) > 0)) throw InvalidInput("fit_ellipse: the fitted conic is empty (no real point)");
  const T mean = half * (a + c);
  const T gap2 = Constant<T>(0.25) * ((a - c) * (a - c) + b * b);
  const bool circle = !(sqrt(Value(gap2)) > 1e-12 * Value(mean));
  // At a circle the axis gap is a cone point: its derivative is taken as 0 (a subgradient).
  const T gap = circle ? Constant<T>(sqrt(Value(gap2))) : sqrt(gap2);
  centre[0] = x0;
  centre[1] = y0;
  axes[0] = sqrt(k / (mean - gap));
  axes[1] = sqrt(k / (mean + gap));
  if (circle) {
    *angle = Constant<T>(0.0);
  } else {
    *angle = half * atan2(b, a - c) + Constant<T>(0.5 * M_PI);
    if (Value(*angle) > 0.5 * M_PI) *angle = *angle - Constant<T>(M_PI);
  }
  return !circle;
}

}  // namespace

void ValidateEllipseFit(const PointCloud& cloud, bool check_points) {
  if (cloud.d != 2) {
    throw InvalidInput("fit_ellipse: points must be 2-D, shape (B, N, 2), got D = " + std::to_string(cloud.d));
  }
  const int64_t positive = internal::CheckCloud(cloud, "fit_ellipse", check_points);
  if (positive < 5) {
    throw InvalidInput("fit_ellipse: an ellipse needs at least 5 points with positive weight, got " +
                       std::to_string(positive));
  }
}

double EllipseFitObjective(const PointCloud& cloud, const double* conic) {
  const Eigen::Map<const Vec6> t(conic);
  double f = 0;
  for (int64_t i = 0; i < cloud.n; ++i) {
    const double r = t.dot(Monomials(cloud.points[2 * i], cloud.points[2 * i + 1]));
    f += 0.5 * WeightAt(cloud, i) * r * r;
  }
  return f;
}

void SolveEllipseFit(const PointCloud& cloud, double* conic, ProblemStatus* status) {
  const Normalisation nz = Normalise(cloud);
  const Mat6 S = Scatter(cloud, nz);
  int iterations = 1;
  double residual = 0;
  Vec6 t = DirectFit(S, &iterations, &residual);
  if (t[0] < 0) t = -t;
  const Vec6 out = ToOriginal(nz) * t;
  for (int k = 0; k < 6; ++k) conic[k] = out[k];
  status->iterations = iterations;
  status->residual = residual;
}

bool EllipseGeometry(const double* conic, double* centre, double* axes, double* angle) {
  return Geometry<double>(conic, centre, axes, angle);
}

void ChainEllipseGeometry(const double* conic, const double* v_centre, const double* v_axes, const double* v_angle,
                          double* v_conic) {
  using J = ceres::Jet<double, 6>;
  J q[6], centre[2], axes[2], angle;
  for (int k = 0; k < 6; ++k) q[k] = J(conic[k], k);
  Geometry<J>(q, centre, axes, &angle);
  for (int k = 0; k < 6; ++k) {
    double g = 0;
    if (v_centre) g += v_centre[0] * centre[0].v[k] + v_centre[1] * centre[1].v[k];
    if (v_axes) g += v_axes[0] * axes[0].v[k] + v_axes[1] * axes[1].v[k];
    if (v_angle) g += v_angle[0] * angle.v[k];
    v_conic[k] += g;
  }
}

void EllipseFitBackward(const PointCloud& cloud, const double* conic, const double* v_conic, double* d_points,
                        double* d_weights, ProblemStatus* status) {
  // In normalised coordinates (the fit is similarity-equivariant, so m and s are held fixed): θ = Gθ', v' = Gᵀv.
  const Normalisation nz = Normalise(cloud);
  const Mat6 G = ToOriginal(nz);
  const Vec6 t = G.partialPivLu().solve(Eigen::Map<const Vec6>(conic));
  const Vec6 v = G.transpose() * Eigen::Map<const Vec6>(v_conic);
  const Mat6 S = Scatter(cloud, nz), C = ConstraintMatrix();
  const double lambda = t.dot(S * t) / t.dot(C * t);
  const Mat6 H = S - lambda * C;
  // The KKT system [H Aᵀ; A 0][w; μ] = [v; 0], A = 2(Cθ)ᵀ, on the tangent space of the constraint: w = T z,
  // (TᵀHT) z = Tᵀv with T an orthonormal basis of (Cθ)⊥.
  const Vec6 normal = (C * t).normalized();
  const Eigen::Matrix<double, 6, 5> T = internal::TangentBasis<6>(normal);
  const Eigen::Matrix<double, 5, 5> M = T.transpose() * H * T;
  const Eigen::Matrix<double, 5, 1> r = T.transpose() * v;
  Eigen::Matrix<double, 5, 1> z;
  Eigen::LLT<Eigen::Matrix<double, 5, 5>> llt(M);
  const double top = M.diagonal().cwiseAbs().maxCoeff();
  if (llt.info() == Eigen::Success &&
      llt.matrixLLT().diagonal().minCoeff() * llt.matrixLLT().diagonal().minCoeff() > 1e-10 * top) {
    z = llt.solve(r);
  } else if (!internal::SolveSymmetricPseudo(M, r, &z, 1e-10)) {
    status->Set(kNonRegular, "singular reduced Hessian: minimum-norm gradient");
  }
  const Vec6 w = T * z;
  for (int64_t i = 0; i < cloud.n; ++i) {
    const Eigen::Vector2d u = NormalisedPoint(cloud, nz, i);
    const Vec6 zi = Monomials(u[0], u[1]);
    // Jᵀθ and Jᵀw with J = ∂z/∂u = [2x 0; y x; 0 2y; 1 0; 0 1; 0 0].
    auto jt = [&](const Vec6& a) {
      return Eigen::Vector2d(2 * a[0] * u[0] + a[1] * u[1] + a[3], a[1] * u[0] + 2 * a[2] * u[1] + a[4]);
    };
    const double res = t.dot(zi), zw = zi.dot(w);
    const double wi = WeightAt(cloud, i);
    const Eigen::Vector2d du = -wi * (zw * jt(t) + res * jt(w));
    d_points[2 * i] = du[0] / nz.s;
    d_points[2 * i + 1] = du[1] / nz.s;
    if (d_weights) d_weights[i] = -res * zw;
  }
}

}  // namespace ddn::surface
