#include "nodes/optim/deq_solver.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "ddn/anderson.h"
#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::optim {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

constexpr double kRhoScale = kAndersonRhoScale;
constexpr int kStagnation = 30;

VectorXd Cell(const MatrixXd& W, const VectorXd& x, const VectorXd& z) {
  return (W * z + x).array().tanh().matrix();
}

// Why the iteration may have failed, for messages.
std::string Contraction(const MatrixXd& W) {
  const double norm = SpectralNormEstimate(W);
  return "||W||_2 ~ " + FormatDouble(norm) +
         (norm < 1 ? ": f is a contraction, more iterations would converge" : " >= 1: f may not be a contraction");
}

}  // namespace

void DeqOptions::Validate() const {
  if (max_iterations < 1)
    throw InvalidInput("deq_tanh: max_iterations must be >= 1, got " + std::to_string(max_iterations));
  if (!(tolerance > 0 && tolerance < 1)) {
    throw InvalidInput("deq_tanh: tolerance must be in (0, 1), got " + FormatDouble(tolerance));
  }
  if (window < 1 || window > 100)
    throw InvalidInput("deq_tanh: window must be in [1, 100], got " + std::to_string(window));
  if (!(beta > 0 && beta <= 1)) throw InvalidInput("deq_tanh: beta must be in (0, 1], got " + FormatDouble(beta));
}

size_t DeqTape::Bytes() const {
  size_t doubles = 0;
  for (const auto& v : z) doubles += v.size();
  for (const auto& v : f) doubles += v.size();
  for (const auto& s : steps) doubles += s.alpha.size();
  return doubles * sizeof(double);
}

DeqResult SolveDeq(const MatrixXd& W, const VectorXd& x, const DeqOptions& o, DeqTape* tape) {
  const int N = static_cast<int>(x.size());
  std::vector<VectorXd> zs, fs;  // this run's iterates (kept for Anderson windows and the tape)
  std::vector<double> res;
  int best = 0;
  auto push = [&](const VectorXd& z) {
    zs.push_back(z);
    fs.push_back(Cell(W, x, z));
    res.push_back((fs.back() - z).cwiseAbs().maxCoeff());
    const int k = static_cast<int>(zs.size()) - 1;
    if (res[k] < res[best]) best = k;
    return res[k] <= o.tolerance;
  };
  auto record = [&](const DeqTapeStep& st) {
    if (tape) tape->steps.push_back(st);
  };
  DeqResult result;
  auto finish = [&](const char* solver) {
    const int k = static_cast<int>(zs.size()) - 1;
    result.z = zs[k];
    result.residual = res[k];
    result.iterations = k;
    result.solver = solver;
    if (tape) {
      tape->z = zs;
      tape->f = fs;
    }
    return result;
  };
  auto restart_from_best = [&]() {
    DeqTapeStep st;
    st.kind = DeqTapeStep::kCopy;
    st.from = best;
    record(st);
    return push(VectorXd(zs[best]));
  };

  auto Fail = [&]() {
    throw NumericalFailure(
        "deq_tanh: no fixed point found: the best residual ||tanh(Wz + x) - z||_inf is " + FormatDouble(res[best]) +
        " > tolerance " + FormatDouble(o.tolerance) + " after " + std::to_string(zs.size() - 1) + " iterations" +
        (o.fallbacks ? " of Anderson, Broyden and damped Picard" : " of Anderson") + " (" + Contraction(W) + ")");
  };
  if (push(VectorXd::Zero(N))) return finish("anderson");
  // 1. Anderson acceleration.
  {
    int stage_start = 0, last_best = 0;
    for (int it = 0; it < o.max_iterations; ++it) {
      const int k = static_cast<int>(zs.size()) - 1;
      const int first = std::max(stage_start, k - o.window + 1);
      const int c = k - first + 1;
      MatrixXd Gm(N, c);
      for (int j = 0; j < c; ++j) Gm.col(j) = fs[first + j] - zs[first + j];
      DeqTapeStep st;
      st.kind = DeqTapeStep::kAnderson;
      st.first = first;
      st.beta = o.beta;
      st.rho_scale = kRhoScale;
      st.alpha = AndersonWeights(Gm, kRhoScale);
      VectorXd next = VectorXd::Zero(N);
      for (int j = 0; j < c; ++j) next += st.alpha[j] * ((1 - o.beta) * zs[first + j] + o.beta * fs[first + j]);
      record(st);
      if (push(next)) return finish("anderson");
      const int kk = static_cast<int>(zs.size()) - 1;
      if (best == kk) last_best = it;
      if (!std::isfinite(res[kk]) || res[kk] > 1e6 * std::max(res[best], 1e-300) + 1.0 || it - last_best > kStagnation)
        break;
    }
  }
  if (!o.fallbacks) {
    if (!o.throw_on_failure) return finish("anderson");
    Fail();
  }
  // 2. Broyden's method from the best iterate (not differentiated by the unrolled backward).
  if (restart_from_best()) return finish("broyden");
  {
    MatrixXd B = -MatrixXd::Identity(N, N);
    int last_best = 0;
    for (int it = 0; it < o.max_iterations; ++it) {
      const int k = static_cast<int>(zs.size()) - 1;
      const VectorXd g = fs[k] - zs[k];
      const VectorXd dz = -B * g;
      DeqTapeStep st;
      st.kind = DeqTapeStep::kBroyden;
      record(st);
      if (push(VectorXd(zs[k] + dz))) return finish("broyden");
      const int kk = k + 1;
      if (!std::isfinite(res[kk])) break;
      if (best == kk) last_best = it;
      if (it - last_best > kStagnation) break;
      const VectorXd dg = (fs[kk] - zs[kk]) - g;
      const VectorXd Bdg = B * dg;
      const double denom = dz.dot(Bdg);
      if (std::abs(denom) > 1e-300) B += (dz - Bdg) * (dz.transpose() * B) / denom;
    }
  }
  // 3. Damped Picard from the best iterate.
  if (restart_from_best()) return finish("picard");
  for (int it = 0; it < o.max_iterations; ++it) {
    const int k = static_cast<int>(zs.size()) - 1;
    DeqTapeStep st;
    st.kind = DeqTapeStep::kPicard;
    st.beta = 0.5;
    record(st);
    if (push(VectorXd(0.5 * zs[k] + 0.5 * fs[k]))) return finish("picard");
    if (!std::isfinite(res.back())) break;
  }
  if (!o.throw_on_failure) return finish("picard");
  Fail();
  return result;
}

double SpectralNormEstimate(const MatrixXd& W) {
  const double bound = std::sqrt(W.cwiseAbs().colwise().sum().maxCoeff() * W.cwiseAbs().rowwise().sum().maxCoeff());
  if (bound < 1.0 || W.size() == 0) return bound;
  // Power iteration on WᵀW from a fixed start.
  VectorXd u = VectorXd::Ones(W.cols()) / std::sqrt(static_cast<double>(W.cols()));
  double sigma = 0;
  for (int it = 0; it < 100; ++it) {
    const VectorXd w = W.transpose() * (W * u);
    const double norm = w.norm();
    if (!(norm > 0)) return 0.0;
    const double next = std::sqrt(norm);
    u = w / norm;
    if (std::abs(next - sigma) <= 1e-10 * next) return next;
    sigma = next;
  }
  return sigma;
}

void DeqImplicitVjp(const MatrixXd& W, const VectorXd& x, const VectorXd& z, const VectorXd& v, const DeqOptions& o,
                    VectorXd* xbar, MatrixXd* Wbar, ProblemStatus* status) {
  const int N = static_cast<int>(z.size());
  const VectorXd f = Cell(W, x, z);
  const VectorXd D = (1.0 - f.array().square()).matrix();
  VectorXd u;
  const bool direct =
      o.backward_solver == DeqOptions::kDirect || (o.backward_solver == DeqOptions::kAuto && N <= o.direct_limit);
  if (direct) {
    // (I − J)ᵀ = I − Wᵀ D.
    MatrixXd M = -W.transpose() * D.asDiagonal();
    M.diagonal().array() += 1.0;
    Eigen::PartialPivLU<MatrixXd> lu(M);
    if (lu.rcond() > 1e-12) {
      u = lu.solve(v);
    } else {
      Eigen::CompleteOrthogonalDecomposition<MatrixXd> cod;
      cod.setThreshold(1e-10);
      cod.compute(M);
      u = cod.solve(v);
      if (status) status->Set(kNonRegular, "I - J is singular at the fixed point: minimum-norm gradient");
    }
  } else {
    // Anderson acceleration on u ← v + Wᵀ(D∘u).
    std::vector<VectorXd> us{VectorXd(v)}, gs;
    double best = std::numeric_limits<double>::infinity();
    VectorXd best_u = v;
    const double scale = 1.0 + v.cwiseAbs().maxCoeff();
    for (int it = 0; it < 10 * o.max_iterations; ++it) {
      const VectorXd& cur = us.back();
      const VectorXd g = v + W.transpose() * D.cwiseProduct(cur) - cur;
      const double r = g.cwiseAbs().maxCoeff();
      if (r < best) best = r, best_u = cur;
      if (r <= 1e-14 * scale) break;
      gs.push_back(g);
      const int k = static_cast<int>(gs.size()) - 1;
      const int first = std::max(0, k - o.window + 1);
      MatrixXd Gm(N, k - first + 1);
      for (int j = first; j <= k; ++j) Gm.col(j - first) = gs[j];
      const VectorXd alpha = AndersonWeights(Gm, kRhoScale);
      VectorXd next = VectorXd::Zero(N);
      for (int j = first; j <= k; ++j) next += alpha[j - first] * (us[j] + gs[j]);
      us.push_back(next);
    }
    if (!(best <= 1e-10 * scale)) {
      throw NumericalFailure("deq_tanh backward: the iterative solve of (I - J)^T u = v did not converge (residual " +
                             FormatDouble(best) + "); the spectral radius of J may be >= 1");
    }
    u = best_u;
  }
  *xbar = D.cwiseProduct(u);
  *Wbar = *xbar * z.transpose();
}

void DeqUnrolledVjp(const MatrixXd& W, const DeqTape& tape, int steps, const VectorXd& v, VectorXd* xbar,
                    MatrixXd* Wbar) {
  const int N = static_cast<int>(v.size());
  const int T = static_cast<int>(tape.steps.size());
  const int K = std::min(std::max(steps, 0), T);
  std::vector<VectorXd> zb(T + 1, VectorXd::Zero(N)), fb(T + 1, VectorXd::Zero(N));
  zb[T] = v;
  *xbar = VectorXd::Zero(N);
  *Wbar = MatrixXd::Zero(N, N);
  for (int k = T - 1; k >= T - K; --k) {
    const DeqTapeStep& st = tape.steps[k];
    const VectorXd& out = zb[k + 1];
    switch (st.kind) {
      case DeqTapeStep::kAnderson: {
        const int c = static_cast<int>(st.alpha.size());
        VectorXd alpha_bar(c);
        for (int j = 0; j < c; ++j) {
          const int i = st.first + j;
          alpha_bar[j] = out.dot((1 - st.beta) * tape.z[i] + st.beta * tape.f[i]);
          zb[i] += st.alpha[j] * (1 - st.beta) * out;
          fb[i] += st.alpha[j] * st.beta * out;
        }
        MatrixXd Gm(N, c);
        for (int j = 0; j < c; ++j) Gm.col(j) = tape.f[st.first + j] - tape.z[st.first + j];
        const MatrixXd Gbar = AndersonWeightsAdjoint(Gm, alpha_bar, st.rho_scale);
        for (int j = 0; j < c; ++j) {
          fb[st.first + j] += Gbar.col(j);
          zb[st.first + j] -= Gbar.col(j);
        }
        break;
      }
      case DeqTapeStep::kPicard:
        zb[k] += (1 - st.beta) * out;
        fb[k] += st.beta * out;
        break;
      case DeqTapeStep::kCopy:
        zb[st.from] += out;
        break;
      case DeqTapeStep::kBroyden:
        throw NumericalFailure(
            "deq_tanh: the forward needed the Broyden fallback, whose steps the unrolled backward does not "
            "differentiate; use the implicit backward");
    }
    // f_k is complete: every step that mixes it (k … k + window − 1) has been run back.
    const VectorXd pbar = fb[k].cwiseProduct((1.0 - tape.f[k].array().square()).matrix());
    zb[k].noalias() += W.transpose() * pbar;
    Wbar->noalias() += pbar * tape.z[k].transpose();
    *xbar += pbar;
  }
}

}  // namespace ddn::optim
