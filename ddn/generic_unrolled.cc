// The generic engine's unrolled and truncated:K gradient modes; see generic_unrolled.h for the method.
#include "ddn/generic_unrolled.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

// The replay's Hessians are dense (m × m doubles each): a bound that keeps them at 32 MB.
constexpr int kMaxDenseVariables = 2000;

double MaxAbs(const VectorXd& v) { return v.size() ? v.cwiseAbs().maxCoeff() : 0.0; }

// g, the dense symmetric H (from the oracle's lower-triangle entries) and, if B is given, the y-x entries.
double Evaluate(const DerivativeOracle& oracle, const VectorXd& y, VectorXd* g, MatrixXd* H,
                std::vector<SparseEntry>* B) {
  const int m = oracle.num_variables();
  std::vector<SparseEntry> lower;
  g->resize(m);
  const double f = oracle.Derivatives(y.data(), g->data(), &lower, B, nullptr);
  H->setZero(m, m);
  for (const SparseEntry& e : lower) {
    (*H)(e.row, e.col) += e.value;
    if (e.row != e.col) (*H)(e.col, e.row) += e.value;
  }
  if (!std::isfinite(f) || !g->allFinite() || !H->allFinite()) {
    throw NumericalFailure(oracle.Name() + ": a non-finite objective or derivative in the unrolled Newton replay");
  }
  return f;
}

// Factorises H + τI for the tape's τ (or, with choose, the smallest τ of 0, 1e-8·max|diag H| × 8^k that makes it
// positive definite). Returns τ; throws NumericalFailure if no shift works.
double Factorize(const DerivativeOracle& oracle, const MatrixXd& H, bool choose, double tau,
                 Eigen::LLT<MatrixXd>* llt) {
  const int m = static_cast<int>(H.rows());
  const double dmax = std::max(H.diagonal().cwiseAbs().maxCoeff(), std::numeric_limits<double>::min());
  for (int attempt = 0; attempt < 60; ++attempt) {
    llt->compute(H + tau * MatrixXd::Identity(m, m));
    if (!choose) return tau;
    if (llt->info() == Eigen::Success && llt->matrixLLT().diagonal().minCoeff() > 1e-10 * std::sqrt(dmax + tau)) {
      return tau;
    }
    tau = tau == 0 ? 1e-8 * dmax : tau * 8;
  }
  throw NumericalFailure(oracle.Name() + ": no inertia correction makes the Hessian positive definite in the "
                         "unrolled Newton replay");
}

// (H u, Bᵀu) at y: the row uᵀ∇²_{y,(y,x)} f whose derivative along s is T(u, s).
void HessianRowTimes(const DerivativeOracle& oracle, const VectorXd& y, const VectorXd& u, VectorXd* hu,
                     VectorXd* btu) {
  const int m = oracle.num_variables(), n = oracle.num_parameters();
  std::vector<SparseEntry> lower, mixed;
  VectorXd g(m);
  oracle.Derivatives(y.data(), g.data(), &lower, &mixed, nullptr);
  hu->setZero(m);
  btu->setZero(n);
  for (const SparseEntry& e : lower) {
    (*hu)[e.row] += e.value * u[e.col];
    if (e.row != e.col) (*hu)[e.col] += e.value * u[e.row];
  }
  for (const SparseEntry& e : mixed) (*btu)[e.col] += e.value * u[e.row];
}

}  // namespace

void RecordGenericNewton(const DerivativeOracle& oracle, const GenericSolverOptions& options, const double* y0,
                         const double* y_answer, GenericNewtonTape* tape) {
  if (oracle.num_equalities() + oracle.num_inequalities() > 0) {
    throw InvalidInput(oracle.Name() + " has constraints: the generic engine's unrolled and truncated gradient "
                       "modes replay unconstrained Newton only; use implicit");
  }
  const int m = oracle.num_variables();
  if (m > kMaxDenseVariables) {
    throw InvalidInput(oracle.Name() + ": the unrolled Newton replay factorises the Hessian densely and takes at most " +
                       std::to_string(kMaxDenseVariables) + " variables, got " + std::to_string(m) + "; use implicit");
  }
  *tape = GenericNewtonTape{};
  tape->m = m;
  VectorXd y = Eigen::Map<const VectorXd>(y0, m), g(m), trial(m), gt(m);
  const Eigen::Map<const VectorXd> answer(y_answer, m);
  const double scale0 = std::max({MaxAbs(y), MaxAbs(answer), std::numeric_limits<double>::min()});
  tape->iterates.assign(y.data(), y.data() + m);
  MatrixXd H;
  Eigen::LLT<MatrixXd> llt(m);
  for (int it = 0; it < options.max_newton_iterations; ++it) {
    const double f = Evaluate(oracle, y, &g, &H, nullptr);
    const double tau = Factorize(oracle, H, /*choose=*/true, 0.0, &llt);
    const VectorXd d = -llt.solve(g);
    const double scale = std::max(MaxAbs(y), scale0);
    const double step = MaxAbs(d) / scale;
    double alpha = 1;
    if (!(tau == 0 && step <= 1e-6)) {
      const double slope = g.dot(d);
      for (int k = 0; k < 60; ++k, alpha *= 0.5) {
        trial = y + alpha * d;
        const double ft = oracle.Value(trial.data());
        if (std::isfinite(ft) && ft <= f + 1e-4 * alpha * slope) break;
      }
    }
    y += alpha * d;
    tape->alpha.push_back(alpha);
    tape->tau.push_back(tau);
    tape->iterates.insert(tape->iterates.end(), y.data(), y.data() + m);
    if (tau == 0 && step <= 1e-12) {
      tape->converged = true;
      break;
    }
  }
  const double gap = MaxAbs(y - answer) / std::max(MaxAbs(answer), scale0);
  if (!(gap <= 1e-7)) {
    throw NumericalFailure(oracle.Name() + ": the unrolled Newton replay from the initial guess ended " +
                           FormatDouble(gap) + " (relative) away from the forward's answer after " +
                           std::to_string(tape->steps()) + " steps; use implicit");
  }
}

void ReplayGenericNewtonSteps(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int first,
                              const double* y_first, double* y_out) {
  const int m = tape.m;
  VectorXd y = Eigen::Map<const VectorXd>(y_first, m), g(m);
  MatrixXd H;
  Eigen::LLT<MatrixXd> llt(m);
  for (int t = first; t < tape.steps(); ++t) {
    Evaluate(oracle, y, &g, &H, nullptr);
    Factorize(oracle, H, /*choose=*/false, tape.tau[t], &llt);
    y -= tape.alpha[t] * llt.solve(g);
  }
  std::copy(y.data(), y.data() + m, y_out);
}

void GenericUnrolledVjp(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int steps, const double* v,
                        double* dx) {
  const int m = tape.m, n = oracle.num_parameters();
  const int T = tape.steps(), K = std::min(steps, T);
  VectorXd ybar = Eigen::Map<const VectorXd>(v, m), xbar = VectorXd::Zero(n), g(m), hu(m), btu(n);
  MatrixXd H;
  Eigen::LLT<MatrixXd> llt(m);
  std::vector<SparseEntry> mixed;
  for (int t = T - 1; t >= T - K; --t) {
    const VectorXd y = Eigen::Map<const VectorXd>(tape.iterates.data() + static_cast<size_t>(t) * m, m);
    mixed.clear();
    Evaluate(oracle, y, &g, &H, &mixed);
    Factorize(oracle, H, /*choose=*/false, tape.tau[t], &llt);
    const VectorXd u = llt.solve(ybar), s = llt.solve(g);
    const double alpha = tape.alpha[t];
    // −α (H u, Bᵀu)
    hu = H * u;
    btu.setZero();
    for (const SparseEntry& e : mixed) btu[e.col] += e.value * u[e.row];
    VectorXd next = ybar - alpha * hu;
    xbar -= alpha * btu;
    // +α T(u, s): the derivative of (H u, Bᵀu) along s, Richardson-extrapolated central differences.
    const double snorm = MaxAbs(s);
    if (snorm > 0) {
      const VectorXd dir = s / snorm;
      const double delta = 2e-4 * std::max(MaxAbs(y), snorm);
      VectorXd dy[2], dxx[2];
      for (int level = 0; level < 2; ++level) {
        const double h = level == 0 ? delta : 0.5 * delta;
        VectorXd hp(m), bp(n), hm(m), bm(n);
        HessianRowTimes(oracle, y + h * dir, u, &hp, &bp);
        HessianRowTimes(oracle, y - h * dir, u, &hm, &bm);
        dy[level] = (hp - hm) / (2 * h);
        dxx[level] = (bp - bm) / (2 * h);
      }
      next += (alpha * snorm / 3) * (4 * dy[1] - dy[0]);
      xbar += (alpha * snorm / 3) * (4 * dxx[1] - dxx[0]);
    }
    ybar = next;
  }
  for (int j = 0; j < n; ++j) dx[j] += xbar[j];
}

void GenericBackwardInMode(const DerivativeOracle& oracle, const GenericSolverOptions& options,
                           const GradientMode& mode, const double* y0, const double* y_answer, const double* v,
                           double* dx, ProblemStatus* status) {
  GenericNewtonTape tape;
  RecordGenericNewton(oracle, options, y0, y_answer, &tape);
  if (!tape.converged) {
    status->Set(kNotConverged, "the unrolled Newton replay stopped at max_newton_iterations");
  }
  GenericUnrolledVjp(oracle, tape, mode.kind == GradientMode::kUnrolled ? tape.steps() : mode.steps, v, dx);
}

}  // namespace ddn
