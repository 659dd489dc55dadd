// Robust vector pooling differentiated through its local iterations; see vector_pool_unrolled.h for the math.
#include "nodes/pooling/vector_pool_unrolled.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ddn/error.h"
#include "ddn/params.h"
#include "nodes/pooling/penalties.h"

namespace ddn::pooling {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

inline double Weight(const double* w, int64_t i) {
  return w ? w[i] : 1.0;
}
double Norm(const VectorXd& v) {
  return v.lpNorm<Eigen::Infinity>();
}

// One pass of the local solve at y, as vector_multistart.cc's LocalVector computes it (a plain loop: the replay
// agrees with the forward's vectorised pass to rounding).
struct Pass {
  double f = 0, spsi = 0, hsum = 0;
  VectorXd g;
  MatrixXd H;  // Σ w_i ∇²φ_i
};

void EvaluatePass(const PoolingProblem& p, const VectorXd& y, Pass* S) {
  const int64_t d = p.d;
  const PenaltyEval pen(p.kind, p.alpha);
  S->f = S->spsi = S->hsum = 0;
  S->g = VectorXd::Zero(d);
  S->H = MatrixXd::Zero(d, d);
  VectorXd r(d);
  for (int64_t i = 0; i < p.n; ++i) {
    const double* xi = p.x + i * d;
    double z2 = 0;
    for (int64_t k = 0; k < d; ++k) {
      r[k] = y[k] - xi[k];
      z2 += r[k] * r[k];
    }
    const PenaltyValues v = pen(std::sqrt(z2));
    const double wi = Weight(p.w, i);
    S->f += wi * v.phi;
    S->spsi += wi * v.psi;
    S->hsum += wi * (std::abs(v.psi) + std::abs(v.d2));
    S->g += (wi * v.psi) * r;
    if (z2 > 0) {
      const double c = wi * (v.d2 - v.psi) / z2;
      for (int64_t l = 0; l < d; ++l) {
        const double cl = c * r[l];
        for (int64_t k = l; k < d; ++k) S->H(k, l) += cl * r[k];
      }
    }
  }
  S->H.triangularView<Eigen::StrictlyUpper>() = S->H.transpose();
  S->H.diagonal().array() += S->spsi;
}

// P', P'', P''' of P(s) = φ(√s) at s = ‖r‖² (u = s/α²; penalties.h's PenaltyOfSquare differentiated by hand,
// since Ceres' Jets nest two deep only; the finite-difference tests check all three).
struct SquareDerivatives {
  double p1, p2, p3;
};
SquareDerivatives DerivativesOfSquare(PenaltyKind kind, double s, double alpha) {
  const double a2 = alpha * alpha, u = s / a2;
  switch (kind) {
    case PenaltyKind::kQuadratic:
      return {0.5, 0, 0};
    case PenaltyKind::kPseudoHuber: {  // α²(√(1+u) − 1)
      const double iq = 1 / std::sqrt(1 + u), iq3 = iq * iq * iq;
      return {0.5 * iq, -0.25 * iq3 / a2, 0.375 * iq3 * iq * iq / (a2 * a2)};
    }
    case PenaltyKind::kHuber: {  // s/2 (s ≤ α²), α(√s − α/2)
      if (s <= a2) return {0.5, 0, 0};
      const double rs = std::sqrt(s);
      return {0.5 * alpha / rs, -0.25 * alpha / (s * rs), 0.375 * alpha / (s * s * rs)};
    }
    case PenaltyKind::kWelsch: {  // 1 − exp(−u/2)
      const double e = std::exp(-0.5 * u);
      return {0.5 * e / a2, -0.25 * e / (a2 * a2), 0.125 * e / (a2 * a2 * a2)};
    }
    case PenaltyKind::kTruncatedQuadratic:  // s/2 (s < α²), α²/2
      return s < a2 ? SquareDerivatives{0.5, 0, 0} : SquareDerivatives{0, 0, 0};
    case PenaltyKind::kCauchy: {  // ½α² log(1 + u)
      const double i1 = 1 / (1 + u);
      return {0.5 * i1, -0.5 * i1 * i1 / a2, i1 * i1 * i1 / (a2 * a2)};
    }
    case PenaltyKind::kGemanMcClure: {  // ½s/(1 + u)
      const double i1 = 1 / (1 + u), i2 = i1 * i1;
      return {0.5 * i2, -i2 * i1 / a2, 3 * i2 * i2 / (a2 * a2)};
    }
  }
  return {0, 0, 0};
}

bool NewtonStep(const Pass& S, Eigen::LLT<MatrixXd>* llt) {
  llt->compute(S.H);
  return llt->info() == Eigen::Success && llt->matrixLLT().diagonal().minCoeff() > 1e-8 * std::sqrt(S.hsum);
}

// The step of kind `newton` at y (a pass already evaluated there).
VectorXd Step(const Pass& S, bool newton) {
  if (newton) {
    Eigen::LLT<MatrixXd> llt(S.H);
    return -llt.solve(S.g);
  }
  return -S.g / S.spsi;
}

}  // namespace

void RecordVectorPoolSolve(const PoolingProblem& p, const VectorStart& start, const double* y_answer,
                           VectorPoolTape* tape) {
  const int64_t d = p.d;
  if (d < 2) {
    throw InvalidInput(
        "robust_vector_pool: the unrolled and truncated gradient modes need D >= 2 (D = 1 is solved "
        "by the scalar solvers, which have no local iteration to unroll); use implicit");
  }
  *tape = VectorPoolTape{};
  tape->d = d;
  tape->start = start;
  if (p.kind == PenaltyKind::kQuadratic || p.kind == PenaltyKind::kTruncatedQuadratic) {
    tape->map = p.kind == PenaltyKind::kQuadratic ? VectorPoolTape::kClosedForm : VectorPoolTape::kInlierMean;
    tape->iterates.assign(y_answer, y_answer + d);
    return;
  }
  if (start.kind == VectorStart::kNone || static_cast<int64_t>(start.y0.size()) != d) {
    throw NumericalFailure("robust_vector_pool: the forward reported no start for the unrolled replay");
  }
  if (start.kind == VectorStart::kMedian) {
    // The coordinate-wise median is a data value in every coordinate: the point it was taken from.
    tape->median_index.assign(d, -1);
    for (int64_t k = 0; k < d; ++k) {
      for (int64_t i = 0; i < p.n && tape->median_index[k] < 0; ++i) {
        if (p.x[i * d + k] == start.y0[k]) tape->median_index[k] = i;
      }
      if (tape->median_index[k] < 0) {
        throw NumericalFailure("robust_vector_pool: the median start is not a data value (unrolled replay)");
      }
    }
  }
  // The local solve of vector_multistart.cc (LocalVector), step kinds recorded; the descent test's rejection of a
  // Newton step turns that step into the IRLS step from the same iterate.
  VectorXd y = Eigen::Map<const VectorXd>(start.y0.data(), d);
  tape->iterates.assign(y.data(), y.data() + d);
  Pass S;
  Eigen::LLT<MatrixXd> llt(d);
  VectorXd irls_prev = y;
  double f_prev = std::numeric_limits<double>::infinity();
  bool newton_prev = false;
  tape->converged = false;
  for (int it = 0; it < 500; ++it) {
    EvaluatePass(p, y, &S);
    if (newton_prev && S.f > f_prev + 1e-13 * std::abs(f_prev)) {
      y = irls_prev;
      tape->newton.back() = 0;
      std::copy(y.data(), y.data() + d, tape->iterates.end() - d);
      newton_prev = false;
      continue;
    }
    if (S.spsi <= 0) {
      tape->converged = true;
      break;
    }
    irls_prev = y - S.g / S.spsi;
    newton_prev = NewtonStep(S, &llt);
    const VectorXd step = newton_prev ? VectorXd(-llt.solve(S.g)) : VectorXd(irls_prev - y);
    f_prev = S.f;
    y += step;
    tape->newton.push_back(newton_prev ? 1 : 0);
    tape->iterates.insert(tape->iterates.end(), y.data(), y.data() + d);
    if (Norm(step) <= 1e-12 * (Norm(y) + p.alpha)) {
      tape->converged = true;
      break;
    }
  }
  double gap = 0, scale = p.alpha;
  for (int64_t k = 0; k < d; ++k) {
    gap = std::max(gap, std::abs(y[k] - y_answer[k]));
    scale = std::max(scale, std::abs(y_answer[k]));
  }
  if (!(gap <= 1e-8 * scale)) {
    throw NumericalFailure("robust_vector_pool: the unrolled replay of the winning local solve ended " +
                           FormatDouble(gap / scale) + " (relative) away from the forward's answer");
  }
}

void VectorPoolStartOf(const PoolingProblem& p, const VectorPoolTape& tape, double* y0) {
  const int64_t d = p.d;
  switch (tape.start.kind) {
    case VectorStart::kMedian:
      for (int64_t k = 0; k < d; ++k) y0[k] = p.x[tape.median_index[k] * d + k];
      return;
    case VectorStart::kPoint:
      for (int64_t k = 0; k < d; ++k) y0[k] = p.x[tape.start.point * d + k];
      return;
    case VectorStart::kMean: {
      double W = 0;
      for (int64_t k = 0; k < d; ++k) y0[k] = 0;
      for (int64_t i = 0; i < p.n; ++i) {
        W += Weight(p.w, i);
        for (int64_t k = 0; k < d; ++k) y0[k] += Weight(p.w, i) * p.x[i * d + k];
      }
      for (int64_t k = 0; k < d; ++k) y0[k] /= W;
      return;
    }
    case VectorStart::kNone:
      break;
  }
  std::copy(tape.start.y0.begin(), tape.start.y0.end(), y0);
}

void ReplayVectorPoolSteps(const PoolingProblem& p, const VectorPoolTape& tape, int first, const double* y_first,
                           double* y_out) {
  VectorXd y = Eigen::Map<const VectorXd>(y_first, p.d);
  Pass S;
  for (int t = first; t < tape.steps(); ++t) {
    EvaluatePass(p, y, &S);
    y += Step(S, tape.newton[t] != 0);
  }
  std::copy(y.data(), y.data() + p.d, y_out);
}

void VectorPoolUnrolledVjp(const PoolingProblem& p, const VectorPoolTape& tape, int steps, const double* v, double* dx,
                           double* dw) {
  const int64_t d = p.d;
  const VectorXd vv = Eigen::Map<const VectorXd>(v, d);
  if (tape.map != VectorPoolTape::kLocal) {
    // The (inlier) weighted mean y = Σ_in w_i x_i / W_in at the answer.
    const Eigen::Map<const VectorXd> y(tape.iterates.data(), d);
    const double a2 = p.alpha * p.alpha;
    auto inlier = [&](int64_t i) {
      if (tape.map == VectorPoolTape::kClosedForm) return true;
      double z2 = 0;
      for (int64_t k = 0; k < d; ++k) z2 += (y[k] - p.x[i * d + k]) * (y[k] - p.x[i * d + k]);
      return z2 < a2;
    };
    double W = 0;
    for (int64_t i = 0; i < p.n; ++i)
      if (inlier(i)) W += Weight(p.w, i);
    if (!(W > 0)) return;
    for (int64_t i = 0; i < p.n; ++i) {
      if (!inlier(i)) continue;
      double xv = 0;
      for (int64_t k = 0; k < d; ++k) {
        dx[i * d + k] += Weight(p.w, i) / W * vv[k];
        xv += (p.x[i * d + k] - y[k]) * vv[k];
      }
      if (dw) dw[i] += xv / W;
    }
    return;
  }
  const int T = tape.steps();
  const int K = std::min(steps, T);
  VectorXd ybar = vv, next(d), r(d), u(d), s(d);
  Pass S;
  for (int t = T - 1; t >= T - K; --t) {
    const VectorXd y = Eigen::Map<const VectorXd>(tape.iterates.data() + t * d, d);
    EvaluatePass(p, y, &S);
    const bool newton = tape.newton[t] != 0;
    double beta = 0;
    if (newton) {
      const Eigen::LLT<MatrixXd> llt(S.H);
      u = llt.solve(ybar);
      s = llt.solve(S.g);
      next.setZero();
    } else {
      u = ybar / S.spsi;  // a
      beta = ybar.dot(S.g) / (S.spsi * S.spsi);
      next = ybar;
    }
    // Per point, without temporaries: e = −w_i∇²φ_i u + (Newton) w_i∇³φ_i[u, s, ·] or (IRLS) 4βw_iP''r.
    for (int64_t i = 0; i < p.n; ++i) {
      const double* xi = p.x + i * d;
      double rr = 0, ru = 0, rs = 0;
      for (int64_t k = 0; k < d; ++k) {
        r[k] = y[k] - xi[k];
        rr += r[k] * r[k];
        ru += r[k] * u[k];
        if (newton) rs += r[k] * s[k];
      }
      const double wi = Weight(p.w, i);
      const SquareDerivatives P = DerivativesOfSquare(p.kind, rr, p.alpha);
      double* dxi = dx + i * d;
      if (newton) {
        const double us = u.dot(s);
        // third = w(4P''((uᵀs) r + (rᵀs) u + (rᵀu) s) + 8P'''(rᵀu)(rᵀs) r); e = −w(2P'u + 4P''(rᵀu) r) + third
        const double cr = wi * (4 * P.p2 * us + 8 * P.p3 * ru * rs), cu = wi * 4 * P.p2 * rs, cs = wi * 4 * P.p2 * ru;
        const double er = cr - wi * 4 * P.p2 * ru, eu = cu - wi * 2 * P.p1;
        for (int64_t k = 0; k < d; ++k) {
          next[k] += cr * r[k] + cu * u[k] + cs * s[k];
          dxi[k] -= er * r[k] + eu * u[k] + cs * s[k];
        }
        if (dw) dw[i] += -2 * P.p1 * ru + (2 * P.p1 * us + 4 * P.p2 * ru * rs);
      } else {
        // u holds a = ȳ/S: e = −w(2P'a + 4P''(rᵀa) r) + 4βwP'' r
        const double er = wi * (4 * beta * P.p2 - 4 * P.p2 * ru), eu = -wi * 2 * P.p1;
        for (int64_t k = 0; k < d; ++k) {
          const double e = er * r[k] + eu * u[k];
          next[k] += e;
          dxi[k] -= e;
        }
        if (dw) dw[i] += -2 * P.p1 * ru + 2 * P.p1 * beta;
      }
    }
    ybar = next;
  }
  if (K < T) return;
  // Through the start.
  switch (tape.start.kind) {
    case VectorStart::kMedian:
      for (int64_t k = 0; k < d; ++k) dx[tape.median_index[k] * d + k] += ybar[k];
      break;
    case VectorStart::kPoint:
      for (int64_t k = 0; k < d; ++k) dx[tape.start.point * d + k] += ybar[k];
      break;
    case VectorStart::kMean: {
      double W = 0;
      for (int64_t i = 0; i < p.n; ++i) W += Weight(p.w, i);
      std::vector<double> y0(d);
      VectorPoolStartOf(p, tape, y0.data());
      for (int64_t i = 0; i < p.n; ++i) {
        double xv = 0;
        for (int64_t k = 0; k < d; ++k) {
          dx[i * d + k] += Weight(p.w, i) / W * ybar[k];
          xv += (p.x[i * d + k] - y0[k]) * ybar[k];
        }
        if (dw) dw[i] += xv / W;
      }
      break;
    }
    case VectorStart::kNone:
      break;
  }
}

void VectorPoolBackwardInMode(const PoolingProblem& p, const PoolingOptions& options, const double* y,
                              const GradientMode& mode, const double* v, double* dx, double* dw,
                              ProblemStatus* status) {
  if (p.d < 2) {
    throw InvalidInput(
        "robust_vector_pool: the unrolled and truncated gradient modes need D >= 2 (D = 1 is solved "
        "by the scalar solvers, which have no local iteration to unroll); use implicit");
  }
  // Solve again for the winning start (Solve and Backward are stateless; the solve is deterministic).
  std::vector<double> y_again(p.d);
  ProblemStatus again;
  VectorStart start;
  SolveVectorPool(p, y_again.data(), &again, options, &start);
  VectorPoolTape tape;
  RecordVectorPoolSolve(p, start, y, &tape);
  if (!tape.converged) {
    status->Set(kNotConverged, "the unrolled replay of the local solve stopped at its iteration cap (500)");
  }
  const int steps = mode.kind == GradientMode::kUnrolled ? tape.steps() : mode.steps;
  VectorPoolUnrolledVjp(p, tape, steps, v, dx, dw);
}

}  // namespace ddn::pooling
