// The hyperplane fit of surface_fits.h: closed-form weighted PCA for the quadratic penalty, IRLS + safeguarded
// Newton on the sphere for the robust penalties, and the structured implicit backward.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/params.h"
#include "nodes/surface/fit_util.h"
#include "nodes/surface/surface_fits.h"

namespace ddn::surface {

using internal::Fixed;
using internal::WeightAt;
using pooling::PenaltyEval;
using pooling::PenaltyValues;

void RobustFitOptions::Check() const {
  if (max_iterations < 1) throw InvalidInput("RobustFitOptions: max_iterations must be >= 1");
  if (!(tie_tolerance >= 0 && tie_tolerance < 0.5)) throw InvalidInput("RobustFitOptions: tie_tolerance in [0, 0.5)");
  if (!(non_unique_gap >= 0 && non_unique_gap < 1)) throw InvalidInput("RobustFitOptions: non_unique_gap in [0, 1)");
  if (!(failure_residual > 0)) throw InvalidInput("RobustFitOptions: failure_residual must be > 0");
}

void ValidatePlaneFit(const PlaneFitProblem& q, bool check_points) {
  const PointCloud& c = q.cloud;
  if (c.d < 2) throw InvalidInput("fit_plane: points must have dimension D >= 2, got D = " + std::to_string(c.d));
  if (c.n < c.d) {
    throw InvalidInput("fit_plane: a hyperplane in D = " + std::to_string(c.d) + " needs at least " +
                       std::to_string(c.d) + " points, got N = " + std::to_string(c.n));
  }
  if (!(q.alpha > 0) || !std::isfinite(q.alpha)) throw InvalidInput("fit_plane: alpha must be > 0");
  const int64_t positive = internal::CheckCloud(c, "fit_plane", check_points);
  if (positive < c.d) {
    throw InvalidInput("fit_plane: a hyperplane in D = " + std::to_string(c.d) + " needs at least " +
                       std::to_string(c.d) + " points with positive weight, got " + std::to_string(positive));
  }
}

int64_t OrientPlane(double* normal, double* offset, int64_t d, double tie_tolerance) {
  int64_t k = d - 1;
  while (k > 0 && !(std::abs(normal[k]) > tie_tolerance)) --k;
  if (normal[k] < 0) {
    for (int64_t j = 0; j < d; ++j) normal[j] = -normal[j];
    *offset = -*offset;
  }
  return k;
}

double PlaneFitObjective(const PlaneFitProblem& q, const double* normal, double offset) {
  const PointCloud& c = q.cloud;
  const PenaltyEval pen(q.kind, q.alpha);
  double f = 0;
  for (int64_t i = 0; i < c.n; ++i) {
    double r = -offset;
    for (int64_t k = 0; k < c.d; ++k) r += normal[k] * c.points[i * c.d + k];
    f += WeightAt(c, i) * pen.Phi(r);
  }
  return f;
}

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

// The data of one problem in coordinates centred at the weighted centroid c.
template <int Dim>
struct Centred {
  using Vec = typename Fixed<Dim>::Vec;
  const PointCloud* cloud;
  int d;
  Vec c;
  double total_weight = 0;

  explicit Centred(const PointCloud& cl) : cloud(&cl), d(static_cast<int>(cl.d)), c(Vec::Zero(cl.d)) {
    for (int64_t i = 0; i < cl.n; ++i) {
      const double w = WeightAt(cl, i);
      total_weight += w;
      c += w * Point(i);
    }
    c /= total_weight;
  }
  // The same and the weighted scatter Σ w (p − c)(p − c)ᵀ in one pass, from moments about the first point (for the
  // backward, where a relative error of ~|c − p₀|²/spread² · ε in the scatter is harmless).
  Centred(const PointCloud& cl, typename Fixed<Dim>::Mat* scatter)
      : cloud(&cl), d(static_cast<int>(cl.d)), c(Vec::Zero(cl.d)) {
    typename Fixed<Dim>::Mat second = Fixed<Dim>::Mat::Zero(d, d);
    const Eigen::Map<const Vec> p0(cl.points, d);
    for (int64_t i = 0; i < cl.n; ++i) {
      const double w = WeightAt(cl, i);
      const Vec u = Point(i) - p0;
      total_weight += w;
      c += w * u;
      second.noalias() += w * u * u.transpose();
    }
    const Vec m = c / total_weight;
    *scatter = second - total_weight * m * m.transpose();
    c = p0 + m;
  }
  Eigen::Map<const Vec> Point(int64_t i) const { return Eigen::Map<const Vec>(cloud->points + i * d, d); }
  Vec Tilde(int64_t i) const { return Point(i) - c; }
};

// Sums over points at (n, e) (e = d − nᵀc) needed by the Newton step, the residual and the backward.
template <int Dim>
struct PlaneSums {
  using Vec = typename Fixed<Dim>::Vec;
  using Mat = typename Fixed<Dim>::Mat;
  double f = 0;
  Vec g_n;                  // Σ w φ' p̃
  double g_e = 0;           // −Σ w φ'
  Mat h_nn;                 // Σ w φ'' p̃ p̃ᵀ (without −νI)
  Vec h_ne;                 // −Σ w φ'' p̃
  double h_ee = 0;          // Σ w φ''
  double s_n = 0, s_e = 0;  // residual scales
  double f_rounding = 0;    // a bound on the rounding error of f: 4ε Σ w (|φ'|(‖p̃‖ + |e|) + φ)
  bool kink = false;        // a point at a kink of huber / truncated_quadratic
  bool any_curvature = false;
};

template <int Dim>
PlaneSums<Dim> Sums(const Centred<Dim>& C, const PenaltyEval& pen, const typename Fixed<Dim>::Vec& n, double e,
                    bool second) {
  const int d = C.d;
  PlaneSums<Dim> s;
  s.g_n.setZero(d);
  if (second) {
    s.h_nn.setZero(d, d);
    s.h_ne.setZero(d);
  }
  const PointCloud& cl = *C.cloud;
  const bool kinked = pen.kind == PenaltyKind::kHuber || pen.kind == PenaltyKind::kTruncatedQuadratic;
  for (int64_t i = 0; i < cl.n; ++i) {
    const double w = WeightAt(cl, i);
    const typename Fixed<Dim>::Vec pt = C.Tilde(i);
    const double r = n.dot(pt) - e;
    const PenaltyValues v = pen(r);
    s.f += w * v.phi;
    s.g_n += (w * v.d1) * pt;
    s.g_e -= w * v.d1;
    const double norm = pt.norm();
    s.s_n += w * norm * (std::abs(v.d1) + std::abs(v.d2) * norm);
    s.s_e += w * (std::abs(v.d1) + std::abs(v.d2) * norm);
    s.f_rounding += 4 * kEps * w * (std::abs(v.d1) * (norm + std::abs(e)) + v.phi);
    if (w > 0 && v.d2 != 0) s.any_curvature = true;
    if (kinked && w > 0 && std::abs(std::abs(r) - pen.alpha) <= 1e-9 * (pen.alpha + norm)) s.kink = true;
    if (second) {
      s.h_nn.noalias() += (w * v.d2) * pt * pt.transpose();
      s.h_ne -= (w * v.d2) * pt;
      s.h_ee += w * v.d2;
    }
  }
  return s;
}

template <int Dim>
double PlaneResidual(const PlaneSums<Dim>& s, const typename Fixed<Dim>::Vec& n) {
  const typename Fixed<Dim>::Vec proj = s.g_n - n.dot(s.g_n) * n;
  const double rn = s.s_n > 0 ? proj.norm() / s.s_n : 0.0;
  const double re = s.s_e > 0 ? std::abs(s.g_e) / s.s_e : 0.0;
  return std::max(rn, re);
}

// The reduced Hessian [TᵀH_nnT − νI, Tᵀh_ne; h_neᵀT, h_ee] (D × D) at (n, e).
template <int Dim>
typename Fixed<Dim>::Mat ReducedHessian(const PlaneSums<Dim>& s, const typename Fixed<Dim>::Vec& n,
                                        const typename Fixed<Dim>::Basis& T) {
  const int d = static_cast<int>(n.size());
  const double nu = n.dot(s.g_n);
  // Products into fixed-size temporaries first (GCC 12 warns falsely about 1×1 products written into blocks).
  const typename Fixed<Dim>::Basis HT = s.h_nn * T;
  typename Fixed<Dim>::Mat M(d, d);
  for (int a = 0; a < d - 1; ++a) {
    for (int b = 0; b < d - 1; ++b) M(a, b) = T.col(a).dot(HT.col(b)) - (a == b ? nu : 0.0);
    M(a, d - 1) = M(d - 1, a) = T.col(a).dot(s.h_ne);
  }
  M(d - 1, d - 1) = s.h_ee;
  return M;
}

// ---- Quadratic: weighted PCA ----------------------------------------------------------------------------------

template <int Dim>
void SolveQuadratic(const PlaneFitProblem& q, double* normal, double* offset, ProblemStatus* status,
                    const RobustFitOptions& options) {
  using Vec = typename Fixed<Dim>::Vec;
  using Mat = typename Fixed<Dim>::Mat;
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  const Centred<Dim> C(cl);
  Mat S = Mat::Zero(d, d);
  for (int64_t i = 0; i < cl.n; ++i) {
    const Vec pt = C.Tilde(i);
    S.noalias() += WeightAt(cl, i) * pt * pt.transpose();
  }
  const internal::Eigenpair<Dim> eig = internal::SmallestEigenpair<Dim>(S);
  const Vec n = eig.vector;
  // Residual from the points: g_n = Σ w r p̃, g_e = −Σ w r with r = nᵀp̃ (e = 0).
  Vec g_n = Vec::Zero(d);
  double g_e = 0, s_n = 0, s_e = 0;
  for (int64_t i = 0; i < cl.n; ++i) {
    const double w = WeightAt(cl, i);
    const Vec pt = C.Tilde(i);
    const double r = n.dot(pt), norm = pt.norm();
    g_n += (w * r) * pt;
    g_e -= w * r;
    s_n += w * norm * (std::abs(r) + norm);
    s_e += w * (std::abs(r) + norm);
  }
  const Vec proj = g_n - n.dot(g_n) * n;
  status->residual = std::max(s_n > 0 ? proj.norm() / s_n : 0.0, s_e > 0 ? std::abs(g_e) / s_e : 0.0);
  status->iterations = 1;
  if (!(eig.lambda2 - eig.lambda1 > options.non_unique_gap * std::abs(eig.lambda_max))) {
    status->Set(kNonUnique,
                "repeated smallest eigenvalue of the weighted scatter (points on a lower-dimensional "
                "set or an isotropic blob): one of a subspace of minimising normals");
  }
  for (int k = 0; k < d; ++k) normal[k] = n[k];
  *offset = n.dot(C.c);
}

// ---- Robust penalties: IRLS + Newton on the sphere --------------------------------------------------------------

// One local solve from (n, e): IRLS steps (majorise–minimise, descent) alternated with safeguarded Newton steps on
// the reduced system, until the residual reaches rounding level or no step makes progress.
template <int Dim>
struct LocalResult {
  typename Fixed<Dim>::Vec n;
  double e = 0;
  PlaneSums<Dim> s;
  double residual = 0;
  int iterations = 0;
  bool all_outliers = false;
};

template <int Dim>
LocalResult<Dim> LocalSolve(const Centred<Dim>& C, const PenaltyEval& pen, typename Fixed<Dim>::Vec n, double e,
                            const RobustFitOptions& options) {
  using Vec = typename Fixed<Dim>::Vec;
  using Mat = typename Fixed<Dim>::Mat;
  const PointCloud& cl = *C.cloud;
  const int d = C.d;
  PlaneSums<Dim> s = Sums<Dim>(C, pen, n, e, true);
  double residual = PlaneResidual<Dim>(s, n);
  int iterations = 0, stalls = 0;
  bool all_outliers = false;
  while (iterations < options.max_iterations && residual > 4 * kEps) {
    ++iterations;
    const double f0 = s.f;
    bool moved = false;
    // Newton on the reduced system; where the reduced Hessian is not positive definite (a saddle region, or few
    // points within reach of a huber-like penalty), the saddle-free variant: eigenvalues replaced by their magnitudes
    // (floored at 1e-6 of the largest), with a backtracking line search on f.
    const typename Fixed<Dim>::Basis T = internal::TangentBasis<Dim>(n);
    const Mat M = ReducedHessian<Dim>(s, n, T);
    const Eigen::SelfAdjointEigenSolver<Mat> es(M);
    const double top = es.eigenvalues().cwiseAbs().maxCoeff();
    if (top > 0 && std::isfinite(top)) {
      Vec g(d);
      g.head(d - 1) = T.transpose() * s.g_n;
      g[d - 1] = s.g_e;
      Vec coeff = es.eigenvectors().transpose() * g;
      for (int j = 0; j < d; ++j) coeff[j] /= std::max(std::abs(es.eigenvalues()[j]), 1e-6 * top);
      const Vec step = -(es.eigenvectors() * coeff);
      const bool newton = es.eigenvalues()[0] > 1e-6 * top;
      for (double t = 1.0; t > 1e-9 && step.allFinite(); t *= 0.5) {
        const Vec n1 = (n + t * (T * step.head(d - 1))).normalized();
        const double e1 = e + t * step[d - 1];
        const PlaneSums<Dim> s1 = Sums<Dim>(C, pen, n1, e1, true);
        const double tol = s.f_rounding + s1.f_rounding;
        if (s1.f < f0 - tol) {
          n = n1;
          e = e1;
          s = s1;
          residual = PlaneResidual<Dim>(s1, n1);
          moved = true;
          break;
        }
        if (newton && s1.f <= f0 + tol) {
          // At rounding level: a full Newton step is taken if it lowers the residual.
          const double r1 = PlaneResidual<Dim>(s1, n1);
          if (r1 < residual) {
            n = n1;
            e = e1;
            s = s1;
            residual = r1;
            moved = true;
          }
          break;
        }
      }
    }
    if (!moved) {
      // IRLS (majorise–minimise): the weighted PCA with weights w_i ψ(r_i).
      Vec m = Vec::Zero(d);
      double total = 0;
      std::vector<double> omega(cl.n);
      for (int64_t i = 0; i < cl.n; ++i) {
        omega[i] = WeightAt(cl, i) * pen(n.dot(C.Tilde(i)) - e).psi;
        total += omega[i];
        m += omega[i] * C.Tilde(i);
      }
      if (!(total > 0)) {
        all_outliers = true;
        break;
      }
      m /= total;
      Mat Sw = Mat::Zero(d, d);
      for (int64_t i = 0; i < cl.n; ++i) {
        const Vec pt = C.Tilde(i) - m;
        Sw.noalias() += omega[i] * pt * pt.transpose();
      }
      Vec n1 = internal::SmallestEigenpair<Dim>(Sw).vector;
      if (n1.dot(n) < 0) n1 = -n1;
      const double e1 = n1.dot(m);
      const PlaneSums<Dim> s1 = Sums<Dim>(C, pen, n1, e1, true);
      const double r1 = PlaneResidual<Dim>(s1, n1);
      const double tol = s.f_rounding + s1.f_rounding;
      if (s1.f < f0 - tol || (s1.f <= f0 + tol && r1 < residual)) {
        n = n1;
        e = e1;
        s = s1;
        residual = r1;
        moved = true;
      }
    }
    if (!moved && ++stalls >= 2) break;
  }
  LocalResult<Dim> out;
  out.n = n;
  out.e = e;
  out.s = s;
  out.residual = residual;
  out.iterations = iterations;
  out.all_outliers = all_outliers || !s.any_curvature;
  return out;
}

// Robust penalties: a local solve from the weighted least-squares plane and, for the non-convex penalties (welsch,
// truncated_quadratic, cauchy, geman_mcclure), also one from the pseudo-Huber fit with the same α (itself started at
// the least-squares plane): a least-squares plane pulled over by outliers can leave the redescending penalties
// without inliers in reach, while the pseudo-Huber fit has already discounted them. The lower objective wins, the
// least-squares start on ties.
template <int Dim>
void SolveRobust(const PlaneFitProblem& q, double* normal, double* offset, ProblemStatus* status,
                 const RobustFitOptions& options) {
  using Vec = typename Fixed<Dim>::Vec;
  using Mat = typename Fixed<Dim>::Mat;
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  const Centred<Dim> C(cl);
  const PenaltyEval pen(q.kind, q.alpha);
  Mat S = Mat::Zero(d, d);
  for (int64_t i = 0; i < cl.n; ++i) {
    const Vec pt = C.Tilde(i);
    S.noalias() += WeightAt(cl, i) * pt * pt.transpose();
  }
  const Vec ls = internal::SmallestEigenpair<Dim>(S).vector;
  LocalResult<Dim> best = LocalSolve<Dim>(C, pen, ls, 0.0, options);
  int iterations = best.iterations;
  if (!pooling::IsConvex(q.kind)) {
    const LocalResult<Dim> smooth =
        LocalSolve<Dim>(C, PenaltyEval(PenaltyKind::kPseudoHuber, q.alpha), ls, 0.0, options);
    const LocalResult<Dim> r = LocalSolve<Dim>(C, pen, smooth.n, smooth.e, options);
    iterations += smooth.iterations + r.iterations;
    const double tol = best.s.f_rounding + r.s.f_rounding;
    if (!r.all_outliers && (best.all_outliers || r.s.f < best.s.f - tol)) best = r;
  }
  const Vec& n = best.n;
  const double e = best.e;
  const PlaneSums<Dim>& s = best.s;
  const double residual = best.residual;
  const bool all_outliers = best.all_outliers;
  status->iterations = iterations;
  status->residual = residual;
  status->Set(kNotCertified, "a local minimum from the least-squares plane (the fit over the sphere is not convex)");
  if (all_outliers || !s.any_curvature) {
    status->Set(kAllOutliers, "no point within the penalty's reach of the plane: the objective is flat here");
    status->Set(kNonUnique, "flat objective: one of many minimisers");
  } else {
    if (residual > options.failure_residual) {
      throw NumericalFailure("fit_plane: the robust solve did not converge (scaled residual " + FormatDouble(residual) +
                             " after " + std::to_string(iterations) + " iterations)");
    }
    const typename Fixed<Dim>::Basis T = internal::TangentBasis<Dim>(n);
    const Eigen::SelfAdjointEigenSolver<Mat> es(ReducedHessian<Dim>(s, n, T), Eigen::EigenvaluesOnly);
    const double top = es.eigenvalues().cwiseAbs().maxCoeff();
    if (!(es.eigenvalues()[0] > options.non_unique_gap * top)) {
      status->Set(kNonUnique, "singular reduced Hessian at the solution: the minimiser may not be unique");
    }
  }
  if (s.kink) status->Set(kNonSmooth, "a point lies at the kink of the penalty (|r| = alpha)");
  for (int k = 0; k < d; ++k) normal[k] = n[k];
  *offset = e + n.dot(C.c);
}

// ---- Backward -------------------------------------------------------------------------------------------------

template <int Dim>
void Backward(const PlaneFitProblem& q, const double* normal, double offset, const double* v_normal, double v_offset,
              double* d_points, double* d_weights, ProblemStatus* status, const RobustFitOptions& options) {
  using Vec = typename Fixed<Dim>::Vec;
  using Mat = typename Fixed<Dim>::Mat;
  const PointCloud& cl = q.cloud;
  const int d = static_cast<int>(cl.d);
  const bool quadratic = q.kind == PenaltyKind::kQuadratic;
  PlaneSums<Dim> s;
  const Centred<Dim> C = quadratic ? Centred<Dim>(cl, &s.h_nn) : Centred<Dim>(cl);
  const Vec n = Eigen::Map<const Vec>(normal, d);
  const double e = offset - n.dot(C.c);
  const PenaltyEval pen(q.kind, q.alpha);
  if (quadratic) {
    // g_n, ν and H_nn from the scatter: h_ne = −Σ w p̃ = 0 and h_ee = Σ w exactly.
    s.g_n = s.h_nn * n;
    s.h_ne.setZero(d);
    s.h_ee = C.total_weight;
    s.any_curvature = true;
  } else {
    s = Sums<Dim>(C, pen, n, e, true);
  }
  const typename Fixed<Dim>::Basis T = internal::TangentBasis<Dim>(n);
  const Vec vn = Eigen::Map<const Vec>(v_normal, d) + v_offset * C.c;
  Vec rhs(d);
  rhs.head(d - 1) = T.transpose() * vn;
  rhs[d - 1] = v_offset;
  Vec sol(d);
  if (!s.any_curvature) {
    // Every point beyond the penalty's reach: the solution does not move with the data.
    sol.setZero(d);
    status->Set(kAllOutliers, "no point within the penalty's reach: gradient 0");
  } else if (quadratic) {
    typename Fixed<Dim>::TMat M = T.transpose() * s.h_nn * T;
    M.diagonal().array() -= n.dot(s.g_n);
    typename Fixed<Dim>::TVec z(d - 1);
    const typename Fixed<Dim>::TVec r = rhs.head(d - 1);
    Eigen::LLT<typename Fixed<Dim>::TMat> llt(M);
    // Well conditioned when the smallest pivot² (≈ the smallest eigenvalue λ₂ − λ₁) is well above rounding.
    if (llt.info() == Eigen::Success &&
        llt.matrixLLT().diagonal().minCoeff() * llt.matrixLLT().diagonal().minCoeff() > 1e-10 * s.h_nn.trace()) {
      z = llt.solve(r);
    } else if (!internal::SolveSymmetricPseudo(M, r, &z, 1e-10)) {
      status->Set(kNonRegular, "repeated smallest eigenvalue: minimum-norm gradient");
    }
    sol.head(d - 1) = z;
    sol[d - 1] = v_offset / C.total_weight;
  } else {
    const Mat M = ReducedHessian<Dim>(s, n, T);
    // Regular when LDLT's pivots are all well away from 0 (relative to the largest).
    Eigen::LDLT<Mat> ldlt(M);
    const auto pivots = ldlt.vectorD().cwiseAbs();
    if (ldlt.info() == Eigen::Success && pivots.minCoeff() > 1e-10 * pivots.maxCoeff()) {
      sol = ldlt.solve(rhs);
    } else {
      internal::SolveSymmetricPseudo(M, rhs, &sol, 1e-10);
      status->Set(kNonRegular, "singular reduced Hessian: minimum-norm gradient");
    }
  }
  const Vec wn = T * sol.head(d - 1);
  const double we = sol[d - 1];
  for (int64_t i = 0; i < cl.n; ++i) {
    const double w = WeightAt(cl, i);
    const Vec pt = C.Tilde(i);
    const double r = n.dot(pt) - e;
    const double d1 = quadratic ? r : pen.D1(r), d2 = quadratic ? 1.0 : pen.D2(r);
    const double qi = pt.dot(wn) - we;
    Eigen::Map<Vec> dp(d_points + i * d, d);
    dp = -w * (d1 * wn + (d2 * qi) * n);
    if (d_weights) d_weights[i] = -d1 * qi;
  }
  (void)options;
}

template <int Dim>
void Solve(const PlaneFitProblem& q, double* normal, double* offset, ProblemStatus* status,
           const RobustFitOptions& options) {
  if (q.kind == PenaltyKind::kQuadratic) {
    SolveQuadratic<Dim>(q, normal, offset, status, options);
  } else {
    SolveRobust<Dim>(q, normal, offset, status, options);
  }
}

}  // namespace

void SolvePlaneFit(const PlaneFitProblem& q, double* normal, double* offset, ProblemStatus* status,
                   const RobustFitOptions& options) {
  switch (q.cloud.d) {
    case 2:
      Solve<2>(q, normal, offset, status, options);
      break;
    case 3:
      Solve<3>(q, normal, offset, status, options);
      break;
    default:
      Solve<Eigen::Dynamic>(q, normal, offset, status, options);
      break;
  }
  const int64_t k = OrientPlane(normal, offset, q.cloud.d, options.tie_tolerance);
  if (k != q.cloud.d - 1) {
    status->Set(kNonSmooth, "sign tie: the normal's last coordinate is 0 (|n_D| <= " +
                                FormatDouble(options.tie_tolerance) + "), oriented by coordinate " + std::to_string(k) +
                                "; the output flips sign under some perturbations");
  }
}

void PlaneFitBackward(const PlaneFitProblem& q, const double* normal, double offset, const double* v_normal,
                      double v_offset, double* d_points, double* d_weights, ProblemStatus* status,
                      const RobustFitOptions& options) {
  switch (q.cloud.d) {
    case 2:
      Backward<2>(q, normal, offset, v_normal, v_offset, d_points, d_weights, status, options);
      break;
    case 3:
      Backward<3>(q, normal, offset, v_normal, v_offset, d_points, d_weights, status, options);
      break;
    default:
      Backward<Eigen::Dynamic>(q, normal, offset, v_normal, v_offset, d_points, d_weights, status, options);
      break;
  }
}

}  // namespace ddn::surface
