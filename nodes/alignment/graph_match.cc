#include "nodes/alignment/graph_match.h"

#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <unsupported/Eigen/IterativeSolvers>

#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::alignment::graph_match_internal {
class FixedPointOperator;
}  // namespace ddn::alignment::graph_match_internal

namespace Eigen::internal {
template <>
struct traits<ddn::alignment::graph_match_internal::FixedPointOperator> : public traits<Eigen::SparseMatrix<double>> {};
}  // namespace Eigen::internal

namespace ddn::alignment {
namespace graph_match_internal {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMatrix>;
using RowMap = Eigen::Map<RowMatrix>;

// G(Y) = A Y B + Aᵀ Y Bᵀ (the gradient of tr(Yᵀ A Y B)), all row-major.
void QuadraticGradient(const double* A, const double* B, const double* Y, int64_t N, int64_t Np, double* out) {
  const ConstRowMap a(A, N, N), b(B, Np, Np), y(Y, N, Np);
  RowMap o(out, N, Np);
  o.noalias() = a * y * b;
  o.noalias() += a.transpose() * y * b.transpose();
}

// The Jacobian of the fixed-point map, I − λ G J, as a matrix-free operator for Eigen's GMRES (the pattern of
// Eigen's "matrix-free solvers" documentation).
class FixedPointOperator : public Eigen::EigenBase<FixedPointOperator> {
 public:
  using Scalar = double;
  using RealScalar = double;
  using StorageIndex = int;
  enum { ColsAtCompileTime = Eigen::Dynamic, MaxColsAtCompileTime = Eigen::Dynamic, IsRowMajor = false };

  FixedPointOperator(const TransportJacobian& jacobian, const double* A, const double* B, int64_t N, int64_t Np,
                     double lambda)
      : jacobian_(jacobian), A_(A), B_(B), N_(N), Np_(Np), lambda_(lambda), scratch_(N * Np) {}

  Eigen::Index rows() const { return N_ * Np_; }
  Eigen::Index cols() const { return N_ * Np_; }

  template <typename Rhs>
  Eigen::Product<FixedPointOperator, Rhs, Eigen::AliasFreeProduct> operator*(const Eigen::MatrixBase<Rhs>& x) const {
    return Eigen::Product<FixedPointOperator, Rhs, Eigen::AliasFreeProduct>(*this, x.derived());
  }

  // out = in − λ G(J in).
  void Apply(const double* in, double* out) const {
    jacobian_.Apply(in, scratch_.data());
    QuadraticGradient(A_, B_, scratch_.data(), N_, Np_, out);
    for (int64_t k = 0; k < N_ * Np_; ++k) out[k] = in[k] - lambda_ * out[k];
  }

 private:
  const TransportJacobian& jacobian_;
  const double* A_;
  const double* B_;
  int64_t N_, Np_;
  double lambda_;
  mutable std::vector<double> scratch_;
};

}  // namespace graph_match_internal
}  // namespace ddn::alignment

namespace Eigen::internal {
template <typename Rhs>
struct generic_product_impl<ddn::alignment::graph_match_internal::FixedPointOperator, Rhs, SparseShape, DenseShape,
                            GemvProduct>
    : generic_product_impl_base<ddn::alignment::graph_match_internal::FixedPointOperator, Rhs,
                                generic_product_impl<ddn::alignment::graph_match_internal::FixedPointOperator, Rhs>> {
  template <typename Dest>
  static void scaleAndAddTo(Dest& dst, const ddn::alignment::graph_match_internal::FixedPointOperator& lhs,
                            const Rhs& rhs, const double& alpha) {
    const Eigen::VectorXd in = rhs;
    Eigen::VectorXd out(in.size());
    lhs.Apply(in.data(), out.data());
    dst.noalias() += alpha * out;
  }
};
}  // namespace Eigen::internal

namespace ddn::alignment {

using graph_match_internal::ConstRowMap;
using graph_match_internal::FixedPointOperator;
using graph_match_internal::QuadraticGradient;
using graph_match_internal::RowMap;
using graph_match_internal::RowMatrix;

void GraphMatchOptions::Validate() const {
  auto require = [](bool ok, const char* field, double value) {
    if (!ok) throw InvalidInput(std::string("GraphMatchOptions.") + field + " is invalid: " + FormatDouble(value));
  };
  require(tolerance > 0 && std::isfinite(tolerance), "tolerance", tolerance);
  require(max_fixed_point_iterations >= 1, "max_fixed_point_iterations", max_fixed_point_iterations);
  require(max_newton_steps >= 0, "max_newton_steps", max_newton_steps);
  require(stage_tolerance >= tolerance && stage_tolerance < 1, "stage_tolerance", stage_tolerance);
  require(newton_start > 0 && newton_start < 1, "newton_start", newton_start);
  require(slow_rate > 0 && slow_rate < 1, "slow_rate", slow_rate);
  require(krylov_tolerance > 0 && krylov_tolerance < 1, "krylov_tolerance", krylov_tolerance);
  require(max_krylov_iterations >= 1, "max_krylov_iterations", max_krylov_iterations);
  sinkhorn.Validate();
}

double QuadraticTermNorm(const double* A, const double* B, int64_t N, int64_t Np) {
  auto spectral = [](const double* m, int64_t n) {
    const ConstRowMap a(m, n, n);
    const Eigen::MatrixXd gram = a.transpose() * a;
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram, Eigen::EigenvaluesOnly);
    return std::sqrt(std::max(0.0, eig.eigenvalues().maxCoeff()));
  };
  // Eigenvalues are accurate to rounding relative to the largest; a hair above it keeps the bound an upper one.
  return 2.0 * spectral(A, N) * spectral(B, Np) * (1.0 + 1e-12);
}

namespace {

struct Problem {
  const double* K;
  const double* A;
  const double* B;
  int64_t N, Np;
  double lambda;
  const GraphMatchOptions* options;
  std::vector<double> r, c, cost;

  Problem(const double* K_, const double* A_, const double* B_, int64_t N_, int64_t Np_, double lambda_,
          const GraphMatchOptions* options_)
      : K(K_), A(A_), B(B_), N(N_), Np(Np_), lambda(lambda_), options(options_), cost(N_ * Np_) {
    const double mass = static_cast<double>(std::min(N, Np));
    r.assign(N, mass / static_cast<double>(N));
    c.assign(Np, mass / static_cast<double>(Np));
  }
  // X = Π(S) at γ.
  void Project(const double* S, double gamma, double* X) {
    for (int64_t k = 0; k < N * Np; ++k) cost[k] = -S[k];
    SolveTransport(cost.data(), r.data(), c.data(), N, Np, gamma, options->sinkhorn, X);
  }
  // T = K + λ G(X).
  void Score(const double* X, double* T) const {
    QuadraticGradient(A, B, X, N, Np, T);
    for (int64_t k = 0; k < N * Np; ++k) T[k] = K[k] + lambda * T[k];
  }
};

double MaxAbsDiff(const double* a, const double* b, int64_t n) {
  double m = 0;
  for (int64_t k = 0; k < n; ++k) m = std::max(m, std::abs(a[k] - b[k]));
  return m;
}

double MaxAbs(const double* a, int64_t n) {
  double m = 0;
  for (int64_t k = 0; k < n; ++k) m = std::max(m, std::abs(a[k]));
  return m;
}

}  // namespace

GraphMatchReport SolveGraphMatch(const double* K, const double* A, const double* B, int64_t N, int64_t Np,
                                 double lambda, double gamma, const GraphMatchOptions& options, double* X) {
  GraphMatchReport report;
  Problem problem(K, A, B, N, Np, lambda, &options);
  const int64_t n = N * Np;
  const double norm = lambda > 0 ? QuadraticTermNorm(A, B, N, Np) : 0.0;
  report.concave = lambda * gamma * norm < 1.0;
  int stages = 0;
  if (lambda * gamma * norm > 0.5) stages = static_cast<int>(std::ceil(std::log2(lambda * gamma * norm / 0.5)));
  stages = std::min(stages, 40);

  std::vector<double> S(K, K + n), T(n), Xt(n), phi(n);
  // The residual of (1) at X is measured against Π(K + λG(X)), scaled by how finely rounding can resolve the
  // projection: a change δ of the score moves X by up to γ·δ.
  auto tolerance_at = [&](double gk, const double* score) {
    return options.tolerance * std::max(1.0, gk * MaxAbs(score, n));
  };
  for (int k = stages; k >= 0; --k) {
    const double gk = std::ldexp(gamma, -k);
    const bool final_stage = k == 0;
    ++report.stages;
    problem.Project(S.data(), gk, X);
    double step = 1.0, prev_res = std::numeric_limits<double>::infinity();
    bool go_newton = false;
    for (int it = 0; it < options.max_fixed_point_iterations; ++it) {
      problem.Score(X, T.data());
      problem.Project(T.data(), gk, Xt.data());
      ++report.fixed_point_iterations;
      const double res = MaxAbsDiff(Xt.data(), X, n);
      report.residual = res;
      const double tol = final_stage ? tolerance_at(gk, T.data()) : options.stage_tolerance;
      if (res <= tol) {
        report.converged = final_stage;
        break;
      }
      if (final_stage && options.max_newton_steps > 0 &&
          (res <= options.newton_start || (it >= 3 && res > options.slow_rate * prev_res && res <= prev_res))) {
        go_newton = true;
        break;
      }
      if (res > prev_res) step = std::max(step * 0.5, 1.0 / 64);  // damp the mirror step
      // S ← S + s (T − S); with s = 1 the next iterate is Xt itself.
      for (int64_t q = 0; q < n; ++q) S[q] += step * (T[q] - S[q]);
      if (step == 1.0) {
        std::copy(Xt.begin(), Xt.end(), X);
      } else {
        problem.Project(S.data(), gk, X);
      }
      prev_res = res;
    }
    if (!final_stage || !go_newton) continue;

    // Newton–Krylov on Φ(S) = S − K − λ G(Π(S)), from S with X = Π(S).
    auto phi_at = [&](const double* s, const double* x, double* out) {
      problem.Score(x, out);
      for (int64_t q = 0; q < n; ++q) out[q] = s[q] - out[q];
      return MaxAbs(out, n);
    };
    problem.Project(S.data(), gk, X);
    double phi_norm = phi_at(S.data(), X, phi.data());
    std::vector<double> S_trial(n), X_trial(n), phi_trial(n);
    for (int step_count = 0; step_count < options.max_newton_steps; ++step_count) {
      const TransportJacobian jacobian(X, N, Np, gk);
      const FixedPointOperator op(jacobian, A, B, N, Np, lambda);
      Eigen::GMRES<FixedPointOperator, Eigen::IdentityPreconditioner> gmres;
      gmres.setTolerance(options.krylov_tolerance);
      gmres.setMaxIterations(options.max_krylov_iterations);
      gmres.set_restart(std::min<int>(options.max_krylov_iterations, 60));
      gmres.compute(op);
      const Eigen::VectorXd rhs = -Eigen::Map<const Eigen::VectorXd>(phi.data(), n);
      const Eigen::VectorXd delta = gmres.solve(rhs);
      bool accepted = false;
      for (double t = 1.0; t >= 1.0 / 64 && !accepted; t *= 0.5) {
        for (int64_t q = 0; q < n; ++q) S_trial[q] = S[q] + t * delta[q];
        problem.Project(S_trial.data(), gk, X_trial.data());
        const double trial_norm = phi_at(S_trial.data(), X_trial.data(), phi_trial.data());
        if (trial_norm < phi_norm) {
          accepted = true;
          S.swap(S_trial);
          std::copy(X_trial.begin(), X_trial.end(), X);
          phi.swap(phi_trial);
          phi_norm = trial_norm;
        }
      }
      if (!accepted) break;
      ++report.newton_steps;
      problem.Score(X, T.data());
      problem.Project(T.data(), gk, Xt.data());
      report.residual = MaxAbsDiff(Xt.data(), X, n);
      if (report.residual <= tolerance_at(gk, T.data())) {
        report.converged = true;
        break;
      }
    }
  }
  return report;
}

void GraphMatchVjp(const double* A, const double* B, const double* X, int64_t N, int64_t Np, double lambda,
                   double gamma, const GraphMatchOptions& options, const double* V, double* dK, double* dA, double* dB,
                   ProblemStatus* status) {
  const int64_t n = N * Np;
  const TransportJacobian jacobian(X, N, Np, gamma);
  Eigen::VectorXd w;
  const Eigen::Map<const Eigen::VectorXd> v(V, n);
  if (lambda == 0) {
    w = v;
  } else {
    const FixedPointOperator op(jacobian, A, B, N, Np, lambda);
    Eigen::GMRES<FixedPointOperator, Eigen::IdentityPreconditioner> gmres;
    gmres.setTolerance(options.krylov_tolerance);
    gmres.setMaxIterations(options.max_krylov_iterations);
    gmres.set_restart(std::min<int>(options.max_krylov_iterations, 60));
    gmres.compute(op);
    w = gmres.solve(v);
    // The true residual decides: GMRES reports its own estimate.
    Eigen::VectorXd check(n);
    op.Apply(w.data(), check.data());
    const double residual = (check - v).norm() / std::max(v.norm(), 1e-300);
    if (!(residual <= 1e-9) && status) {
      status->Set(kNonRegular,
                  "I − λGJ is (nearly) singular at this fixed point: least-squares gradient (relative "
                  "residual " +
                      FormatDouble(residual) + ")");
    }
  }
  RowMatrix z(N, Np);
  jacobian.Apply(w.data(), z.data());
  if (dK) RowMap(dK, N, Np) = z;
  const ConstRowMap a(A, N, N), b(B, Np, Np), x(X, N, Np);
  if (dA) RowMap(dA, N, N).noalias() = lambda * (z * b.transpose() * x.transpose() + x * b.transpose() * z.transpose());
  if (dB)
    RowMap(dB, Np, Np).noalias() = lambda * (x.transpose() * a.transpose() * z + z.transpose() * a.transpose() * x);
}

}  // namespace ddn::alignment
