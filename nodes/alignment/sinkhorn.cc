#include "nodes/alignment/sinkhorn.h"

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ddn/error.h"
#include "ddn/fast_exp.h"
#include "ddn/lane_sum.h"
#include "ddn/params.h"
#include "ddn/simd.h"

namespace ddn::alignment {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMatrix>;
using RowMap = Eigen::Map<RowMatrix>;
using ConstVecMap = Eigen::Map<const Eigen::VectorXd>;
using VecMap = Eigen::Map<Eigen::VectorXd>;

// Row sums α = P1 and column sums β = Pᵀ1 of a row-major H×W matrix.
DDN_SIMD_BODY void MarginalsBody(const double* P, int64_t H, int64_t W, double* alpha, double* beta) {
  std::fill_n(beta, W, 0.0);
  for (int64_t i = 0; i < H; ++i) {
    const double* row = P + i * W;
    alpha[i] = LaneSum(W, [&](int64_t j) { return row[j]; });
    for (int64_t j = 0; j < W; ++j) beta[j] += row[j];
  }
}
DDN_SIMD_DISPATCH(void, Marginals, (const double* P, int64_t H, int64_t W, double* alpha, double* beta),
                  (P, H, W, alpha, beta))

double MaxAbsDiff(const double* a, const double* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

// ---- The short-side Schur complement of the KKT matrix A = [diag(α)(1+λ) P; Pᵀ diag(β)(1+λ)] ------------

// Factorises the Schur complement of A on the shorter side of P and solves A [x; y] = [b_rows; b_cols].
// With λ = 0 the null space (1, −1) is grounded (see the header); the right-hand side must then be orthogonal
// to it, i.e. Σ b_rows = Σ b_cols.
class ShortSideSchur {
 public:
  // Forms the Laplacian part from P and the marginals α (H), β (W): O(n²·m).
  void Build(const double* P, int64_t H, int64_t W, const double* alpha, const double* beta) {
    P_ = P;
    H_ = H;
    W_ = W;
    rows_short_ = H <= W;
    n_ = rows_short_ ? H : W;
    const int64_t m = rows_short_ ? W : H;
    const double* short_sums = rows_short_ ? alpha : beta;
    const double* long_sums = rows_short_ ? beta : alpha;
    short_sums_.assign(short_sums, short_sums + n_);
    long_sums_.assign(long_sums, long_sums + m);
    // Q = P_s diag(β_l^{-1/2}) (n×m), W = Q Qᵀ; P_s is P (rows short) or Pᵀ (columns short).
    inv_sqrt_long_.resize(m);
    for (int64_t k = 0; k < m; ++k) inv_sqrt_long_[k] = long_sums[k] > 0 ? 1.0 / std::sqrt(long_sums[k]) : 0.0;
    const ConstRowMap Pm(P, H, W);
    weights_.setZero(n_, n_);
    if (rows_short_) {
      q_rows_.resize(H, W);
      q_rows_ = Pm * ConstVecMap(inv_sqrt_long_.data(), W).asDiagonal();
      weights_.selfadjointView<Eigen::Lower>().rankUpdate(q_rows_);
    } else {
      // Column-major W×H: column i is row i of P scaled by α_i^{-1/2}.
      q_cols_.resize(W, H);
      q_cols_ = (ConstVecMap(inv_sqrt_long_.data(), H).asDiagonal() * Pm).transpose();
      weights_.selfadjointView<Eigen::Lower>().rankUpdate(q_cols_);
    }
    // Laplacian: off-diagonal −w_ik, diagonal Σ_{k≠i} w_ik (no cancellation).
    laplacian_diagonal_.assign(n_, 0.0);
    for (int64_t k = 0; k < n_; ++k)
      for (int64_t i = k + 1; i < n_; ++i) {
        const double w = weights_(i, k);
        laplacian_diagonal_[i] += w;
        laplacian_diagonal_[k] += w;
      }
  }

  // Factorises the matrix for damping λ ≥ 0. Returns false if even the pivoted factorisation failed.
  bool Factorize(double lambda) {
    lambda_ = lambda;
    const double growth = (1 + lambda) * (1 + lambda) - 1;
    schur_.resize(n_, n_);
    double trace = 0;
    for (int64_t i = 0; i < n_; ++i) trace += laplacian_diagonal_[i];
    double ground = 0;
    if (lambda == 0) {
      double mean_sum = 0;
      for (int64_t i = 0; i < n_; ++i) mean_sum += short_sums_[i];
      mean_sum /= static_cast<double>(n_);
      ground = trace > 0 ? trace / static_cast<double>(n_ * n_) : mean_sum / static_cast<double>(n_);
      if (!(ground > 0)) ground = 1.0;
    }
    for (int64_t k = 0; k < n_; ++k) {
      for (int64_t i = k + 1; i < n_; ++i) schur_(i, k) = ground - weights_(i, k);
      schur_(k, k) = laplacian_diagonal_[k] + growth * short_sums_[k] + ground;
    }
    pivoted_ = false;
    llt_.compute(schur_);  // reads the lower triangle
    if (llt_.info() == Eigen::Success) {
      // A Cholesky factor with a tiny pivot relative to the largest one is as unreliable as a failed one.
      const auto d = llt_.matrixLLT().diagonal();
      const double lo = d.minCoeff(), hi = d.maxCoeff();
      if (lo > 1e-7 * hi) return true;
    }
    pivoted_ = true;
    ldlt_.compute(schur_.selfadjointView<Eigen::Lower>());
    return ldlt_.info() == Eigen::Success;
  }

  // x (H), y (W) from b_rows (H), b_cols (W).
  void Solve(const double* b_rows, const double* b_cols, double* x, double* y) {
    const int64_t m = rows_short_ ? W_ : H_;
    const double* b_short = rows_short_ ? b_rows : b_cols;
    const double* b_long = rows_short_ ? b_cols : b_rows;
    double* x_short = rows_short_ ? x : y;
    double* x_long = rows_short_ ? y : x;
    const ConstRowMap Pm(P_, H_, W_);
    // rhs = (1+λ) b_s − P_s (b_l / β_l)
    scaled_.resize(m);
    for (int64_t k = 0; k < m; ++k) scaled_[k] = long_sums_[k] > 0 ? b_long[k] / long_sums_[k] : 0.0;
    rhs_.resize(n_);
    if (rows_short_) {
      rhs_.noalias() = -(Pm * scaled_);
    } else {
      rhs_.noalias() = -(Pm.transpose() * scaled_);
    }
    for (int64_t i = 0; i < n_; ++i) rhs_[i] += (1 + lambda_) * b_short[i];
    if (pivoted_) {
      rhs_ = ldlt_.solve(rhs_);
    } else {
      llt_.solveInPlace(rhs_);
    }
    VecMap(x_short, n_) = rhs_;
    // x_l = (b_l − P_sᵀ x_s) / ((1+λ) β_l)
    if (rows_short_) {
      scaled_.noalias() = Pm.transpose() * rhs_;
    } else {
      scaled_.noalias() = Pm * rhs_;
    }
    for (int64_t k = 0; k < m; ++k) {
      x_long[k] = long_sums_[k] > 0 ? (b_long[k] - scaled_[k]) / ((1 + lambda_) * long_sums_[k]) : 0.0;
    }
  }

  bool pivoted() const { return pivoted_; }

 private:
  const double* P_ = nullptr;
  int64_t H_ = 0, W_ = 0, n_ = 0;
  bool rows_short_ = true;
  double lambda_ = 0;
  bool pivoted_ = false;
  std::vector<double> short_sums_, long_sums_, inv_sqrt_long_, laplacian_diagonal_;
  RowMatrix q_rows_;
  Eigen::MatrixXd q_cols_, weights_, schur_;
  Eigen::LLT<Eigen::MatrixXd> llt_;
  Eigen::LDLT<Eigen::MatrixXd> ldlt_;
  Eigen::VectorXd rhs_, scaled_;
};

void SinkhornOptions::Validate() const {
  auto require = [](bool ok, const char* field, double value) {
    if (!ok) throw InvalidInput(std::string("SinkhornOptions.") + field + " is invalid: " + FormatDouble(value));
  };
  require(tolerance > 0 && std::isfinite(tolerance), "tolerance", tolerance);
  require(acceptable_tolerance >= tolerance && std::isfinite(acceptable_tolerance), "acceptable_tolerance",
          acceptable_tolerance);
  require(sinkhorn_rate > 0 && sinkhorn_rate < 1, "sinkhorn_rate", sinkhorn_rate);
  require(newton_start > 0 && newton_start < 1, "newton_start", newton_start);
  require(max_omega >= 1 && max_omega < 2, "max_omega", max_omega);
  require(stage_spread >= 0 && std::isfinite(stage_spread), "stage_spread", stage_spread);
  require(stage_tolerance >= tolerance && stage_tolerance < 1, "stage_tolerance", stage_tolerance);
  require(max_sweeps >= 1, "max_sweeps", max_sweeps);
  require(max_stage_sweeps >= 1, "max_stage_sweeps", max_stage_sweeps);
  require(max_newton_steps >= 0, "max_newton_steps", max_newton_steps);
}

namespace {

// Per-thread scratch of the forward solve (the batch runs one problem per thread at a time).
struct Workspace {
  std::vector<double> f, g, u, v, alpha, beta, trial_alpha, trial_beta, df, dg, b_rows, b_cols, col_max, col_sum, scale,
      scale2;
  std::vector<double> trial;  // H×W
  ShortSideSchur schur;
};

Workspace& ThreadWorkspace() {
  thread_local Workspace w;
  return w;
}

// The kernels below are the passes over P (H·W values) of one solve; compiled twice (AVX2 and baseline).

// f_i = log r_i − log Σ_j exp(g_j − γ M_ij) for every row (g = nullptr: g = 0).
DDN_SIMD_BODY void RowPotentialsBody(const double* M, const double* r, const double* g, int64_t H, int64_t W,
                                     double gamma, double* f) {
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < W; ++j) m = std::max(m, (g ? g[j] : 0.0) - gamma * row[j]);
    const double s = LaneSum(W, [&](int64_t j) { return ExpNonPositive((g ? g[j] : 0.0) - gamma * row[j] - m); });
    f[i] = std::log(r[i]) - m - std::log(s);
  }
}
DDN_SIMD_DISPATCH(void, RowPotentials,
                  (const double* M, const double* r, const double* g, int64_t H, int64_t W, double gamma, double* f),
                  (M, r, g, H, W, gamma, f))

// g_j = log c_j − log Σ_i exp(f_i − γ M_ij) for every column, by two passes over the rows.
DDN_SIMD_BODY void ColumnPotentialsBody(const double* M, const double* c, const double* f, int64_t H, int64_t W,
                                        double gamma, double* col_max, double* col_sum, double* g) {
  std::fill_n(col_max, W, -std::numeric_limits<double>::infinity());
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    const double fi = f[i];
    for (int64_t j = 0; j < W; ++j) col_max[j] = std::max(col_max[j], fi - gamma * row[j]);
  }
  std::fill_n(col_sum, W, 0.0);
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    const double fi = f[i];
    for (int64_t j = 0; j < W; ++j) col_sum[j] += ExpNonPositive(fi - gamma * row[j] - col_max[j]);
  }
  for (int64_t j = 0; j < W; ++j) g[j] = std::log(c[j]) - col_max[j] - std::log(col_sum[j]);
}
DDN_SIMD_DISPATCH(void, ColumnPotentials,
                  (const double* M, const double* c, const double* f, int64_t H, int64_t W, double gamma,
                   double* col_max, double* col_sum, double* g),
                  (M, c, f, H, W, gamma, col_max, col_sum, g))

// P_ij = exp(f_i + g_j − γ M_ij) (exponents ≤ 0 up to rounding after ColumnPotentials); returns the smallest
// row sum.
DDN_SIMD_BODY double GibbsBody(const double* M, const double* f, const double* g, int64_t H, int64_t W, double gamma,
                               double* P, double* alpha) {
  double smallest = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    double* p = P + i * W;
    const double fi = f[i];
    for (int64_t j = 0; j < W; ++j) p[j] = ExpNonPositive(std::min(fi + g[j] - gamma * row[j], 0.0));
    alpha[i] = LaneSum(W, [&](int64_t j) { return p[j]; });
    smallest = std::min(smallest, alpha[i]);
  }
  return smallest;
}
DDN_SIMD_DISPATCH(double, Gibbs,
                  (const double* M, const double* f, const double* g, int64_t H, int64_t W, double gamma, double* P,
                   double* alpha),
                  (M, f, g, H, W, gamma, P, alpha))

// y^ω for the scalings of a sweep. Near convergence y = 1 + e with tiny e: the second-order expansion is then
// exact to rounding (|e| < 1e-4) and saves a pow per row and column; any positive scaling is a valid step of
// the iteration, the marginal error measured after it is what counts.
inline double Power(double y, double omega) {
  if (omega == 1.0) return y;
  const double e = y - 1.0;
  if (std::abs(e) < 1e-4) return 1.0 + omega * e * (1.0 + 0.5 * (omega - 1.0) * e);
  return std::pow(y, omega);
}

// One (over-relaxed) Sinkhorn sweep from the column sums β of P: P ← P diag((c/β)^ω), then P ← diag((r/σ)^ω) P
// with σ the new row sums. Accumulates the scalings into u (H) and v (W) and writes the marginals α, β of
// the result: two passes over each row while it is in cache.
DDN_SIMD_BODY void SinkhornSweepBody(const double* r, const double* c, int64_t H, int64_t W, double omega, double* P,
                                     double* u, double* v, double* alpha, double* beta, double* scale) {
  for (int64_t j = 0; j < W; ++j) {
    scale[j] = Power(c[j] / beta[j], omega);
    v[j] *= scale[j];
    beta[j] = 0;
  }
  for (int64_t i = 0; i < H; ++i) {
    double* p = P + i * W;
    for (int64_t j = 0; j < W; ++j) p[j] *= scale[j];
    const double x = Power(r[i] / LaneSum(W, [&](int64_t j) { return p[j]; }), omega);
    u[i] *= x;
    for (int64_t j = 0; j < W; ++j) p[j] *= x;
    alpha[i] = LaneSum(W, [&](int64_t j) { return p[j]; });
    for (int64_t j = 0; j < W; ++j) beta[j] += p[j];
  }
}
DDN_SIMD_DISPATCH(void, SinkhornSweep,
                  (const double* r, const double* c, int64_t H, int64_t W, double omega, double* P, double* u,
                   double* v, double* alpha, double* beta, double* scale),
                  (r, c, H, W, omega, P, u, v, alpha, beta, scale))

// trial = diag(a) P diag(b), with its marginals.
DDN_SIMD_BODY void ScaledCopyBody(const double* P, const double* a, const double* b, int64_t H, int64_t W,
                                  double* trial, double* alpha, double* beta) {
  std::fill_n(beta, W, 0.0);
  for (int64_t i = 0; i < H; ++i) {
    const double* p = P + i * W;
    double* t = trial + i * W;
    const double ai = a[i];
    for (int64_t j = 0; j < W; ++j) t[j] = p[j] * ai * b[j];
    alpha[i] = LaneSum(W, [&](int64_t j) { return t[j]; });
    for (int64_t j = 0; j < W; ++j) beta[j] += t[j];
  }
}
DDN_SIMD_DISPATCH(void, ScaledCopy,
                  (const double* P, const double* a, const double* b, int64_t H, int64_t W, double* trial,
                   double* alpha, double* beta),
                  (P, a, b, H, W, trial, alpha, beta))

double MarginalError(const double* alpha, const double* beta, const double* r, const double* c, int64_t H, int64_t W) {
  return std::max(MaxAbsDiff(alpha, r, H), MaxAbsDiff(beta, c, W));
}

// A Newton step costs about this many Sinkhorn sweeps (a Schur complement and a Cholesky factorisation against
// two passes over P); sweeps continue while the observed rate reaches the tolerance in fewer.
constexpr double kNewtonCostInSweeps = 50;
// Sweeps over which the rate is measured.
constexpr int kWindow = 5;

// The iterate of one solve: P with its marginals, and the potentials f, g of (1) as logs plus pending
// multiplicative scalings u, v (f_i = log-part + log u_i), flushed into the logs when the potentials are read.
struct Iterate {
  double* P;      // current plan (the output buffer or the workspace's)
  double* spare;  // the other buffer, for trial steps
  std::vector<double>* f;
  std::vector<double>* g;
  std::vector<double>* u;
  std::vector<double>* v;
  void Flush() {
    for (size_t i = 0; i < f->size(); ++i) (*f)[i] += std::log((*u)[i]), (*u)[i] = 1.0;
    for (size_t j = 0; j < g->size(); ++j) (*g)[j] += std::log((*v)[j]), (*v)[j] = 1.0;
  }
};

}  // namespace

SinkhornReport SolveTransport(const double* M, const double* r, const double* c, int64_t H, int64_t W, double gamma,
                              const SinkhornOptions& options, double* P_out) {
  SinkhornReport report;
  Workspace& ws = ThreadWorkspace();
  ws.alpha.resize(H);
  ws.beta.resize(W);
  double mass = 0;
  for (int64_t i = 0; i < H; ++i) mass += r[i];
  if (H == 1 || W == 1) {
    // The constraints alone fix P = r cᵀ / Σr.
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j) P_out[i * W + j] = r[i] * c[j] / mass;
    Marginals(P_out, H, W, ws.alpha.data(), ws.beta.data());
    report.marginal_error = MarginalError(ws.alpha.data(), ws.beta.data(), r, c, H, W) / mass;
    return report;
  }
  const int64_t longest = std::max(H, W);
  ws.f.assign(H, 0.0);
  ws.g.assign(W, 0.0);
  ws.u.assign(H, 1.0);
  ws.v.assign(W, 1.0);
  for (auto* v : {&ws.trial_alpha, &ws.trial_beta, &ws.df, &ws.dg, &ws.b_rows, &ws.b_cols, &ws.col_max, &ws.col_sum,
                  &ws.scale, &ws.scale2})
    v->resize(longest);
  ws.trial.resize(H * W);
  Iterate it{P_out, ws.trial.data(), &ws.f, &ws.g, &ws.u, &ws.v};
  std::vector<double>& f = ws.f;
  std::vector<double>& g = ws.g;
  double* alpha = ws.alpha.data();
  double* beta = ws.beta.data();

  // ε-scaling schedule from the largest range of a row of M.
  double spread = 0;
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    const auto [lo, hi] = std::minmax_element(row, row + W);
    spread = std::max(spread, *hi - *lo);
  }
  int stages = 0;
  if (options.stage_spread > 0 && gamma * spread > options.stage_spread)
    stages = static_cast<int>(std::ceil(std::log2(gamma * spread / options.stage_spread)));
  stages = std::min(stages, 60);

  const double final_tolerance = options.tolerance * mass;
  const double acceptable = options.acceptable_tolerance * mass;
  for (int k = stages; k >= 0; --k) {
    const double gk = std::ldexp(gamma, -k);
    ++report.stages;
    if (k == stages) {
      RowPotentials(M, r, nullptr, H, W, gk, f.data());
    } else {
      it.Flush();
      for (auto& x : f) x *= 2;  // the potentials in cost units, f/γ_k, carry over
      for (auto& x : g) x *= 2;
    }
    ColumnPotentials(M, c, f.data(), H, W, gk, ws.col_max.data(), ws.col_sum.data(), g.data());
    if (!(Gibbs(M, f.data(), g.data(), H, W, gk, it.P, alpha) > 1e-280)) {
      // A row whose mass underflowed: a row update in the log domain first.
      RowPotentials(M, r, g.data(), H, W, gk, f.data());
      Gibbs(M, f.data(), g.data(), H, W, gk, it.P, alpha);
    }
    Marginals(it.P, H, W, alpha, beta);

    const bool final_stage = k == 0;
    const double tol = final_stage ? final_tolerance : options.stage_tolerance * mass;
    double prev_err = std::numeric_limits<double>::infinity(), best_err = prev_err;
    int sweeps_in_stage = 0, stalled = 0;
    bool newton_started = false, factorised = false;
    double lambda = 0, contraction = 1, omega = 1;
    bool relaxed = false;
    int relaxed_at = 0;
    double history[kWindow];
    for (;;) {
      const double err = MarginalError(alpha, beta, r, c, H, W);
      report.marginal_error = err / mass;
      if (err <= tol) break;
      // Near the rounding floor progress stops: accept what is reached once it no longer improves.
      if (err < best_err) {
        best_err = err;
        stalled = 0;
      } else if (err <= acceptable && ++stalled >= 3) {
        break;
      }
      if (report.sweeps >= options.max_sweeps || report.newton_steps >= options.max_newton_steps) break;
      if (!final_stage && sweeps_in_stage >= options.max_stage_sweeps) break;  // a warm start is all it needs
      // Rate per sweep over the last few sweeps of this stage (one sweep's rate is noisy in the max-norm).
      history[sweeps_in_stage % kWindow] = err;
      const int window = std::min(sweeps_in_stage, kWindow - 1);
      const double rate = window > 0 ? std::pow(err / history[(sweeps_in_stage - window) % kWindow], 1.0 / window) : 0;
      bool sweep = !newton_started;
      if (sweep && final_stage && sweeps_in_stage >= kWindow - 1) {
        if (omega == 1.0 && !relaxed && options.over_relaxation && rate > 0.3 && rate < 1) {
          // Over-relaxation from the plain rate θ (Thibault et al., "Overrelaxed Sinkhorn–Knopp", 2021):
          // ω = 2 / (1 + √(1 − θ)) makes the local rate about ω − 1.
          omega = std::min(options.max_omega, 2.0 / (1.0 + std::sqrt(1.0 - rate)));
          relaxed = true;
          relaxed_at = sweeps_in_stage;
        } else if (omega > 1.0 && rate > 1.0 && sweeps_in_stage - relaxed_at >= kWindow - 1) {
          omega = 1.0;  // over-relaxation diverged: plain sweeps again
          relaxed_at = sweeps_in_stage;
        }
        // Sweep on while the observed rate gets to the tolerance cheaper than Newton steps would (judged once
        // a full window has passed since ω last changed).
        sweep = sweeps_in_stage - relaxed_at < kWindow - 1 ||
                (rate <= options.sinkhorn_rate && err > options.newton_start * mass) ||
                (rate < 1 && std::log(tol / err) / std::log(rate) <= kNewtonCostInSweeps);
      }
      if (sweep) {
        SinkhornSweep(r, c, H, W, omega, it.P, ws.u.data(), ws.v.data(), alpha, beta, ws.scale.data());
        ++report.sweeps;
        ++sweeps_in_stage;
        prev_err = err;
        continue;
      }
      // Damped Newton step on the dual (2), with a short backtracking search along each damped direction.
      newton_started = true;
      it.Flush();
      for (int64_t i = 0; i < H; ++i) ws.b_rows[i] = r[i] - alpha[i];
      for (int64_t j = 0; j < W; ++j) ws.b_cols[j] = c[j] - beta[j];
      double dual = 0;  // D(f, g) = rᵀf + cᵀg − ΣP
      for (int64_t i = 0; i < H; ++i) dual += r[i] * f[i] - alpha[i];
      for (int64_t j = 0; j < W; ++j) dual += c[j] * g[j];
      // Solves with the current factorisation and searches t ∈ {1, 1/4, 1/16, ...} along the step.
      double trial_err = err;
      auto try_step = [&]() {
        ws.schur.Solve(ws.b_rows.data(), ws.b_cols.data(), ws.df.data(), ws.dg.data());
        double biggest = 0;
        for (int64_t i = 0; i < H; ++i) biggest = std::max(biggest, std::abs(ws.df[i]));
        for (int64_t j = 0; j < W; ++j) biggest = std::max(biggest, std::abs(ws.dg[j]));
        if (!std::isfinite(biggest)) return false;
        for (double t = std::min(1.0, 30.0 / biggest); t > 1e-3; t *= 0.25) {
          for (int64_t i = 0; i < H; ++i) ws.scale[i] = std::exp(t * ws.df[i]);
          for (int64_t j = 0; j < W; ++j) ws.scale2[j] = std::exp(t * ws.dg[j]);
          ScaledCopy(it.P, ws.scale.data(), ws.scale2.data(), H, W, it.spare, ws.trial_alpha.data(),
                     ws.trial_beta.data());
          trial_err = MarginalError(ws.trial_alpha.data(), ws.trial_beta.data(), r, c, H, W);
          double trial_dual = 0;
          for (int64_t i = 0; i < H; ++i) trial_dual += r[i] * (f[i] + t * ws.df[i]) - ws.trial_alpha[i];
          for (int64_t j = 0; j < W; ++j) trial_dual += c[j] * (g[j] + t * ws.dg[j]);
          if (trial_err < err || trial_dual > dual) {
            for (int64_t i = 0; i < H; ++i) f[i] += t * ws.df[i];
            for (int64_t j = 0; j < W; ++j) g[j] += t * ws.dg[j];
            return true;
          }
        }
        return false;
      };
      bool accepted = false;
      // A chord step first (the last factorisation, reused) while Newton converges fast: the Hessian then
      // changes little between steps, and a solve costs a few passes over P against O(n²·m) for a new one.
      if (factorised && lambda == 0 && contraction <= 0.5) accepted = try_step();
      if (accepted && trial_err > 0.7 * err) {
        // The chord step helped too little: keep it, but factorise afresh for the next one.
        contraction = 1;
      } else if (!accepted) {
        ws.schur.Build(it.P, H, W, alpha, beta);
        factorised = true;
        for (int attempt = 0; attempt < 20 && !accepted; ++attempt) {
          ++report.factorizations;
          if (ws.schur.Factorize(lambda)) accepted = try_step();
          if (!accepted) lambda = std::max(10 * lambda, 1e-4);
        }
        if (accepted) contraction = trial_err / err;
      } else {
        contraction = trial_err / err;
      }
      if (!accepted) break;  // no step helps any more: judged below
      std::swap(it.P, it.spare);
      std::copy(ws.trial_alpha.begin(), ws.trial_alpha.begin() + H, alpha);
      std::copy(ws.trial_beta.begin(), ws.trial_beta.begin() + W, beta);
      ++report.newton_steps;
      lambda = contraction < 0.1 ? lambda / 100 : lambda / 10;
      if (lambda < 1e-9) lambda = 0;
      prev_err = err;
    }
  }
  if (it.P != P_out) std::copy(it.P, it.P + H * W, P_out);
  if (!(report.marginal_error <= options.acceptable_tolerance)) {
    throw NumericalFailure("optimal transport did not converge: marginal error " + FormatDouble(report.marginal_error) +
                           " (relative to the total mass) after " + std::to_string(report.sweeps) +
                           " Sinkhorn sweeps and " + std::to_string(report.newton_steps) + " Newton steps");
  }
  return report;
}

// ---- Backward ----------------------------------------------------------------------------------------

namespace {

struct VjpWorkspace {
  std::vector<double> alpha, beta, s_rows, s_cols, x, y;
  ShortSideSchur schur;
};

VjpWorkspace& ThreadVjpWorkspace() {
  thread_local VjpWorkspace w;
  return w;
}

// Solves (3) for the right-hand side [S1; Sᵀ1], S = V ∘ P, into ws.x, ws.y. Returns true if pivoted.
bool SolveAdjoint(const double* P, int64_t H, int64_t W, const double* V, ShortSideSchur* schur, VjpWorkspace* ws,
                  bool factorize) {
  ws->s_rows.assign(H, 0.0);
  ws->s_cols.assign(W, 0.0);
  for (int64_t i = 0; i < H; ++i) {
    const double* p = P + i * W;
    const double* v = V + i * W;
    double sum = 0;
    for (int64_t j = 0; j < W; ++j) {
      const double s = v[j] * p[j];
      sum += s;
      ws->s_cols[j] += s;
    }
    ws->s_rows[i] = sum;
  }
  ws->x.resize(H);
  ws->y.resize(W);
  if (factorize) {
    ws->alpha.resize(H);
    ws->beta.resize(W);
    Marginals(P, H, W, ws->alpha.data(), ws->beta.data());
    schur->Build(P, H, W, ws->alpha.data(), ws->beta.data());
    if (!schur->Factorize(0.0)) throw NumericalFailure("optimal transport backward: the KKT system is singular");
  }
  schur->Solve(ws->s_rows.data(), ws->s_cols.data(), ws->x.data(), ws->y.data());
  return schur->pivoted();
}

}  // namespace

void TransportVjp(const double* P, int64_t H, int64_t W, double gamma, const double* V, double* dM, double* dr,
                  double* dc, ProblemStatus* status) {
  VjpWorkspace& ws = ThreadVjpWorkspace();
  const bool pivoted = SolveAdjoint(P, H, W, V, &ws.schur, &ws, true);
  if (pivoted && status) {
    status->Set(kNonRegular,
                "the support of P is numerically disconnected: potentials not unique, gradient from a pivoted "
                "factorisation");
  }
  if (dM) {
    for (int64_t i = 0; i < H; ++i) {
      const double* p = P + i * W;
      const double* v = V + i * W;
      double* d = dM + i * W;
      const double xi = ws.x[i];
      for (int64_t j = 0; j < W; ++j) d[j] = gamma * p[j] * (xi + ws.y[j] - v[j]);
    }
  }
  if (dr) std::copy(ws.x.begin(), ws.x.end(), dr);
  if (dc) std::copy(ws.y.begin(), ws.y.end(), dc);
}

// ---- TransportJacobian --------------------------------------------------------------------------------

struct TransportJacobian::Impl {
  const double* P;
  int64_t H, W;
  double gamma;
  ShortSideSchur schur;
  VjpWorkspace ws;
};

TransportJacobian::TransportJacobian(const double* P, int64_t H, int64_t W, double gamma) : impl_(new Impl) {
  impl_->P = P;
  impl_->H = H;
  impl_->W = W;
  impl_->gamma = gamma;
  impl_->ws.alpha.resize(H);
  impl_->ws.beta.resize(W);
  Marginals(P, H, W, impl_->ws.alpha.data(), impl_->ws.beta.data());
  impl_->schur.Build(P, H, W, impl_->ws.alpha.data(), impl_->ws.beta.data());
  if (!impl_->schur.Factorize(0.0)) throw NumericalFailure("transport Jacobian: the KKT system is singular");
}

TransportJacobian::~TransportJacobian() = default;

bool TransportJacobian::pivoted() const {
  return impl_->schur.pivoted();
}

void TransportJacobian::Apply(const double* in, double* out) const {
  Impl& m = *impl_;
  SolveAdjoint(m.P, m.H, m.W, in, &m.schur, &m.ws, false);
  for (int64_t i = 0; i < m.H; ++i) {
    const double* p = m.P + i * m.W;
    const double* v = in + i * m.W;
    double* o = out + i * m.W;
    const double xi = m.ws.x[i];
    for (int64_t j = 0; j < m.W; ++j) o[j] = m.gamma * p[j] * (v[j] - xi - m.ws.y[j]);
  }
}

}  // namespace ddn::alignment
