// The generic engine's solver: see generic_solver.h for the method, the scale conventions and the flags.
#include "ddn/generic_solver.h"

#include <ceres/gradient_problem.h>
#include <ceres/gradient_problem_solver.h>
#include <ceres/manifold.h>

#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <Eigen/SparseCholesky>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <sstream>

#include "ddn/error.h"
#include "ddn/generic_kkt.h"
#include "ddn/params.h"

namespace ddn {

// ---- options ----------------------------------------------------------------------------------------------
namespace {

struct OptionField {
  const char* name;
  int GenericSolverOptions::*int_field;
  double GenericSolverOptions::*double_field;
};

const std::vector<OptionField>& OptionFields() {
  static const std::vector<OptionField> fields = {
      {"max_newton_iterations", &GenericSolverOptions::max_newton_iterations, nullptr},
      {"max_outer_iterations", &GenericSolverOptions::max_outer_iterations, nullptr},
      {"max_lbfgs_iterations", &GenericSolverOptions::max_lbfgs_iterations, nullptr},
      {"max_escapes", &GenericSolverOptions::max_escapes, nullptr},
      {"converged_residual", nullptr, &GenericSolverOptions::converged_residual},
      {"failure_residual", nullptr, &GenericSolverOptions::failure_residual},
      {"feasibility_tolerance", nullptr, &GenericSolverOptions::feasibility_tolerance},
      {"active_tolerance", nullptr, &GenericSolverOptions::active_tolerance},
      {"degenerate_tolerance", nullptr, &GenericSolverOptions::degenerate_tolerance},
      {"rcond", nullptr, &GenericSolverOptions::rcond},
      {"dense_limit", &GenericSolverOptions::dense_limit, nullptr},
      {"objective_scale", nullptr, &GenericSolverOptions::objective_scale},
      {"constraint_scale", nullptr, &GenericSolverOptions::constraint_scale},
  };
  return fields;
}

std::string KnownKeys() {
  std::string keys;
  for (const auto& f : OptionFields()) keys += (keys.empty() ? "" : ", ") + std::string(f.name);
  return keys;
}

}  // namespace

void GenericSolverOptions::Validate() const {
  // Messages are formatted only on failure (Validate runs for every problem solved).
  auto fail = [](const char* name, const std::string& rule, const std::string& value) {
    throw InvalidInput("solver option '" + std::string(name) + "' must be " + rule + ", got " + value);
  };
  auto in = [](double v, double lo, double hi) { return v >= lo && v <= hi; };
  if (!(max_newton_iterations >= 1 && max_newton_iterations <= 100000))
    fail("max_newton_iterations", "in [1, 100000]", std::to_string(max_newton_iterations));
  if (!(max_outer_iterations >= 1 && max_outer_iterations <= 1000))
    fail("max_outer_iterations", "in [1, 1000]", std::to_string(max_outer_iterations));
  if (!(max_lbfgs_iterations >= 0 && max_lbfgs_iterations <= 1000000))
    fail("max_lbfgs_iterations", "in [0, 1000000]", std::to_string(max_lbfgs_iterations));
  if (!(max_escapes >= 0 && max_escapes <= 10000)) fail("max_escapes", "in [0, 10000]", std::to_string(max_escapes));
  if (!in(converged_residual, 1e-16, 1e-2))
    fail("converged_residual", "in [1e-16, 1e-2]", FormatDouble(converged_residual));
  if (!in(failure_residual, converged_residual, 1.0))
    fail("failure_residual", "in [converged_residual, 1]", FormatDouble(failure_residual));
  if (!in(feasibility_tolerance, 1e-15, 1e-1))
    fail("feasibility_tolerance", "in [1e-15, 0.1]", FormatDouble(feasibility_tolerance));
  if (!in(active_tolerance, 1e-15, 1e-3)) fail("active_tolerance", "in [1e-15, 1e-3]", FormatDouble(active_tolerance));
  if (!in(degenerate_tolerance, 1e-15, 1e-2))
    fail("degenerate_tolerance", "in [1e-15, 1e-2]", FormatDouble(degenerate_tolerance));
  if (!in(rcond, 1e-15, 1e-3)) fail("rcond", "in [1e-15, 1e-3]", FormatDouble(rcond));
  if (!(dense_limit >= 0 && dense_limit <= 20000)) fail("dense_limit", "in [0, 20000]", std::to_string(dense_limit));
  if (!(std::isfinite(objective_scale) && objective_scale > 0))
    fail("objective_scale", "finite and > 0", FormatDouble(objective_scale));
  if (!(std::isfinite(constraint_scale) && constraint_scale != 0))
    fail("constraint_scale", "finite and nonzero", FormatDouble(constraint_scale));
}

void GenericSolverOptions::SetOption(const std::string& key, const std::string& value) {
  for (const auto& f : OptionFields()) {
    if (key != f.name) continue;
    const char* text = value.c_str();
    char* end = nullptr;
    if (f.int_field) {
      errno = 0;
      const long v = std::strtol(text, &end, 10);
      if (value.empty() || *end != '\0' || errno != 0 || v < -(1L << 30) || v > (1L << 30)) {
        throw InvalidInput("solver option '" + key + "' needs an integer, got '" + value.substr(0, 64) + "'");
      }
      this->*(f.int_field) = static_cast<int>(v);
    } else {
      const double v = std::strtod(text, &end);
      if (value.empty() || *end != '\0' || !std::isfinite(v)) {
        throw InvalidInput("solver option '" + key + "' needs a finite number, got '" + value.substr(0, 64) + "'");
      }
      this->*(f.double_field) = v;
    }
    Validate();
    return;
  }
  throw InvalidInput("unknown solver option '" + key.substr(0, 64) + "' (known: " + KnownKeys() + ")");
}

std::vector<std::string> GenericSolverOptions::Describe() const {
  std::vector<std::string> out;
  for (const auto& f : OptionFields()) {
    out.push_back(std::string(f.name) + "=" +
                  (f.int_field ? std::to_string(this->*(f.int_field)) : FormatDouble(this->*(f.double_field))));
  }
  return out;
}

namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using internal::Entries;
using internal::kEps;
using internal::Kkt;
using internal::kRegularisation;
using internal::MaxAbs;
using internal::SpMat;
using internal::SpRow;
// The Newton iterations stop once a step is this small relative to y's scale (a few units of rounding).
constexpr double kStopStep = 1e-14;
// An inequality's multiplier pulls the wrong way (the constraint is dropped from the active set) when its force
// λ_k‖∇g_k‖ is below −kDropForce times the gradient's magnitude: rounding level, not a tolerance (a tolerance
// would keep an active set whose multiplier is wrong by less than it, and its wrong answer).
constexpr double kDropForce = 1e3 * std::numeric_limits<double>::epsilon();

using internal::Tracing;
#define DDN_TRACE(...)                   \
  do {                                   \
    if (Tracing()) {                     \
      std::fprintf(stderr, __VA_ARGS__); \
      std::fprintf(stderr, "\n");        \
    }                                    \
  } while (0)

// ---- the problem, with the scale-test factors applied --------------------------------------------------------
class Problem {
 public:
  Problem(const DerivativeOracle& oracle, const GenericSolverOptions& options)
      : oracle_(oracle),
        options_(options),
        m_(oracle.num_variables()),
        n_(oracle.num_parameters()),
        p_(oracle.num_equalities()),
        q_(oracle.num_inequalities()),
        fs_(options.objective_scale),
        cs_(options.constraint_scale) {
    if (m_ < 1) throw InvalidInput(oracle.Name() + ": the problem has no variables");
    if (p_ < 0 || q_ < 0 || n_ < 0) throw InvalidInput(oracle.Name() + ": negative constraint or parameter count");
  }
  int m() const { return m_; }
  int n() const { return n_; }
  int p() const { return p_; }
  int q() const { return q_; }
  int nc() const { return p_ + q_; }
  const GenericSolverOptions& options() const { return options_; }
  const DerivativeOracle& oracle() const { return oracle_; }
  std::string name() const { return oracle_.Name(); }

  double Value(const VectorXd& y) const { return fs_ * oracle_.Value(y.data()); }
  double Derivatives(const VectorXd& y, VectorXd* g, Entries* H, Entries* B, VectorXd* magnitude) const {
    g->resize(m_);
    if (magnitude) magnitude->setZero(m_);
    if (H) H->clear();
    if (B) B->clear();
    const double f = oracle_.Derivatives(y.data(), g->data(), H, B, magnitude ? magnitude->data() : nullptr);
    if (fs_ != 1.0) {
      *g *= fs_;
      if (magnitude) *magnitude *= fs_;
      if (H)
        for (auto& e : *H) e.value *= fs_;
      if (B)
        for (auto& e : *B) e.value *= fs_;
    }
    return fs_ * f;
  }
  VectorXd Constraints(const VectorXd& y) const {
    VectorXd c(nc());
    if (nc() > 0) oracle_.Constraints(y.data(), c.data());
    return cs_ * c;
  }
  // c and its Jacobian (nc × m, row-major); optionally the Jacobian in x (entries).
  void Jacobian(const VectorXd& y, VectorXd* c, SpRow* A, Entries* Ax) const {
    c->resize(nc());
    Entries e;
    if (Ax) Ax->clear();
    if (nc() > 0) oracle_.ConstraintJacobian(y.data(), c->data(), &e, Ax);
    *c *= cs_;
    A->resize(nc(), m_);
    std::vector<Eigen::Triplet<double>> t;
    t.reserve(e.size());
    for (const auto& x : e) t.emplace_back(x.row, x.col, cs_ * x.value);
    A->setFromTriplets(t.begin(), t.end());
    if (Ax)
      for (auto& x : *Ax) x.value *= cs_;
  }
  // Appends Σ w_i ∇²c_i (y-y lower, and y-x if B).
  void Curvature(const VectorXd& y, const VectorXd& w, Entries* H, Entries* B, bool forward) const {
    if (nc() == 0 || w.cwiseAbs().maxCoeff() == 0) return;
    if (forward && !B && oracle_.ConstraintsAffineInY()) return;
    Entries h, b;
    oracle_.ConstraintCurvature(y.data(), w.data(), &h, B ? &b : nullptr);
    for (auto& e : h) H->push_back({e.row, e.col, cs_ * e.value});
    if (B)
      for (auto& e : b) B->push_back({e.row, e.col, cs_ * e.value});
  }

 private:
  const DerivativeOracle& oracle_;
  const GenericSolverOptions& options_;
  int m_, n_, p_, q_;
  double fs_, cs_;
};

void RequireFinite(const Problem& P, double f, const VectorXd& g, const char* where) {
  if (!std::isfinite(f) || !g.allFinite()) {
    throw NumericalFailure(P.name() + ": the objective or its gradient is not finite " + where);
  }
}

// y-y entries (lower triangle) → Σ_j |H_kj| |y_j| per row.
VectorXd AbsTimes(int m, const Entries& H, const VectorXd& y) {
  VectorXd r = VectorXd::Zero(m);
  for (const auto& e : H) {
    r[e.row] += std::abs(e.value) * std::abs(y[e.col]);
    if (e.row != e.col) r[e.col] += std::abs(e.value) * std::abs(y[e.row]);
  }
  return r;
}

// H v for lower-triangle entries.
VectorXd SymTimes(int m, const Entries& H, const VectorXd& v) {
  VectorXd r = VectorXd::Zero(m);
  for (const auto& e : H) {
    r[e.row] += e.value * v[e.col];
    if (e.row != e.col) r[e.col] += e.value * v[e.row];
  }
  return r;
}

MatrixXd DenseSym(int m, const Entries& H) {
  MatrixXd D = MatrixXd::Zero(m, m);
  for (const auto& e : H) {
    D(e.row, e.col) += e.value;
    if (e.row != e.col) D(e.col, e.row) += e.value;
  }
  return D;
}

double MaxDiag(int m, const Entries& H) {
  double d = 0;
  for (const auto& e : H)
    if (e.row == e.col) d = std::max(d, std::abs(e.value));
  return d;
}

// ---- evaluation at a point -------------------------------------------------------------------------------------
struct Point {
  VectorXd y;
  double f = 0;
  VectorXd g;      // ∇f
  VectorXd gmag;   // magnitudes of the contributions to ∇f
  Entries H;       // ∇²f, lower
  VectorXd c;      // (h, g)
  SpRow A;         // ∂c/∂y
  VectorXd norm2;  // ‖∇c_i‖₂
  VectorXd norm1;  // ‖∇c_i‖₁
};

void Evaluate(const Problem& P, const VectorXd& y, bool hessian, Point* pt) {
  pt->y = y;
  pt->f = P.Derivatives(y, &pt->g, hessian ? &pt->H : nullptr, nullptr, &pt->gmag);
  RequireFinite(P, pt->f, pt->g, "at an iterate");
  if (!hessian) pt->H.clear();
  P.Jacobian(y, &pt->c, &pt->A, nullptr);
  if (!pt->c.allFinite()) throw NumericalFailure(P.name() + ": a constraint value is not finite at an iterate");
  pt->norm2.setZero(P.nc());
  pt->norm1.setZero(P.nc());
  for (int i = 0; i < P.nc(); ++i) {
    for (SpRow::InnerIterator it(pt->A, i); it; ++it) {
      pt->norm2[i] += it.value() * it.value();
      pt->norm1[i] += std::abs(it.value());
    }
    pt->norm2[i] = std::sqrt(pt->norm2[i]);
  }
}

// The largest contribution to ∇L: the scale against which multipliers and stationarity are judged.
double ForceScale(const Problem& P, const Point& pt, const VectorXd& lambda) {
  double s = std::max(MaxAbs(pt.gmag), MaxAbs(pt.g));
  for (int i = 0; i < P.nc(); ++i) s = std::max(s, std::abs(lambda[i]) * pt.norm2[i]);
  return s;
}

// The natural length of y: ‖(K⁻¹ [m_f; m_c])_y‖∞ with m the magnitudes of the summed contributions to ∇L and c_W
// — how far y moves if every contribution changed by 100 %; ε times it is how far rounding moves y.
double Natural(const Problem& P, const Point& pt, const VectorXd& lambda, const std::vector<int>& W, Kkt* kkt,
               const Entries& WL) {
  const int m = P.m();
  VectorXd mag(m + static_cast<int>(W.size()));
  mag.head(m) = pt.gmag + AbsTimes(m, WL, pt.y);
  for (int i = 0; i < P.nc(); ++i) {
    if (lambda[i] == 0) continue;
    for (SpRow::InnerIterator it(pt.A, i); it; ++it) mag[it.col()] += std::abs(lambda[i] * it.value());
  }
  for (size_t j = 0; j < W.size(); ++j) {
    double s = std::abs(pt.c[W[j]]);
    for (SpRow::InnerIterator it(pt.A, W[j]); it; ++it) s += std::abs(it.value() * pt.y[it.col()]);
    mag[m + static_cast<int>(j)] = s;
  }
  const VectorXd z = kkt->inertia().zero > 0 && kkt->Singular() ? kkt->MinNormSolve(mag) : kkt->Solve(mag, false);
  double natural = 0;
  for (int k = 0; k < m; ++k) natural = std::max(natural, std::abs(z[k]));
  return std::isfinite(natural) ? natural : std::numeric_limits<double>::infinity();
}

// The accuracy the solver reports (status.residual): the last Newton step, or the rounding floor ε·natural if
// larger, relative to ‖y‖∞ (to natural when y = 0) — an estimate of y's relative error.
double Accuracy(double step, double natural, double ymax) {
  const double err = std::max(step, kEps * natural);
  if (err == 0) return 0;
  const double ref = ymax > 0 ? ymax : natural;
  return ref > 0 ? err / ref : std::numeric_limits<double>::infinity();
}

// Newton has reached rounding level: the step is below kStopStep·‖y‖∞ or a few ε·natural.
bool AtRounding(double step, double natural, double ymax) {
  return step <= std::max(kStopStep * ymax, 8 * kEps * natural);
}

// The largest constraint violation as a distance |c_i|/‖∇c_i‖ (equalities) or max(0, g_k)/‖∇g_k‖.
double Violation(const Problem& P, const VectorXd& c, const VectorXd& norm2) {
  double v = 0;
  for (int i = 0; i < P.nc(); ++i) {
    const double raw = i < P.p() ? std::abs(c[i]) : std::max(0.0, c[i]);
    if (raw == 0) continue;
    v = std::max(v, norm2[i] > 0 ? raw / norm2[i] : std::numeric_limits<double>::infinity());
  }
  return v;
}

double Relative(double step, double scale) {
  if (step == 0) return 0;
  if (!(scale > 0)) return std::numeric_limits<double>::infinity();
  return step / scale;
}

// Lagrangian Hessian: ∇²f + Σ_{i ∈ W} λ_i ∇²c_i (y-y, lower). A diagonal entry where f's curvature and the
// constraints' cancel to rounding level (|sum| ≤ 64 ε · sum of magnitudes) is set to exactly zero: it is zero as
// far as double precision can tell, and a noise-sized curvature would turn into a noise-sized, huge step (a point
// projected onto a sphere from ‖x‖ ≈ 1e-20 has tangential curvature ‖x‖/r, far below ε).
Entries LagrangianHessian(const Problem& P, const Point& pt, const VectorXd& lambda, bool forward) {
  Entries WL = pt.H;
  const size_t f_entries = WL.size();
  P.Curvature(pt.y, lambda, &WL, nullptr, forward);
  if (WL.size() == f_entries) return WL;
  const int m = P.m();
  VectorXd sum = VectorXd::Zero(m), magnitude = VectorXd::Zero(m);
  for (const auto& e : WL) {
    if (e.row != e.col) continue;
    sum[e.row] += e.value;
    magnitude[e.row] += std::abs(e.value);
  }
  std::vector<char> cancelled(m, 0);
  bool any = false;
  for (int k = 0; k < m; ++k) {
    if (sum[k] != 0 && std::abs(sum[k]) <= 64 * kEps * magnitude[k]) cancelled[k] = any = true;
  }
  if (any) {
    WL.erase(
        std::remove_if(WL.begin(), WL.end(), [&](const SparseEntry& e) { return e.row == e.col && cancelled[e.row]; }),
        WL.end());
  }
  return WL;
}

// ---- the solver's state --------------------------------------------------------------------------------------
struct State {
  VectorXd y;
  VectorXd lambda;     // multipliers of L = f + λᵀc (p + q; zero outside W)
  std::vector<int> W;  // working set (sorted): every equality, the active inequalities
  double residual = std::numeric_limits<double>::infinity();
  double y_scale = 0;  // max(‖y‖∞, natural): the scale of steps and distances
  double natural = 0;  // see Natural()
  int iterations = 0;
  // The last Newton step's factorisation had the inertia of a strict minimum (reduced Hessian positive definite
  // on the strongly active constraints, no zero pivot): the second-order check at the answer, one rounding-size
  // step further, need not factorise again.
  bool verified = false;
};

std::vector<int> Equalities(const Problem& P) {
  std::vector<int> W(P.p());
  for (int i = 0; i < P.p(); ++i) W[i] = i;
  return W;
}

// True if y satisfies the constraints to the accuracy Newton–KKT reaches (a singular, inconsistent working set
// can give small steps at an infeasible point).
bool Feasible(const Problem& P, const State* s) {
  Point pt;
  Evaluate(P, s->y, false, &pt);
  const double allowed = 100 * std::max(P.options().converged_residual * MaxAbs(s->y), kEps * s->natural);
  return Violation(P, pt.c, pt.norm2) <= allowed;
}

// ---- Newton–KKT with primal–dual active-set updates (a local method: full steps, a watchdog) -------------------
bool NewtonKkt(const Problem& P, State* s, int budget) {
  const GenericSolverOptions& o = P.options();
  const int m = P.m();
  Point pt;
  Kkt kkt;
  double best = std::numeric_limits<double>::infinity();
  int stalls = 0, changes = 0;
  std::vector<std::vector<int>> seen;
  const VectorXd none;
  for (int it = 0; it < budget; ++it) {
    Evaluate(P, s->y, true, &pt);
    const Entries WL = LagrangianHessian(P, pt, s->lambda, true);
    if (!kkt.Factorize(m, WL, pt.A, s->W, none, 0.0, o)) return false;
    // Wrong inertia: not a minimum on the tangent space at this iterate; the full step may lead to a saddle or a
    // maximum. Leave it to the globalised method.
    if (kkt.inertia().negative > static_cast<int>(s->W.size())) {
      DDN_TRACE("newton-kkt %d: wrong inertia (%d negative for %zu constraints)", it, kkt.inertia().negative,
                s->W.size());
      return false;
    }
    const int w = static_cast<int>(s->W.size());
    VectorXd rhs(m + w);
    rhs.head(m) = -pt.g;
    for (int j = 0; j < w; ++j) rhs[m + j] = -pt.c[s->W[j]];
    const Kkt::Inertia inertia = kkt.inertia();
    const VectorXd z = kkt.SolveAny(rhs);
    if (!z.allFinite()) return false;
    const VectorXd d = z.head(m);
    s->natural = Natural(P, pt, s->lambda, s->W, &kkt, WL);
    s->y_scale = std::max(MaxAbs(s->y), s->natural);
    const double step_abs = MaxAbs(d);
    const double step = Relative(step_abs, s->y_scale);
    ++s->iterations;
    DDN_TRACE("newton-kkt %d: |W| %zu step %.3e y_scale %.3e f %.17g inertia +%d -%d 0:%d", it, s->W.size(), step,
              s->y_scale, pt.f, kkt.inertia().positive, kkt.inertia().negative, kkt.inertia().zero);
    if (Tracing() && m <= 8) {
      for (int k = 0; k < m; ++k) std::fprintf(stderr, "  y[%d] = %.17g  d = %.3e\n", k, s->y[k], d[k]);
      for (int j = 0; j < w; ++j)
        std::fprintf(stderr, "  lambda[%d] = %.17g -> %.17g\n", s->W[j], s->lambda[s->W[j]], z[m + j]);
    }
    if (!std::isfinite(step) || step > 1e3) return false;  // a wild step: the local model is not trusted
    // Rounding dominates the step (the reduced Hessian is tiny against its parts): the iterate is as good as
    // double precision makes it; do not move it by noise.
    if (!(kEps * s->natural <= 1e-2 * MaxAbs(s->y)) && step_abs <= 8 * kEps * s->natural) {
      s->residual = Accuracy(step_abs, s->natural, MaxAbs(s->y));
      return Feasible(P, s);
    }
    // The new multipliers and the working set (PDAS): drop inequalities pulling the wrong way, add violated ones.
    const double force = ForceScale(P, pt, s->lambda);
    VectorXd lambda = VectorXd::Zero(P.nc());
    std::vector<int> next;
    for (int j = 0; j < w; ++j) {
      const int i = s->W[j];
      const double l = z[m + j];
      if (i >= P.p() && l * pt.norm2[i] < -kDropForce * force) continue;
      lambda[i] = (i >= P.p() && l < 0) ? 0.0 : l;
      next.push_back(i);
    }
    const VectorXd y_new = s->y + d;
    const VectorXd c_new = P.Constraints(y_new);
    if (!c_new.allFinite() || !std::isfinite(P.Value(y_new))) return false;
    const double ymax = std::max(MaxAbs(y_new), s->y_scale);
    for (int k = P.p(); k < P.nc(); ++k) {
      if (std::binary_search(s->W.begin(), s->W.end(), k)) continue;
      if (c_new[k] > o.active_tolerance * pt.norm1[k] * ymax) next.push_back(k);
    }
    std::sort(next.begin(), next.end());
    s->y = y_new;
    s->lambda = lambda;
    s->residual = Accuracy(step_abs, s->natural, MaxAbs(y_new));
    s->verified = inertia.zero == 0 && inertia.negative == w && inertia.positive == m;
    for (int j = 0; j < w && s->verified; ++j) {
      const int i = s->W[j];
      if (i >= P.p() && !(z[m + j] * pt.norm2[i] > o.degenerate_tolerance * force)) s->verified = false;
    }
    if (next != s->W) {
      if (std::find(seen.begin(), seen.end(), next) != seen.end() || ++changes > 2 * P.q() + 20) return false;
      seen.push_back(s->W);
      s->W = next;
      best = std::numeric_limits<double>::infinity();
      stalls = 0;
      continue;
    }
    if (AtRounding(step_abs, s->natural, MaxAbs(s->y))) return Feasible(P, s);
    if (step < 0.9 * best) {
      best = step;
      stalls = 0;
    } else if (++stalls >= 3) {
      // No more progress: rounding noise. Converged if the accuracy is at the tolerance level.
      return s->residual <= o.converged_residual && Feasible(P, s);
    }
  }
  return s->residual <= o.converged_residual && Feasible(P, s);
}

// ---- Newton's method on a smooth function (f, or the augmented Lagrangian), inertia-corrected ------------------
//
// Φ(y) = f(y) + Σ_eq (λ̂_i ĉ_i + ρ/2 ĉ_i²) + Σ_ineq (max(0, λ̂_k + ρ ĝ_k)² − λ̂_k²)/(2ρ), ĉ_i = c_i · s_i.
struct Penalty {
  bool active = false;
  VectorXd lambda_hat;  // multipliers of the normalised constraints
  VectorXd scale;       // s_i = 1/‖∇c_i‖
  double rho = 1;
};

double Merit(const Problem& P, const Penalty& pen, const VectorXd& y) {
  double phi = P.Value(y);
  if (!pen.active) return phi;
  const VectorXd c = P.Constraints(y);
  for (int i = 0; i < P.nc(); ++i) {
    const double ch = c[i] * pen.scale[i];
    if (i < P.p()) {
      phi += pen.lambda_hat[i] * ch + 0.5 * pen.rho * ch * ch;
    } else {
      const double sh = std::max(0.0, pen.lambda_hat[i] + pen.rho * ch);
      phi += (sh * sh - pen.lambda_hat[i] * pen.lambda_hat[i]) / (2 * pen.rho);
    }
  }
  return phi;
}

// Φ at an evaluated point (no further evaluation).
double MeritAt(const Problem& P, const Penalty& pen, const Point& pt) {
  double phi = pt.f;
  if (!pen.active) return phi;
  for (int i = 0; i < P.nc(); ++i) {
    const double ch = pt.c[i] * pen.scale[i];
    if (i < P.p()) {
      phi += pen.lambda_hat[i] * ch + 0.5 * pen.rho * ch * ch;
    } else {
      const double sh = std::max(0.0, pen.lambda_hat[i] + pen.rho * ch);
      phi += (sh * sh - pen.lambda_hat[i] * pen.lambda_hat[i]) / (2 * pen.rho);
    }
  }
  return phi;
}

// The smallest eigenvalue (and its vector) of the Hessian restricted to the null space of the rows `S` of A, and
// the largest in magnitude. Dense up to dense_limit, else Lanczos with full reorthogonalisation.
struct Curvature {
  double lmin = 0, lmax = 0;
  VectorXd z;
  bool ok = false;
};

Curvature ReducedCurvature(const Problem& P, const Entries& WL, const SpRow& A, const std::vector<int>& S,
                           const VectorXd& extra_rows_weight = VectorXd()) {
  const int m = P.m();
  const int w = static_cast<int>(S.size());
  Curvature out;
  if (w >= m) {
    out.ok = true;  // the tangent space is {0}
    return out;
  }
  if (m <= P.options().dense_limit) {
    MatrixXd Hd = DenseSym(m, WL);
    MatrixXd Z;
    if (w == 0) {
      Z = MatrixXd::Identity(m, m);
    } else {
      MatrixXd At(m, w);
      At.setZero();
      for (int j = 0; j < w; ++j)
        for (SpRow::InnerIterator it(A, S[j]); it; ++it) At(it.col(), j) = it.value();
      Eigen::ColPivHouseholderQR<MatrixXd> qr(At);
      qr.setThreshold(1e-12);
      const int rank = static_cast<int>(qr.rank());
      const MatrixXd Q = qr.householderQ() * MatrixXd::Identity(m, m);
      Z = Q.rightCols(m - rank);
      if (Z.cols() == 0) {
        out.ok = true;
        return out;
      }
    }
    const MatrixXd R = Z.transpose() * Hd * Z;
    Eigen::SelfAdjointEigenSolver<MatrixXd> e(0.5 * (R + R.transpose()));
    if (e.info() != Eigen::Success) return out;
    out.lmin = e.eigenvalues()[0];
    out.lmax = MaxAbs(e.eigenvalues());
    out.z = Z * e.eigenvectors().col(0);
    out.ok = true;
    return out;
  }
  // Lanczos on P H P, P the orthogonal projector onto null(A_S) applied through a KKT solve with H = I.
  Kkt proj;
  Entries identity;
  for (int k = 0; k < m; ++k) identity.push_back({k, k, 1.0});
  if (w > 0 && !proj.Factorize(m, identity, A, S, VectorXd(), 0.0, P.options())) return out;
  auto project = [&](const VectorXd& v) -> VectorXd {
    if (w == 0) return v;
    VectorXd rhs = VectorXd::Zero(m + w);
    rhs.head(m) = v;
    return proj.Solve(rhs).head(m);
  };
  const int k_max = std::min(m - w, 80);
  MatrixXd V(m, k_max + 1);
  VectorXd alpha(k_max), beta(k_max + 1);
  VectorXd v = VectorXd::Zero(m);
  uint64_t state = 0x9E3779B97F4A7C15ull;  // deterministic start vector
  for (int k = 0; k < m; ++k) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    v[k] = static_cast<double>(state % 2000001) / 1e6 - 1.0;
  }
  v = project(v);
  if (v.norm() == 0) return out;
  V.col(0) = v / v.norm();
  int k = 0;
  for (; k < k_max; ++k) {
    VectorXd u = project(SymTimes(m, WL, V.col(k)));
    alpha[k] = V.col(k).dot(u);
    for (int r = 0; r <= k; ++r) u -= V.col(r).dot(u) * V.col(r);  // full reorthogonalisation
    for (int r = 0; r <= k; ++r) u -= V.col(r).dot(u) * V.col(r);
    beta[k + 1] = u.norm();
    if (beta[k + 1] <= 1e-12 * std::max(1.0, std::abs(alpha[k]))) {
      ++k;
      break;
    }
    V.col(k + 1) = u / beta[k + 1];
  }
  MatrixXd T = MatrixXd::Zero(k, k);
  for (int r = 0; r < k; ++r) {
    T(r, r) = alpha[r];
    if (r + 1 < k) T(r, r + 1) = T(r + 1, r) = beta[r + 1];
  }
  Eigen::SelfAdjointEigenSolver<MatrixXd> e(T);
  out.lmin = e.eigenvalues()[0];
  out.lmax = MaxAbs(e.eigenvalues());
  out.z = project(V.leftCols(k) * e.eigenvectors().col(0));
  out.ok = true;
  return out;
}

// Minimises Φ from s->y to a step below `tol` (relative); returns false if it stalls far from that. Negative
// curvature is handled by an inertia-corrected Hessian (τ on the equilibrated diagonal) and, at a stationary
// point that is not a minimum, a step along the direction of most negative curvature.
bool NewtonMinimize(const Problem& P, const Penalty& pen, State* s, double tol, int* escapes) {
  const GenericSolverOptions& o = P.options();
  const int m = P.m();
  Point pt;
  Kkt kkt;
  double best = std::numeric_limits<double>::infinity();
  int stalls = 0;
  bool reuse = false;  // the last step was a full Newton step in the region of quadratic convergence
  Entries last_H;
  double previous_step = std::numeric_limits<double>::infinity();
  bool pending = false;  // a full step was taken and is checked at the next evaluation
  double pending_phi = 0, pending_slope = 0;
  VectorXd pending_y, pending_d;
  for (int it = 0; it < o.max_newton_iterations; ++it) {
    if (reuse && !pen.active) {
      // Simplified Newton: the Hessian moved by O(last step) ≤ 1e-6 relative; a fresh gradient with the last
      // factorisation gives the next step (an estimate of the error as good as a full one) for the price of a
      // gradient.
      VectorXd g;
      VectorXd gmag;
      P.Derivatives(s->y, &g, nullptr, nullptr, &gmag);
      RequireFinite(P, 0.0, g, "at an iterate");
      VectorXd rhs = -g;
      const VectorXd d = kkt.SolveAny(rhs);
      const VectorXd mag = gmag + AbsTimes(m, last_H, s->y);
      const VectorXd zs = kkt.inertia().zero > 0 ? kkt.SolveAny(mag) : kkt.Solve(mag, false);
      s->natural = zs.allFinite() ? MaxAbs(zs) : std::numeric_limits<double>::infinity();
      s->y_scale = std::max(MaxAbs(s->y), s->natural);
      const double step_abs = MaxAbs(d);
      const double step = Relative(step_abs, s->y_scale);
      ++s->iterations;
      DDN_TRACE("newton %d: simplified step %.3e y_scale %.3e", it, step, s->y_scale);
      if (d.allFinite() && (step <= tol || AtRounding(step_abs, s->natural, MaxAbs(s->y)))) {
        s->residual = Accuracy(step_abs, s->natural, MaxAbs(s->y));
        s->y += d;
        return true;
      }
      // Just above the stopping step: this step, with the last full step's factorisation, contracts the error by
      // about |1 − H_last⁻¹H| ≈ C‖d_last‖ ≈ ‖d‖/‖d_last‖ (d_last was a quadratically converging Newton step), so
      // the next would be ‖d‖²/‖d_last‖. A thousand times below the stopping step: take this one and stop, rather
      // than discard it for a full Newton step at the same point.
      const double predicted = step * (step / previous_step);
      if (d.allFinite() && predicted <= 1e-3 * kStopStep) {
        s->y += d;
        s->residual = Accuracy(predicted * s->y_scale, s->natural, MaxAbs(s->y));
        DDN_TRACE("newton %d: simplified step contracts, next predicted %.3e: done", it, predicted);
        return true;
      }
      reuse = false;  // not yet converged: back to full Newton steps
    }
    Evaluate(P, s->y, true, &pt);
    if (pending) {
      // The full step taken last iteration is checked here, with the evaluation the iteration needs anyway
      // (Armijo: Φ must have decreased by 1e-4 of the predicted slope); if it failed, backtrack from where it
      // started.
      pending = false;
      const double now = MeritAt(P, pen, pt);
      if (!(std::isfinite(now) && now <= pending_phi + 1e-4 * pending_slope)) {
        bool accepted = false;
        double alpha = 0.5;
        for (int k = 0; k < 60; ++k, alpha *= 0.5) {
          const VectorXd trial = pending_y + alpha * pending_d;
          const double t = Merit(P, pen, trial);
          if (std::isfinite(t) && t <= pending_phi + 1e-4 * alpha * pending_slope) {
            s->y = trial;
            accepted = true;
            break;
          }
        }
        if (!accepted) return false;
        continue;  // evaluate at the accepted point
      }
    }
    // ∇Φ, ∇²Φ = ∇²f + Σ π_i ∇²ĉ_i + ρ Σ_active ∇ĉ_i ∇ĉ_iᵀ (the last as bordered rows with −1/ρ).
    VectorXd grad = pt.g;
    Entries WL = pt.H;
    std::vector<int> rows;
    SpRow Ahat;
    VectorXd D;
    if (pen.active) {
      VectorXd pi = VectorXd::Zero(P.nc());
      for (int i = 0; i < P.nc(); ++i) {
        const double ch = pt.c[i] * pen.scale[i];
        const double v = pen.lambda_hat[i] + pen.rho * ch;
        if (i < P.p() || v > 0) {
          pi[i] = v;
          rows.push_back(i);
        }
      }
      VectorXd weights = pi.cwiseProduct(pen.scale);
      grad += pt.A.transpose() * weights;
      P.Curvature(s->y, weights, &WL, nullptr, true);
      Ahat = pen.scale.asDiagonal() * pt.A;
      D = VectorXd::Constant(static_cast<int>(rows.size()), 1.0 / pen.rho);
    } else {
      Ahat = pt.A;
    }
    const VectorXd none = VectorXd();
    // Inertia correction: H + τ until ∇²Φ is positive (semi)definite: no negative pivot beyond the |rows| of
    // the bordered penalty rows. A singular, positive semidefinite ∇²Φ keeps τ = 0 (minimum-norm steps).
    double tau = 0;
    bool factorised = false;
    for (int attempt = 0; attempt < 60; ++attempt) {
      if (!kkt.Factorize(m, WL, Ahat, rows, pen.active ? D : none, tau, o)) break;
      const Kkt::Inertia& in = kkt.inertia();
      if (in.negative == static_cast<int>(rows.size()) && (tau == 0 || in.zero == 0)) {
        factorised = true;
        break;
      }
      tau = tau == 0 ? 1e-8 : tau * 8;
      if (tau > 1e12) break;
    }
    if (!factorised) return false;
    const int w = static_cast<int>(rows.size());
    VectorXd rhs = VectorXd::Zero(m + w);
    rhs.head(m) = -grad;
    const VectorXd d = kkt.SolveAny(rhs).head(m);
    if (!d.allFinite()) return false;
    // y's scale from the magnitudes of ∇Φ's contributions.
    {
      VectorXd mag = VectorXd::Zero(m + w);
      mag.head(m) = pt.gmag + AbsTimes(m, WL, s->y);
      if (pen.active) {
        for (int i = 0; i < P.nc(); ++i) {
          const double ch = pt.c[i] * pen.scale[i];
          const double v =
              i < P.p() ? pen.lambda_hat[i] + pen.rho * ch : std::max(0.0, pen.lambda_hat[i] + pen.rho * ch);
          for (SpRow::InnerIterator e(pt.A, i); e; ++e) mag[e.col()] += std::abs(v * pen.scale[i] * e.value());
        }
      }
      const VectorXd zs = kkt.inertia().zero > 0 ? kkt.SolveAny(mag) : kkt.Solve(mag, false);
      double natural = 0;
      for (int k = 0; k < m; ++k) natural = std::max(natural, std::abs(zs[k]));
      s->natural = std::isfinite(natural) ? natural : std::numeric_limits<double>::infinity();
      s->y_scale = std::max(MaxAbs(s->y), s->natural);
    }
    const double step_abs = MaxAbs(d);
    const double step = Relative(step_abs, s->y_scale);
    ++s->iterations;
    s->residual = Accuracy(step_abs, s->natural, MaxAbs(s->y));
    s->verified = !pen.active && tau == 0 && kkt.inertia().zero == 0;
    DDN_TRACE("newton %d: step %.3e y_scale %.3e tau %.1e phi-f %.17g rows %zu", it, step, s->y_scale, tau, pt.f,
              rows.size());
    if (tau == 0 && (step <= tol || (!pen.active && AtRounding(step_abs, s->natural, MaxAbs(s->y))))) {
      // (A step below the rounding floor is noise: do not take it when it is large against y.)
      if (step_abs <= kStopStep * MaxAbs(s->y) || step <= tol) s->y += d;
      return true;
    }
    if (tau == 0 && step <= 1e-6) {
      // The local quadratic model is trusted: full Newton step (a line search on Φ would only see rounding).
      s->y += d;
      // Reuse the factorisation only when the steps shrink quadratically (not for a degenerate minimum, where
      // Newton converges linearly and a stale Hessian would mislead).
      reuse = kkt.inertia().zero == 0 && step <= 1e-2 * previous_step;
      // Quadratic convergence, seen over the last two steps (‖d_k‖ ≈ C‖d_{k−1}‖² with C‖d‖ ≪ 1), predicts the
      // next step as C‖d_k‖² ≈ ‖d_k‖³/‖d_{k−1}‖². When that is a thousand times below the stopping step, the
      // step just taken put y within rounding of the minimiser: done, without the gradient pass that would
      // only measure a step below rounding (and leave y unchanged). Each factor of C comes from a measured
      // step; a prediction that fell short by 10³ would still stop at the same accuracy.
      // (Two measured steps: not at the first iteration, whose "previous step" is infinite.)
      if (reuse && !pen.active && std::isfinite(previous_step)) {
        const double predicted = step * (step / previous_step) * (step / previous_step);
        if (predicted <= 1e-3 * kStopStep) {
          s->residual = Accuracy(predicted * s->y_scale, s->natural, MaxAbs(s->y));
          DDN_TRACE("newton %d: quadratic convergence, next step predicted %.3e: done", it, predicted);
          return true;
        }
      }
      if (reuse) last_H = WL;
      previous_step = step;
      if (step < 0.9 * best) {
        best = step;
        stalls = 0;
      } else if (++stalls >= 4) {
        return s->residual <= o.converged_residual;
      }
      continue;
    }
    const double phi = MeritAt(P, pen, pt);
    if (tau > 0 && step <= 1e-6) {
      // Stationary but not a minimum of Φ: go down the direction of most negative curvature.
      if (*escapes >= o.max_escapes) return false;
      Curvature cv;
      if (pen.active && !rows.empty()) {
        // ∇²Φ = WL + ρ Σ_rows ∇ĉ_i ∇ĉ_iᵀ, formed as entries.
        Entries M = WL;
        for (int i : rows) {
          std::vector<std::pair<int, double>> r;
          for (SpRow::InnerIterator e(Ahat, i); e; ++e) r.emplace_back(e.col(), e.value());
          for (auto& a : r)
            for (auto& b : r)
              if (a.first >= b.first) M.push_back({a.first, b.first, pen.rho * a.second * b.second});
        }
        cv = ReducedCurvature(P, M, Ahat, {});
      } else {
        cv = ReducedCurvature(P, WL, Ahat, {});
      }
      if (!cv.ok || cv.z.size() == 0 || !(cv.lmin < -o.rcond * std::max(cv.lmax, 1e-300))) return false;
      VectorXd z = cv.z / MaxAbs(cv.z);
      if (grad.dot(z) > 0) z = -z;
      bool moved = false;
      double alpha = std::max(s->y_scale, 1e-300);
      for (int k = 0; k < 80 && !moved; ++k, alpha *= 0.5) {
        for (int sign : {1, -1}) {
          const VectorXd trial = s->y + sign * alpha * z;
          const double t = Merit(P, pen, trial);
          if (std::isfinite(t) && t < phi - 1e-12 * std::abs(phi)) {
            s->y = trial;
            moved = true;
            break;
          }
        }
      }
      ++*escapes;
      if (!moved) return false;
      best = std::numeric_limits<double>::infinity();
      stalls = 0;
      continue;
    }
    previous_step = step;
    // The full step, checked (Armijo on Φ) at the next iteration's evaluation; backtracking if it fails.
    pending = true;
    pending_phi = phi;
    pending_slope = grad.dot(d);
    pending_y = s->y;
    pending_d = d;
    s->y += d;
    best = std::numeric_limits<double>::infinity();
    stalls = 0;
  }
  return false;
}

// Least-squares multipliers for the working set at pt: min ‖∇f + A_Wᵀλ‖.
VectorXd LeastSquaresMultipliers(const Problem& P, const Point& pt, const std::vector<int>& W) {
  VectorXd lambda = VectorXd::Zero(P.nc());
  if (W.empty()) return lambda;
  const int m = P.m(), w = static_cast<int>(W.size());
  Entries identity;
  for (int k = 0; k < m; ++k) identity.push_back({k, k, 1.0});
  Kkt kkt;
  if (!kkt.Factorize(m, identity, pt.A, W, VectorXd(), 0.0, P.options())) return lambda;
  VectorXd rhs = VectorXd::Zero(m + w);
  rhs.head(m) = -pt.g;
  const VectorXd z = kkt.Singular() ? kkt.MinNormSolve(rhs) : kkt.Solve(rhs);
  for (int j = 0; j < w; ++j) lambda[W[j]] = z[m + j];
  return lambda;
}

// The inequalities active at y: |g_k| ≤ active_tolerance · ‖∇g_k‖₁ · ‖y‖∞ (with every equality).
std::vector<int> ActiveSet(const Problem& P, const Point& pt, double tol, std::vector<int>* violated) {
  std::vector<int> W = Equalities(P);
  const double ymax = MaxAbs(pt.y);
  for (int k = P.p(); k < P.nc(); ++k) {
    const double bound = tol * pt.norm1[k] * ymax;
    if (std::abs(pt.c[k]) <= bound) {
      W.push_back(k);
    } else if (pt.c[k] > 0 && violated) {
      violated->push_back(k);
    }
  }
  return W;
}

// ---- the augmented Lagrangian: globalisation of the constrained solve ----------------------------------------
// Returns when a Newton–KKT solve from one of its iterates converged (true) or it gave up (false).
bool AugmentedLagrangian(const Problem& P, State* s, int* escapes) {
  const GenericSolverOptions& o = P.options();
  Penalty pen;
  pen.active = true;
  Point pt;
  Evaluate(P, s->y, true, &pt);
  // Curvature scale of f (ρ's units): the largest Hessian diagonal, or |∇f| over y's scale.
  double ymax = std::max(MaxAbs(s->y), s->y_scale);
  double kappa = MaxDiag(P.m(), pt.H);
  if (!(kappa > 0)) kappa = ymax > 0 ? std::max(MaxAbs(pt.g), MaxAbs(pt.gmag)) / ymax : 0.0;
  if (!(kappa > 0)) kappa = 1.0;
  pen.rho = 10 * kappa;
  VectorXd raw_lambda = s->lambda;
  double eta = 0.1;  // feasibility target (relative) for the next multiplier update
  double omega = 1e-3;
  State trial;
  for (int outer = 0; outer < o.max_outer_iterations; ++outer) {
    // Normalise the constraints at the current point (the multipliers follow).
    pen.scale.resize(P.nc());
    for (int i = 0; i < P.nc(); ++i) {
      double nrm = pt.norm2[i];
      if (!(nrm > 0)) nrm = 1.0;
      pen.scale[i] = 1.0 / nrm;
    }
    pen.lambda_hat = raw_lambda.cwiseQuotient(pen.scale);
    for (int k = P.p(); k < P.nc(); ++k) pen.lambda_hat[k] = std::max(0.0, pen.lambda_hat[k]);
    const bool inner = NewtonMinimize(P, pen, s, omega, escapes);
    Evaluate(P, s->y, true, &pt);
    ymax = std::max(MaxAbs(s->y), s->y_scale);
    double violation = 0;
    for (int i = 0; i < P.nc(); ++i) {
      const double ch = pt.c[i] * pen.scale[i];
      violation = std::max(violation, i < P.p() ? std::abs(ch) : std::max(0.0, ch));
    }
    violation = Relative(violation, ymax);
    DDN_TRACE("augmented lagrangian %d: inner %s violation %.3e rho %.3e f %.17g", outer, inner ? "ok" : "stalled",
              violation, pen.rho, pt.f);
    // First-order multiplier update when feasibility improved enough, else a larger penalty.
    if (violation <= eta) {
      for (int i = 0; i < P.nc(); ++i) {
        const double ch = pt.c[i] * pen.scale[i];
        pen.lambda_hat[i] =
            i < P.p() ? pen.lambda_hat[i] + pen.rho * ch : std::max(0.0, pen.lambda_hat[i] + pen.rho * ch);
      }
      eta = std::max(eta * 0.1, 1e-12);
      omega = std::max(omega * 0.1, 1e-12);
    } else {
      pen.rho *= 10;
    }
    raw_lambda = pen.lambda_hat.cwiseProduct(pen.scale);
    if (violation <= 1e-3) {
      // Near the feasible set: Newton–KKT from here, on the constraints the penalty keeps active.
      trial = *s;
      trial.lambda = raw_lambda;
      trial.W = Equalities(P);
      for (int k = P.p(); k < P.nc(); ++k) {
        const double ch = pt.c[k] * pen.scale[k];
        if (pen.lambda_hat[k] > 0 || ch >= -1e-6 * ymax) trial.W.push_back(k);
      }
      const bool ok = NewtonKkt(P, &trial, o.max_newton_iterations);
      s->iterations = trial.iterations;
      if (ok) {
        *s = trial;
        return true;
      }
    }
    if (pen.rho > kappa * 1e16) break;
  }
  // Infeasible, or no convergence: report which.
  const double violation = Relative(Violation(P, pt.c, pt.norm2), std::max(MaxAbs(s->y), s->y_scale));
  if (violation > o.feasibility_tolerance) {
    std::ostringstream msg;
    msg << P.name() << ": the constraints could not be satisfied (largest violation " << violation
        << " relative to y's scale after " << s->iterations << " iterations): the problem looks infeasible";
    throw NumericalFailure(msg.str());
  }
  s->lambda = raw_lambda;
  return false;
}

// ---- Ceres L-BFGS on the node's manifold (equality constraints kept exactly) ------------------------------------
class ManifoldObjective : public ceres::FirstOrderFunction {
 public:
  explicit ManifoldObjective(const Problem& P) : P_(P) {}
  bool Evaluate(const double* y, double* cost, double* gradient) const override {
    const VectorXd yy = Eigen::Map<const VectorXd>(y, P_.m());
    if (gradient) {
      VectorXd g;
      *cost = P_.Derivatives(yy, &g, nullptr, nullptr, nullptr);
      std::copy(g.data(), g.data() + P_.m(), gradient);
      return std::isfinite(*cost) && g.allFinite();
    }
    *cost = P_.Value(yy);
    return std::isfinite(*cost);
  }
  int NumParameters() const override { return P_.m(); }

 private:
  const Problem& P_;
};

void ManifoldPhase(const Problem& P, State* s) {
  const GenericSolverOptions& o = P.options();
  if (P.q() > 0 || P.p() == 0 || o.max_lbfgs_iterations == 0) return;
  ceres::Manifold* manifold = P.oracle().NewManifold();
  if (!manifold) return;
  if (manifold->AmbientSize() != P.m() || manifold->TangentSize() < 1) {
    const int ambient = manifold->AmbientSize();
    delete manifold;
    if (ambient != P.m()) {
      throw InvalidInput(P.name() + ": MakeManifold returned a manifold of ambient size " + std::to_string(ambient) +
                         " for " + std::to_string(P.m()) + " variables");
    }
    return;  // a 0-dimensional manifold (e.g. a sphere in ℝ¹): nothing to search
  }
  VectorXd g;
  P.Derivatives(s->y, &g, nullptr, nullptr, nullptr);
  ceres::GradientProblem problem(new ManifoldObjective(P), manifold);
  ceres::GradientProblemSolver::Options options;
  options.max_num_iterations = o.max_lbfgs_iterations;
  options.function_tolerance = 1e-14;
  options.gradient_tolerance = 1e-10 * std::max(MaxAbs(g), 1e-300);
  options.parameter_tolerance = 1e-14;
  options.logging_type = ceres::SILENT;
  ceres::GradientProblemSolver::Summary summary;
  VectorXd y = s->y;
  ceres::Solve(options, problem, y.data(), &summary);
  s->iterations += static_cast<int>(summary.iterations.size());
  if (y.allFinite()) s->y = y;
}

// ---- the second-order check at a KKT point ----------------------------------------------------------------------
enum class Verdict { kMinimum, kSingular, kNegative, kUnknown };

struct SecondOrder {
  Verdict verdict = Verdict::kUnknown;
  VectorXd z;  // a direction of negative curvature (kNegative) or a null direction (kSingular)
  double lmax = 0;
  bool flat = false;
};

SecondOrder CheckSecondOrder(const Problem& P, const State& s) {
  const GenericSolverOptions& o = P.options();
  SecondOrder out;
  if (s.verified) {
    out.verdict = Verdict::kMinimum;
    return out;
  }
  Point pt;
  Evaluate(P, s.y, true, &pt);
  const double force = ForceScale(P, pt, s.lambda);
  // The tangent space of the strongly active constraints (weakly active ones do not restrict directions of
  // negative curvature... they restrict them to a cone; using the larger space is the stronger test).
  std::vector<int> S;
  for (int i : s.W) {
    if (i < P.p() || s.lambda[i] * pt.norm2[i] > o.degenerate_tolerance * force) S.push_back(i);
  }
  const Entries WL = LagrangianHessian(P, pt, s.lambda, false);
  Kkt kkt;
  const int w = static_cast<int>(S.size());
  bool decided = false;
  if (kkt.Factorize(P.m(), WL, pt.A, S, VectorXd(), 0.0, o)) {
    const Kkt::Inertia in = kkt.inertia();
    if (in.zero == 0 && in.negative == w && in.positive == P.m()) {
      out.verdict = Verdict::kMinimum;
      decided = true;
    }
  }
  if (decided) return out;
  // Inertia says: not positive definite on the tangent space, or a (near) zero pivot. Look closer.
  const Curvature cv = ReducedCurvature(P, WL, pt.A, S);
  if (!cv.ok) return out;
  out.lmax = cv.lmax;
  if (cv.z.size() == 0) {
    out.verdict = Verdict::kMinimum;  // trivial tangent space
    return out;
  }
  const double zero = o.rcond * cv.lmax;
  if (cv.lmin < -zero && cv.lmin < 0) {
    out.verdict = Verdict::kNegative;
    out.z = cv.z;
    return out;
  }
  if (cv.lmin > zero) {
    out.verdict = Verdict::kMinimum;
    return out;
  }
  // Singular: is the null direction flat (a valley of minimisers) or does the curvature grow along it?
  out.verdict = Verdict::kSingular;
  out.z = cv.z / std::max(MaxAbs(cv.z), 1e-300);
  const double t = 1e-3 * std::max(s.y_scale, MaxAbs(s.y));
  if (!(t > 0)) {
    out.flat = true;
    return out;
  }
  Point moved;
  Evaluate(P, s.y + t * out.z, true, &moved);
  const Entries WL2 = LagrangianHessian(P, moved, s.lambda, false);
  VectorXd u = SymTimes(P.m(), WL2, out.z);
  // Project onto the tangent space of S at y (remove the components along the active gradients).
  if (w > 0) {
    MatrixXd At(P.m(), w);
    At.setZero();
    for (int j = 0; j < w; ++j)
      for (SpRow::InnerIterator it(pt.A, S[j]); it; ++it) At(it.col(), j) = it.value();
    const VectorXd coef = At.colPivHouseholderQr().solve(u);
    u -= At * coef;
  }
  double scale = 0;
  for (const auto& e : WL2) scale = std::max(scale, std::abs(e.value));
  for (const auto& e : WL) scale = std::max(scale, std::abs(e.value));
  out.flat = scale == 0 || MaxAbs(u) <= 1e-6 * scale * MaxAbs(out.z);
  return out;
}

void SolveFrom(const Problem& P, State* s, int* escapes) {
  const GenericSolverOptions& o = P.options();
  if (P.nc() == 0) {
    Penalty none;
    State t = *s;
    const bool ok = NewtonMinimize(P, none, &t, kStopStep, escapes);
    *s = t;
    if (!ok && !(s->residual <= o.failure_residual)) {
      std::ostringstream msg;
      msg << P.name() << ": the generic solve did not converge (Newton step " << s->residual
          << " relative to y's scale after " << s->iterations << " iterations)";
      throw NumericalFailure(msg.str());
    }
    return;
  }
  // Constrained: Newton–KKT from the start on the constraints that look active there; if that does not converge,
  // the augmented Lagrangian (which tries Newton–KKT again from its iterates).
  Point pt;
  Evaluate(P, s->y, false, &pt);
  State first = *s;
  first.W = ActiveSet(P, pt, 1e-8, nullptr);
  for (int k = P.p(); k < P.nc(); ++k) {
    if (pt.c[k] > 0 && !std::binary_search(first.W.begin(), first.W.end(), k)) first.W.push_back(k);
  }
  std::sort(first.W.begin(), first.W.end());
  first.W.erase(std::unique(first.W.begin(), first.W.end()), first.W.end());
  first.lambda = LeastSquaresMultipliers(P, pt, first.W);
  for (int k = P.p(); k < P.nc(); ++k) first.lambda[k] = std::max(0.0, first.lambda[k]);
  if (NewtonKkt(P, &first, std::min(o.max_newton_iterations, 60))) {
    *s = first;
    return;
  }
  s->iterations = first.iterations;
  s->lambda = VectorXd::Zero(P.nc());
  if (AugmentedLagrangian(P, s, escapes)) return;
  // The augmented Lagrangian ended feasible without a converged Newton–KKT: one last, long Newton–KKT.
  Evaluate(P, s->y, false, &pt);
  s->W = ActiveSet(P, pt, 1e-6, nullptr);
  s->lambda = LeastSquaresMultipliers(P, pt, s->W);
  NewtonKkt(P, s, o.max_newton_iterations);
  Evaluate(P, s->y, false, &pt);
  const double violation = Relative(Violation(P, pt.c, pt.norm2), std::max(MaxAbs(s->y), s->y_scale));
  if (violation > o.feasibility_tolerance) {
    std::ostringstream msg;
    msg << P.name() << ": the constraints could not be satisfied (largest violation " << violation
        << " relative to y's scale after " << s->iterations << " iterations): the problem looks infeasible";
    throw NumericalFailure(msg.str());
  }
}

}  // namespace

void SolveGeneric(const DerivativeOracle& oracle, const GenericSolverOptions& options, double* y_io,
                  ProblemStatus* status) {
  options.Validate();
  const Problem P(oracle, options);
  State s;
  s.y = Eigen::Map<const VectorXd>(y_io, P.m());
  if (!s.y.allFinite()) throw NumericalFailure(P.name() + ": the initial guess is not finite");
  s.lambda = VectorXd::Zero(P.nc());
  int escapes = 0;
  ManifoldPhase(P, &s);
  SolveFrom(P, &s, &escapes);
  // Second-order check; escape from saddles and maxima along negative curvature and solve again.
  SecondOrder so;
  bool unverified = false, escaped_any = false;
  std::string unverified_why;
  for (int round = 0;; ++round) {
    so = CheckSecondOrder(P, s);
    DDN_TRACE("second-order check: verdict %d f %.17g residual %.3e", static_cast<int>(so.verdict), P.Value(s.y),
              s.residual);
    if (so.verdict != Verdict::kNegative) break;
    if (round >= options.max_escapes) {
      unverified = true;
      unverified_why = "negative curvature at the answer after the maximum number of escapes";
      break;
    }
    const double f0 = P.Value(s.y);
    VectorXd z = so.z / std::max(MaxAbs(so.z), 1e-300);
    bool escaped = false;
    double alpha = std::max(s.y_scale, MaxAbs(s.y));
    if (!(alpha > 0)) alpha = 1.0;
    for (int k = 0; k < 40 && !escaped; ++k, alpha *= 0.25) {
      for (int sign : {1, -1}) {
        State t = s;
        t.y = s.y + sign * alpha * z;
        t.lambda = VectorXd::Zero(P.nc());
        try {
          SolveFrom(P, &t, &escapes);
        } catch (const NumericalFailure&) {
          continue;
        }
        const double f1 = P.Value(t.y);
        if (f1 < f0 - 1e3 * kEps * std::max(std::abs(f0), std::abs(f1))) {
          t.iterations = std::max(t.iterations, s.iterations);
          s = t;
          escaped = escaped_any = true;
          break;
        }
      }
    }
    if (!escaped) {
      unverified = true;
      unverified_why = "negative curvature at the answer: no descent found along it";
      break;
    }
  }
  if (!(s.residual <= options.failure_residual) || !s.y.allFinite()) {
    std::ostringstream msg;
    msg << P.name() << ": the generic solve did not converge (estimated relative error of y " << s.residual << " after "
        << s.iterations << " iterations)";
    throw NumericalFailure(msg.str());
  }
  std::copy(s.y.data(), s.y.data() + P.m(), y_io);
  status->residual = s.residual;
  status->iterations = s.iterations;
  if (s.residual > options.converged_residual) {
    std::ostringstream why;
    why << "y's estimated relative error is " << s.residual
        << " (the problem's conditioning limits it in double precision, or the solve stalled)";
    status->Set(kUnverified, why.str());
  }
  if (unverified) status->Set(kUnverified, unverified_why);
  if (escapes > 0 || escaped_any) {
    status->Set(kNotCertified,
                "the solve left a stationary point that was not a minimum (the problem is not convex): "
                "y is a verified local minimum, not certified global");
  }
  if (so.verdict == Verdict::kUnknown) status->Set(kUnverified, "the second-order condition could not be checked");
  if (so.verdict == Verdict::kSingular) {
    if (so.flat) {
      status->Set(kNonUnique, "singular Hessian along a valley of minimisers: one minimiser returned");
    } else {
      status->Set(kNonRegular, "singular Hessian at an isolated minimum (degenerate, non-quadratic)");
    }
  }
  // Degenerate active set: weakly active inequalities, inequalities at rounding level but not active, or more
  // active constraints than variables.
  if (P.q() > 0) {
    Point pt;
    Evaluate(P, s.y, false, &pt);
    const double force = ForceScale(P, pt, s.lambda);
    const std::vector<int> active = ActiveSet(P, pt, options.active_tolerance, nullptr);
    for (int k = P.p(); k < P.nc(); ++k) {
      const bool in_w = std::binary_search(s.W.begin(), s.W.end(), k);
      const bool at_bound = std::binary_search(active.begin(), active.end(), k);
      if (in_w && std::abs(s.lambda[k]) * pt.norm2[k] <= options.degenerate_tolerance * force) {
        status->Set(kDegenerate, "weakly active inequality (zero multiplier)");
      } else if (in_w != at_bound) {
        status->Set(kDegenerate, "an inequality is within rounding of its bound but not active");
      }
    }
    if (static_cast<int>(active.size()) > P.m()) status->Set(kDegenerate, "more active constraints than variables");
  }
}

void GenericVjp(const DerivativeOracle& oracle, const GenericSolverOptions& options, const double* y_in,
                const double* v_in, double* dx, ProblemStatus* status) {
  options.Validate();
  const Problem P(oracle, options);
  const int m = P.m(), n = P.n();
  Point pt;
  pt.y = Eigen::Map<const VectorXd>(y_in, m);
  Entries Bf;
  // (The gradient's magnitudes judge multipliers: not needed without constraints.)
  pt.f = P.Derivatives(pt.y, &pt.g, &pt.H, &Bf, P.nc() > 0 ? &pt.gmag : nullptr);
  RequireFinite(P, pt.f, pt.g, "at the solution");
  Entries Ax;
  P.Jacobian(pt.y, &pt.c, &pt.A, &Ax);
  pt.norm2.setZero(P.nc());
  pt.norm1.setZero(P.nc());
  for (int i = 0; i < P.nc(); ++i) {
    for (SpRow::InnerIterator it(pt.A, i); it; ++it) {
      pt.norm2[i] += it.value() * it.value();
      pt.norm1[i] += std::abs(it.value());
    }
    pt.norm2[i] = std::sqrt(pt.norm2[i]);
  }
  std::vector<int> violated;
  std::vector<int> W = ActiveSet(P, pt, options.active_tolerance, &violated);
  const double ymax = MaxAbs(pt.y);
  for (int k : violated) {
    if (pt.c[k] > 1e-6 * pt.norm1[k] * std::max(ymax, 1e-300)) {
      throw NumericalFailure(P.name() + ": y violates inequality " + std::to_string(k - P.p()) +
                             " (g = " + FormatDouble(pt.c[k]) + "): not a solution of the problem");
    }
  }
  // Multipliers on the active set; inequalities that pull the wrong way are not binding.
  VectorXd lambda = LeastSquaresMultipliers(P, pt, W);
  for (int round = 0; round <= P.q(); ++round) {
    const double force = ForceScale(P, pt, lambda);
    int worst = -1;
    double worst_force = -kDropForce * force;
    for (int i : W) {
      if (i < P.p()) continue;
      const double f = lambda[i] * pt.norm2[i];
      if (f < worst_force) {
        worst_force = f;
        worst = i;
      }
    }
    if (worst < 0) break;
    status->Set(kDegenerate, "an inequality at its bound does not bind (negative multiplier)");
    W.erase(std::find(W.begin(), W.end(), worst));
    lambda = LeastSquaresMultipliers(P, pt, W);
  }
  const double force = ForceScale(P, pt, lambda);
  for (int i : W) {
    if (i >= P.p() && std::abs(lambda[i]) * pt.norm2[i] <= options.degenerate_tolerance * force) {
      status->Set(kDegenerate, "weakly active inequality (zero multiplier)");
    }
  }
  if (static_cast<int>(W.size()) > m) status->Set(kDegenerate, "more active constraints than variables");
  // W_L (with the forward's clean-up of curvature that cancels to rounding level), B = ∇²_yx L, C = ∂c_W/∂x.
  VectorXd weights = VectorXd::Zero(P.nc());
  for (int i : W) weights[i] = lambda[i];
  const Entries WL = LagrangianHessian(P, pt, weights, false);
  // (The constraints' mixed curvature is appended to f's entries in place: a copy of them is a pass over one entry
  // per term.)
  Entries& B = Bf;
  Entries unused;
  P.Curvature(pt.y, weights, &unused, &B, false);
  Kkt kkt;
  const int w = static_cast<int>(W.size());
  VectorXd rhs = VectorXd::Zero(m + w);
  rhs.head(m) = Eigen::Map<const VectorXd>(v_in, m);
  VectorXd z;
  if (!kkt.Factorize(m, WL, pt.A, W, VectorXd(), 0.0, options)) {
    throw NumericalFailure(P.name() + ": the KKT matrix could not be factorised");
  }
  if (kkt.Singular()) {
    status->Set(kNonRegular, w == 0 ? "singular Hessian: minimum-norm least-squares gradient"
                                    : "singular KKT matrix: minimum-norm least-squares gradient");
    z = kkt.MinNormSolve(rhs);
  } else {
    z = kkt.Solve(rhs);
  }
  if (!z.allFinite()) throw NumericalFailure(P.name() + ": the implicit system's solution is not finite");
  // dx = −(Bᵀw + Cᵀμ).
  for (const auto& e : B) dx[e.col] -= e.value * z[e.row];
  if (w > 0) {
    std::vector<int> position(P.nc(), -1);
    for (int j = 0; j < w; ++j) position[W[j]] = j;
    for (const auto& e : Ax) {
      if (position[e.row] >= 0) dx[e.col] -= e.value * z[m + position[e.row]];
    }
  }
  (void)n;
}

}  // namespace ddn
