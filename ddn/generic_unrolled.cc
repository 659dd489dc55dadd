// The generic engine's unrolled and truncated:K gradient modes; see generic_unrolled.h for the method.
#include "ddn/generic_unrolled.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/QR>
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
constexpr double kEps = std::numeric_limits<double>::epsilon();
// An inequality's new multiplier pulls the wrong way when its force λ_k‖∇g_k‖ is below −kDropForce times the
// gradient's scale (rounding level; the engine's rule).
constexpr double kDropForce = 1e3 * kEps;
// A replay stops after a step below this, relative to y's scale; or after three steps that stall below kStallStep.
constexpr double kStopStep = 1e-12;
constexpr double kStallStep = 1e-10;
// An eigenvalue of the KKT matrix below this, relative to the largest in magnitude, counts as zero.
constexpr double kInertiaTolerance = 1e-12;
// The replay must end this close to the forward's answer (relative to y's scale).
constexpr double kEndGap = 1e-7;

double MaxAbs(const VectorXd& v) {
  return v.size() ? v.cwiseAbs().maxCoeff() : 0.0;
}

// The derivatives of L_W = f + Σ_{i∈W} λ_i c_i at (y, λ).
struct Point {
  double f = 0;
  VectorXd g;                      // ∇_y f
  VectorXd c;                      // every constraint (p + q)
  VectorXd norm1, norm2;           // ‖∂c_i/∂y‖₁ and ‖∂c_i/∂y‖₂ of every constraint
  MatrixXd H;                      // H_L = ∇²_yy L_W, dense symmetric (when asked)
  MatrixXd A;                      // the rows W of ∂c/∂y (|W| × m)
  std::vector<SparseEntry> mixed;  // ∇²_yx L_W (row = y, col = x), when x is asked
  std::vector<SparseEntry> cx;     // ∂c_W/∂x (row = position in W, col = x), when x is asked
};

void AddLower(const std::vector<SparseEntry>& lower, MatrixXd* H) {
  for (const SparseEntry& e : lower) {
    (*H)(e.row, e.col) += e.value;
    if (e.row != e.col) (*H)(e.col, e.row) += e.value;
  }
}

void Evaluate(const DerivativeOracle& oracle, const VectorXd& y, const VectorXd& lambda, const std::vector<int>& W,
              bool hessian, bool with_x, Point* pt) {
  const int m = oracle.num_variables(), nc = oracle.num_equalities() + oracle.num_inequalities();
  const int w = static_cast<int>(W.size());
  std::vector<SparseEntry> lower;
  pt->g.resize(m);
  pt->mixed.clear();
  pt->cx.clear();
  pt->f =
      oracle.Derivatives(y.data(), pt->g.data(), hessian ? &lower : nullptr, with_x ? &pt->mixed : nullptr, nullptr);
  if (hessian) {
    pt->H.setZero(m, m);
    AddLower(lower, &pt->H);
  }
  pt->c.resize(nc);
  pt->norm1.setZero(nc);
  pt->norm2.setZero(nc);
  pt->A.setZero(w, m);
  if (nc > 0) {
    std::vector<SparseEntry> jy, jx;
    oracle.ConstraintJacobian(y.data(), pt->c.data(), &jy, with_x ? &jx : nullptr);
    std::vector<int> position(nc, -1);
    for (int j = 0; j < w; ++j) position[W[j]] = j;
    for (const SparseEntry& e : jy) {
      pt->norm1[e.row] += std::abs(e.value);
      pt->norm2[e.row] += e.value * e.value;
      if (position[e.row] >= 0) pt->A(position[e.row], e.col) += e.value;
    }
    pt->norm2 = pt->norm2.cwiseSqrt();
    for (const SparseEntry& e : jx) {
      if (position[e.row] >= 0) pt->cx.push_back({position[e.row], e.col, e.value});
    }
    VectorXd weights = VectorXd::Zero(nc);
    bool any = false;
    for (int i : W) {
      weights[i] = lambda[i];
      any = any || lambda[i] != 0;
    }
    if (any && (with_x || (hessian && !oracle.ConstraintsAffineInY()))) {
      std::vector<SparseEntry> curvature;
      oracle.ConstraintCurvature(y.data(), weights.data(), &curvature, with_x ? &pt->mixed : nullptr);
      if (hessian) AddLower(curvature, &pt->H);
    }
  }
  if (!std::isfinite(pt->f) || !pt->g.allFinite() || !pt->c.allFinite() || (hessian && !pt->H.allFinite())) {
    throw NumericalFailure(oracle.Name() +
                           ": a non-finite objective, constraint or derivative in the unrolled "
                           "Newton replay");
  }
}

// K = [H_L + τI, A_Wᵀ; A_W, 0].
MatrixXd KktMatrix(const Point& pt, double tau) {
  const int m = static_cast<int>(pt.H.rows()), w = static_cast<int>(pt.A.rows());
  MatrixXd K = MatrixXd::Zero(m + w, m + w);
  K.topLeftCorner(m, m) = pt.H;
  K.topLeftCorner(m, m).diagonal().array() += tau;
  K.topRightCorner(m, w) = pt.A.transpose();
  K.bottomLeftCorner(w, m) = pt.A;
  return K;
}

// F = [∇f + A_Wᵀλ_W; c_W] = ∇_(y,λ_W) L_W.
VectorXd KktResidual(const Point& pt, const VectorXd& lambda, const std::vector<int>& W) {
  const int m = static_cast<int>(pt.g.size()), w = static_cast<int>(W.size());
  VectorXd F(m + w), lw(w);
  for (int j = 0; j < w; ++j) {
    lw[j] = lambda[W[j]];
    F[m + j] = pt.c[W[j]];
  }
  F.head(m) = pt.g + pt.A.transpose() * lw;
  return F;
}

// Solves with K: Cholesky without constraints (K = H + τI is positive definite on the tape's branch), LU with.
class KktSolver {
 public:
  KktSolver(const MatrixXd& K, int w) : w_(w) {
    if (w == 0) {
      llt_.compute(K);
    } else {
      lu_.compute(K);
    }
  }
  VectorXd Solve(const VectorXd& b) const { return w_ == 0 ? VectorXd(llt_.solve(b)) : VectorXd(lu_.solve(b)); }

 private:
  int w_;
  Eigen::LLT<MatrixXd> llt_;
  Eigen::PartialPivLU<MatrixXd> lu_;
};

// The smallest τ of 0, 1e-8·max|diag H_L| × 8^k for which K has the inertia of a strict minimum on the tangent
// space of the working set: H + τI positive definite (Cholesky) without constraints, (m positive, |W| negative, no
// zero eigenvalue) with (a Schur complement when H + τI is positive definite, else eigenvalues). False if none of
// 60 does, or (allow_shift false) τ = 0 does not.
bool ChooseShift(const Point& pt, bool allow_shift, double* tau) {
  const int m = static_cast<int>(pt.H.rows()), w = static_cast<int>(pt.A.rows());
  const double dmax = std::max(m ? pt.H.diagonal().cwiseAbs().maxCoeff() : 0.0, std::numeric_limits<double>::min());
  double t = 0;
  for (int attempt = 0; attempt < 60; ++attempt) {
    const MatrixXd K = KktMatrix(pt, t);
    bool ok;
    if (w == 0) {
      const Eigen::LLT<MatrixXd> llt(K);
      ok = llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > 1e-10 * std::sqrt(dmax + t);
    } else if (const Eigen::LLT<MatrixXd> llt(K.topLeftCorner(m, m));
               llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > 1e-10 * std::sqrt(dmax + t)) {
      // H + τI positive definite: inertia(K) = (m, 0) + inertia(−S), S = A (H + τI)⁻¹ Aᵀ (Haynsworth), so K has
      // the right inertia iff S is positive definite (A of full row rank) — a Cholesky of w × w, not m + w
      // eigenvalues.
      const MatrixXd S = pt.A * llt.solve(pt.A.transpose());
      const Eigen::LLT<MatrixXd> schur(S);
      const double smax = std::max(S.diagonal().cwiseAbs().maxCoeff(), std::numeric_limits<double>::min());
      // Pivots (squared diagonal of the factor) above kInertiaTolerance relative, as the eigenvalues below.
      ok = schur.info() == Eigen::Success &&
           schur.matrixLLT().diagonal().minCoeff() > std::sqrt(kInertiaTolerance * smax);
    } else {
      const Eigen::SelfAdjointEigenSolver<MatrixXd> eigen(K, Eigen::EigenvaluesOnly);
      const VectorXd& ev = eigen.eigenvalues();
      const double tol = kInertiaTolerance * ev.cwiseAbs().maxCoeff();
      const int positive = static_cast<int>((ev.array() > tol).count());
      const int negative = static_cast<int>((ev.array() < -tol).count());
      ok = positive == m && negative == w;
    }
    if (ok) {
      *tau = t;
      return true;
    }
    if (!allow_shift) return false;
    t = t == 0 ? 1e-8 * dmax : t * 8;
  }
  return false;
}

// min ‖∇f + A_Wᵀλ‖ (the minimum-norm solution), as a p + q vector zero outside W.
VectorXd LeastSquaresMultipliers(const Point& pt, const std::vector<int>& W, int nc) {
  VectorXd lambda = VectorXd::Zero(nc);
  if (W.empty()) return lambda;
  const Eigen::CompleteOrthogonalDecomposition<MatrixXd> cod(pt.A.transpose());
  const VectorXd l = cod.solve(-pt.g);
  for (size_t j = 0; j < W.size(); ++j) lambda[W[j]] = l[j];
  return lambda;
}

// The largest force in ∇L: the scale multipliers are judged against.
double ForceScale(const Point& pt, const VectorXd& lambda) {
  double s = MaxAbs(pt.g);
  for (int i = 0; i < static_cast<int>(lambda.size()); ++i) s = std::max(s, std::abs(lambda[i]) * pt.norm2[i]);
  return s;
}

// The active set at the answer as the implicit backward identifies it: every equality and the inequalities with
// |g_k| ≤ active_tolerance·‖∇g_k‖₁·‖y‖∞, then those whose least-squares multiplier pulls the wrong way dropped.
std::vector<int> ActiveSetAt(const DerivativeOracle& oracle, const GenericSolverOptions& options, const VectorXd& y) {
  const int p = oracle.num_equalities(), nc = p + oracle.num_inequalities();
  Point pt;
  const VectorXd none = VectorXd::Zero(nc);
  Evaluate(oracle, y, none, {}, false, false, &pt);
  const double ymax = MaxAbs(y);
  std::vector<int> W;
  for (int i = 0; i < nc; ++i) {
    if (i < p || std::abs(pt.c[i]) <= options.active_tolerance * pt.norm1[i] * ymax) W.push_back(i);
  }
  for (int round = 0; round <= nc; ++round) {
    Evaluate(oracle, y, none, W, false, false, &pt);
    const VectorXd lambda = LeastSquaresMultipliers(pt, W, nc);
    double worst_force = -kDropForce * ForceScale(pt, lambda);
    int worst = -1;
    for (int i : W) {
      if (i >= p && lambda[i] * pt.norm2[i] < worst_force) {
        worst_force = lambda[i] * pt.norm2[i];
        worst = i;
      }
    }
    if (worst < 0) break;
    W.erase(std::find(W.begin(), W.end(), worst));
  }
  return W;
}

// One replay (generic_unrolled.h) from (y0, λ0) on the working set W0; fills the tape. Returns false when the
// active-set replay gives up; the others throw NumericalFailure instead.
bool RunReplay(const DerivativeOracle& oracle, const GenericSolverOptions& options, GenericNewtonTape::Replay kind,
               const VectorXd& y0, const std::vector<int>& W0, const VectorXd& lambda0, double scale0,
               GenericNewtonTape* tape) {
  const bool pdas = kind == GenericNewtonTape::kActiveSet;
  const int m = oracle.num_variables(), p = oracle.num_equalities(), q = oracle.num_inequalities(), nc = p + q;
  *tape = GenericNewtonTape{};
  tape->replay = kind;
  tape->m = m;
  tape->nc = nc;
  VectorXd y = y0, lambda = lambda0, trial(m), c_trial(nc);
  std::vector<int> W = W0;
  tape->iterates.assign(y.data(), y.data() + m);
  tape->multipliers.assign(lambda.data(), lambda.data() + nc);
  std::vector<std::vector<int>> seen;
  int changes = 0, stalls = 0;
  double best = std::numeric_limits<double>::infinity();
  Point pt;
  for (int it = 0; it < options.max_newton_iterations; ++it) {
    Evaluate(oracle, y, lambda, W, true, false, &pt);
    const int w = static_cast<int>(W.size());
    double tau = 0;
    if (!ChooseShift(pt, /*allow_shift=*/!pdas, &tau)) {
      if (pdas) return false;
      throw NumericalFailure(oracle.Name() +
                             ": no inertia correction gives the unrolled replay's KKT matrix the "
                             "inertia of a minimum (dependent active constraint gradients?); use implicit");
    }
    const KktSolver kkt(KktMatrix(pt, tau), w);
    const VectorXd s = kkt.Solve(KktResidual(pt, lambda, W));
    if (!s.allFinite()) {
      if (pdas) return false;
      throw NumericalFailure(oracle.Name() + ": a non-finite Newton step in the unrolled replay; use implicit");
    }
    const VectorXd d = -s.head(m);
    VectorXd lplus(w);
    for (int j = 0; j < w; ++j) lplus[j] = lambda[W[j]] - s[m + j];
    const double scale = std::max(MaxAbs(y), scale0);
    const double step = MaxAbs(d) / scale;
    if (pdas && !(step <= 1e3)) return false;  // a wild step: the engine leaves it to its globalised method
    double alpha = 1;
    if (!pdas && !(tau == 0 && step <= 1e-6)) {
      // Armijo on the ℓ₁ merit f + μ Σ_W |c_i| (f alone without constraints); Jd = −c_W makes its slope
      // ∇fᵀd − μ Σ_W |c_i|.
      double mu = 0, violation = 0;
      for (int j = 0; j < w; ++j) {
        mu = std::max(mu, 2 * std::abs(lplus[j]));
        violation += std::abs(pt.c[W[j]]);
      }
      const double merit = pt.f + mu * violation, slope = pt.g.dot(d) - mu * violation;
      if (slope < 0) {
        for (int k = 0; k < 60; ++k, alpha *= 0.5) {
          trial = y + alpha * d;
          double mt = oracle.Value(trial.data());
          if (w > 0) {
            oracle.Constraints(trial.data(), c_trial.data());
            for (int j = 0; j < w; ++j) mt += mu * std::abs(c_trial[W[j]]);
          }
          if (std::isfinite(mt) && mt <= merit + 1e-4 * alpha * slope) break;
        }
      }
    }
    // The multipliers kept and the next working set (the engine's primal-dual active-set rule).
    std::vector<char> keep(w, 1);
    std::vector<int> next;
    if (pdas) {
      const double force = ForceScale(pt, lambda);
      for (int j = 0; j < w; ++j) {
        const int i = W[j];
        if (i >= p && lplus[j] * pt.norm2[i] < -kDropForce * force) {
          keep[j] = 0;  // leaves the working set
          continue;
        }
        if (i >= p && lplus[j] < 0) keep[j] = 0;  // stays, its multiplier cleared
        next.push_back(i);
      }
    } else {
      next = W;
    }
    const VectorXd y_new = y + alpha * d;
    VectorXd lambda_new = VectorXd::Zero(nc);
    for (int j = 0; j < w; ++j) {
      if (keep[j]) lambda_new[W[j]] = lambda[W[j]] + alpha * (lplus[j] - lambda[W[j]]);
    }
    if (pdas) {
      oracle.Constraints(y_new.data(), c_trial.data());
      if (!c_trial.allFinite()) return false;
      const double ymax = std::max(MaxAbs(y_new), scale);
      for (int k = p; k < nc; ++k) {
        if (std::binary_search(W.begin(), W.end(), k)) continue;
        if (c_trial[k] > options.active_tolerance * pt.norm1[k] * ymax) next.push_back(k);
      }
      std::sort(next.begin(), next.end());
    }
    tape->alpha.push_back(alpha);
    tape->tau.push_back(tau);
    tape->working.push_back(W);
    tape->keep.push_back(keep);
    tape->iterates.insert(tape->iterates.end(), y_new.data(), y_new.data() + m);
    tape->multipliers.insert(tape->multipliers.end(), lambda_new.data(), lambda_new.data() + nc);
    y = y_new;
    lambda = lambda_new;
    if (next != W) {
      if (std::find(seen.begin(), seen.end(), next) != seen.end() || ++changes > 2 * q + 20) return false;
      seen.push_back(W);
      W = next;
      best = std::numeric_limits<double>::infinity();
      stalls = 0;
      continue;
    }
    if (tau == 0 && step <= kStopStep) {
      tape->converged = true;
      break;
    }
    if (step < 0.9 * best) {
      best = step;
      stalls = 0;
    } else if (++stalls >= 3 && tau == 0 && step <= kStallStep) {
      tape->converged = true;  // rounding: no more progress to make
      break;
    }
  }
  return true;
}

// ‖y_T − answer‖∞ relative to y's scale.
double EndGap(const GenericNewtonTape& tape, const VectorXd& answer, double scale0) {
  const Eigen::Map<const VectorXd> end(tape.iterates.data() + static_cast<size_t>(tape.steps()) * tape.m, tape.m);
  return MaxAbs(end - answer) / std::max(MaxAbs(answer), scale0);
}

// (∇²_uu L_W w, ∇²_xu L_W w) for u = (y, λ_W), from the point's H_L, A_W, mixed and cx.
void LagrangianRowTimes(const Point& pt, const VectorXd& wv, int n, VectorXd* ru, VectorXd* rx) {
  const int m = static_cast<int>(pt.g.size()), w = static_cast<int>(pt.A.rows());
  ru->resize(m + w);
  ru->head(m) = pt.H * wv.head(m) + pt.A.transpose() * wv.tail(w);
  ru->tail(w) = pt.A * wv.head(m);
  rx->setZero(n);
  for (const SparseEntry& e : pt.mixed) (*rx)[e.col] += e.value * wv[e.row];
  for (const SparseEntry& e : pt.cx) (*rx)[e.col] += e.value * wv[m + e.row];
}

// The same at u + h·dir (dir = (dir_y, dir_λ) over (y, λ_W)).
void LagrangianRowTimesAt(const DerivativeOracle& oracle, const VectorXd& y, const VectorXd& lambda,
                          const std::vector<int>& W, const VectorXd& dir, double h, const VectorXd& wv, VectorXd* ru,
                          VectorXd* rx) {
  const int m = static_cast<int>(y.size());
  VectorXd lh = lambda;
  for (size_t j = 0; j < W.size(); ++j) lh[W[j]] += h * dir[m + j];
  Point pt;
  Evaluate(oracle, y + h * dir.head(m), lh, W, true, true, &pt);
  LagrangianRowTimes(pt, wv, oracle.num_parameters(), ru, rx);
}

}  // namespace

const char* GenericNewtonTape::ReplayName() const {
  switch (replay) {
    case kNewton:
      return "newton";
    case kActiveSet:
      return "active_set";
    case kFixedSet:
      return "fixed_set";
  }
  return "?";
}

int64_t GenericNewtonTape::Bytes() const {
  int64_t bytes = static_cast<int64_t>(sizeof(double)) *
                  static_cast<int64_t>(iterates.size() + multipliers.size() + alpha.size() + tau.size());
  for (size_t t = 0; t < working.size(); ++t) {
    bytes += static_cast<int64_t>(sizeof(int) * working[t].size() + keep[t].size());
  }
  return bytes;
}

void GenericUnrolledCounters::Reset() {
  for (auto& p : problems) p = 0;
  steps = 0;
  max_tape_bytes = 0;
  max_kkt_bytes = 0;
}

GenericUnrolledCounters& GenericUnrolledTotals() {
  static GenericUnrolledCounters totals;
  return totals;
}

namespace {
void RaiseTo(std::atomic<int64_t>* a, int64_t v) {
  int64_t now = a->load(std::memory_order_relaxed);
  while (v > now && !a->compare_exchange_weak(now, v, std::memory_order_relaxed)) {
  }
}
}  // namespace

void RecordGenericNewton(const DerivativeOracle& oracle, const GenericSolverOptions& options, const double* y0,
                         const double* y_answer, GenericNewtonTape* tape) {
  const int m = oracle.num_variables(), p = oracle.num_equalities(), nc = p + oracle.num_inequalities();
  if (m > kMaxDenseVariables) {
    throw InvalidInput(oracle.Name() +
                       ": the unrolled Newton replay factorises the Hessian densely and takes at "
                       "most " +
                       std::to_string(kMaxDenseVariables) + " variables, got " + std::to_string(m) + "; use implicit");
  }
  const VectorXd start = Eigen::Map<const VectorXd>(y0, m);
  const VectorXd answer = Eigen::Map<const VectorXd>(y_answer, m);
  const double scale0 = std::max({MaxAbs(start), MaxAbs(answer), std::numeric_limits<double>::min()});
  if (nc == 0) {
    RunReplay(oracle, options, GenericNewtonTape::kNewton, start, {}, VectorXd(), scale0, tape);
  } else {
    // The active set at the answer, as the implicit backward identifies it.
    const std::vector<int> W_answer = ActiveSetAt(oracle, options, answer);
    // The engine's first phase: Newton–KKT with active-set updates from the constraints active or violated at y₀.
    // It must end at the answer on the answer's active set (a point on the boundary, whose inequality has a zero
    // multiplier, may end with it inactive: the other one-sided derivative).
    bool done = false;
    try {
      Point pt;
      const VectorXd none = VectorXd::Zero(nc);
      Evaluate(oracle, start, none, {}, false, false, &pt);
      const double ymax = MaxAbs(start);
      std::vector<int> W0;
      for (int i = 0; i < nc; ++i) {
        if (i < p || std::abs(pt.c[i]) <= 1e-8 * pt.norm1[i] * ymax || pt.c[i] > 0) W0.push_back(i);
      }
      Evaluate(oracle, start, none, W0, false, false, &pt);
      VectorXd lambda0 = LeastSquaresMultipliers(pt, W0, nc);
      for (int i = p; i < nc; ++i) lambda0[i] = std::max(0.0, lambda0[i]);
      done = RunReplay(oracle, options, GenericNewtonTape::kActiveSet, start, W0, lambda0, scale0, tape) &&
             EndGap(*tape, answer, scale0) <= kEndGap && tape->steps() > 0 && tape->working.back() == W_answer;
    } catch (const NumericalFailure&) {
      done = false;  // a non-finite value on the way: the engine would leave it to its globalised method too
    }
    if (!done) {
      // The active set at the answer, held fixed, with inertia correction and a line search.
      const std::vector<int>& W = W_answer;
      Point pt;
      Evaluate(oracle, start, VectorXd::Zero(nc), W, false, false, &pt);
      RunReplay(oracle, options, GenericNewtonTape::kFixedSet, start, W, LeastSquaresMultipliers(pt, W, nc), scale0,
                tape);
    }
  }
  const double gap = EndGap(*tape, answer, scale0);
  if (!(gap <= kEndGap)) {
    throw NumericalFailure(oracle.Name() + ": the unrolled Newton" + (nc ? "-KKT" : "") +
                           " replay from the initial guess ended " + FormatDouble(gap) +
                           " (relative) away from the forward's answer after " + std::to_string(tape->steps()) +
                           " steps; use implicit");
  }
}

void ReplayGenericNewtonSteps(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int first, double* y_out) {
  const int m = tape.m, nc = tape.nc;
  VectorXd y = Eigen::Map<const VectorXd>(tape.iterates.data() + static_cast<size_t>(first) * m, m);
  VectorXd lambda = Eigen::Map<const VectorXd>(tape.multipliers.data() + static_cast<size_t>(first) * nc, nc);
  Point pt;
  for (int t = first; t < tape.steps(); ++t) {
    const std::vector<int>& W = tape.working[t];
    const int w = static_cast<int>(W.size());
    Evaluate(oracle, y, lambda, W, true, false, &pt);
    const KktSolver kkt(KktMatrix(pt, tape.tau[t]), w);
    const VectorXd s = kkt.Solve(KktResidual(pt, lambda, W));
    y -= tape.alpha[t] * s.head(m);
    VectorXd lambda_new = VectorXd::Zero(nc);
    for (int j = 0; j < w; ++j) {
      if (tape.keep[t][j]) lambda_new[W[j]] = lambda[W[j]] - tape.alpha[t] * s[m + j];
    }
    lambda = lambda_new;
  }
  std::copy(y.data(), y.data() + m, y_out);
}

void GenericUnrolledVjp(const DerivativeOracle& oracle, const GenericNewtonTape& tape, int steps, const double* v,
                        double* dx) {
  const int m = tape.m, nc = tape.nc, n = oracle.num_parameters();
  const int T = tape.steps(), K = std::min(steps, T);
  VectorXd ybar = Eigen::Map<const VectorXd>(v, m), lbar = VectorXd::Zero(nc), xbar = VectorXd::Zero(n);
  VectorXd ru, rx, rp, rpx, rm, rmx;
  Point pt;
  // The differences' step: y's scale over the replay (a long step s must not push them far from y).
  const double y_scale =
      std::max(MaxAbs(Eigen::Map<const VectorXd>(tape.iterates.data(), m)),
               MaxAbs(Eigen::Map<const VectorXd>(tape.iterates.data() + static_cast<size_t>(T) * m, m)));
  for (int t = T - 1; t >= T - K; --t) {
    const VectorXd y = Eigen::Map<const VectorXd>(tape.iterates.data() + static_cast<size_t>(t) * m, m);
    const VectorXd lambda = Eigen::Map<const VectorXd>(tape.multipliers.data() + static_cast<size_t>(t) * nc, nc);
    const std::vector<int>& W = tape.working[t];
    const int w = static_cast<int>(W.size());
    Evaluate(oracle, y, lambda, W, true, true, &pt);
    const KktSolver kkt(KktMatrix(pt, tape.tau[t]), w);
    // The cotangent of u_{t+1} = (y, λ_W) (a cleared multiplier does not depend on u_t).
    VectorXd b(m + w);
    b.head(m) = ybar;
    for (int j = 0; j < w; ++j) b[m + j] = tape.keep[t][j] ? lbar[W[j]] : 0.0;
    const VectorXd wv = kkt.Solve(b), s = kkt.Solve(KktResidual(pt, lambda, W));
    const double alpha = tape.alpha[t];
    // −α (∇²_uu L w, ∇²_xu L w)
    LagrangianRowTimes(pt, wv, n, &ru, &rx);
    VectorXd ubar = b - alpha * ru;
    xbar -= alpha * rx;
    // +α T(w, s): the derivative of those rows along s.
    const double snorm = MaxAbs(s.head(m));
    if (snorm > 0) {
      // Richardson-extrapolated central differences along s/‖s_y‖∞.
      const VectorXd dir = s / snorm;
      const double delta = 2e-4 * (y_scale > 0 ? std::max(MaxAbs(y), y_scale) : snorm);
      VectorXd du[2], dxx[2];
      for (int level = 0; level < 2; ++level) {
        const double h = level == 0 ? delta : 0.5 * delta;
        LagrangianRowTimesAt(oracle, y, lambda, W, dir, h, wv, &rp, &rpx);
        LagrangianRowTimesAt(oracle, y, lambda, W, dir, -h, wv, &rm, &rmx);
        du[level] = (rp - rm) / (2 * h);
        dxx[level] = (rpx - rmx) / (2 * h);
      }
      ubar += (alpha * snorm / 3) * (4 * du[1] - du[0]);
      xbar += (alpha * snorm / 3) * (4 * dxx[1] - dxx[0]);
    } else if (w > 0 && MaxAbs(s.tail(w)) > 0) {
      // A step in λ only: the rows are affine in λ, so the difference is exact.
      LagrangianRowTimesAt(oracle, y, lambda, W, s, 1.0, wv, &rp, &rpx);
      ubar += alpha * (rp - ru);
      xbar += alpha * (rpx - rx);
    }
    ybar = ubar.head(m);
    lbar.setZero();
    for (int j = 0; j < w; ++j) lbar[W[j]] = ubar[m + j];
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
  GenericUnrolledCounters& totals = GenericUnrolledTotals();
  totals.problems[tape.replay].fetch_add(1, std::memory_order_relaxed);
  totals.steps.fetch_add(tape.steps(), std::memory_order_relaxed);
  RaiseTo(&totals.max_tape_bytes, tape.Bytes());
  size_t w = 0;
  for (const std::vector<int>& W : tape.working) w = std::max(w, W.size());
  const int64_t rows = tape.m + static_cast<int64_t>(w);
  RaiseTo(&totals.max_kkt_bytes, rows * rows * static_cast<int64_t>(sizeof(double)));
}

}  // namespace ddn
