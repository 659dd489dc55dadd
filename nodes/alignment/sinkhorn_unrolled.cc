#include "nodes/alignment/sinkhorn_unrolled.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ddn/error.h"
#include "ddn/fast_exp.h"
#include "ddn/lane_sum.h"
#include "ddn/simd.h"

namespace ddn::alignment {
namespace {

// lse_i = log Σ_j exp(g_j − γ M_ij) for every row.
DDN_SIMD_BODY void RowLogSumExpBody(const double* M, const double* g, int64_t H, int64_t W, double gamma, double* lse) {
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < W; ++j) m = std::max(m, g[j] - gamma * row[j]);
    const double s = LaneSum(W, [&](int64_t j) { return ExpNonPositive(g[j] - gamma * row[j] - m); });
    lse[i] = m + std::log(s);
  }
}
DDN_SIMD_DISPATCH(void, RowLogSumExp,
                  (const double* M, const double* g, int64_t H, int64_t W, double gamma, double* lse),
                  (M, g, H, W, gamma, lse))

// lse_j = log Σ_i exp(f_i − γ M_ij) for every column (a pass for the maxima, one for the sums).
DDN_SIMD_BODY void ColumnLogSumExpBody(const double* M, const double* f, int64_t H, int64_t W, double gamma,
                                       double* col_max, double* lse) {
  std::fill_n(col_max, W, -std::numeric_limits<double>::infinity());
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    for (int64_t j = 0; j < W; ++j) col_max[j] = std::max(col_max[j], f[i] - gamma * row[j]);
  }
  std::fill_n(lse, W, 0.0);
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    for (int64_t j = 0; j < W; ++j) lse[j] += ExpNonPositive(f[i] - gamma * row[j] - col_max[j]);
  }
  for (int64_t j = 0; j < W; ++j) lse[j] = col_max[j] + std::log(lse[j]);
}
DDN_SIMD_DISPATCH(void, ColumnLogSumExp,
                  (const double* M, const double* f, int64_t H, int64_t W, double gamma, double* col_max, double* lse),
                  (M, f, H, W, gamma, col_max, lse))

// The adjoint of one half-sweep over a plan Π_ij = exp(a_i + b_j − γ M_ij) whose rows (by_rows) or columns sum
// to the marginal (scratch: W doubles): with weights w (w_i = f̄_i / r_i for rows, w_j = ḡ_j / c_j for columns),
//   out_other −= Π w (summed along the rows or the columns),   M̄ += γ Π ∘ w.
DDN_SIMD_BODY void HalfSweepAdjointBody(const double* M, const double* a, const double* b, int64_t H, int64_t W,
                                        double gamma, bool by_rows, const double* w, double* out_other, double* dM,
                                        double* scratch) {
  for (int64_t i = 0; i < H; ++i) {
    const double* row = M + i * W;
    double* dm = dM + i * W;
    const double ai = a[i];
    if (by_rows) {
      const double wi = w[i];
      for (int64_t j = 0; j < W; ++j) {
        const double t = ExpNonPositive(std::min(ai + b[j] - gamma * row[j], 0.0)) * wi;
        out_other[j] -= t;
        dm[j] += gamma * t;
      }
    } else {
      for (int64_t j = 0; j < W; ++j) scratch[j] = ExpNonPositive(std::min(ai + b[j] - gamma * row[j], 0.0)) * w[j];
      out_other[i] -= LaneSum(W, [&](int64_t j) { return scratch[j]; });
      for (int64_t j = 0; j < W; ++j) dm[j] += gamma * scratch[j];
    }
  }
}
DDN_SIMD_DISPATCH(void, HalfSweepAdjoint,
                  (const double* M, const double* a, const double* b, int64_t H, int64_t W, double gamma, bool by_rows,
                   const double* w, double* out_other, double* dM, double* scratch),
                  (M, a, b, H, W, gamma, by_rows, w, out_other, dM, scratch))

}  // namespace

void UnrolledSinkhornOptions::Validate() const {
  if (!(tolerance >= 0) || !std::isfinite(tolerance))
    throw InvalidInput("UnrolledSinkhornOptions: tolerance must be finite and >= 0");
  if (stall_sweeps < 1) throw InvalidInput("UnrolledSinkhornOptions: stall_sweeps must be >= 1");
  if (!(acceptable_tolerance >= tolerance) || !std::isfinite(acceptable_tolerance))
    throw InvalidInput("UnrolledSinkhornOptions: acceptable_tolerance must be finite and >= tolerance");
  if (max_sweeps < 1) throw InvalidInput("UnrolledSinkhornOptions: max_sweeps must be >= 1");
}

void RecordSinkhorn(const double* M, const double* r, const double* c, int64_t H, int64_t W, double gamma,
                    const UnrolledSinkhornOptions& options, SinkhornTape* tape, double* P) {
  tape->H = H;
  tape->W = W;
  tape->f.assign(static_cast<size_t>(H), 0.0);  // f⁰ (unused)
  tape->g.assign(static_cast<size_t>(W), 0.0);  // g⁰ = 0
  double mass = 0;
  for (int64_t i = 0; i < H; ++i) mass += r[i];
  std::vector<double> lse_rows(H), lse_cols(W), col_max(W), next_f(H);
  std::vector<double> log_r(H), log_c(W);
  for (int64_t i = 0; i < H; ++i) log_r[i] = std::log(r[i]);
  for (int64_t j = 0; j < W; ++j) log_c[j] = std::log(c[j]);
  // f¹ from g⁰.
  RowLogSumExp(M, tape->g.data(), H, W, gamma, lse_rows.data());
  for (int64_t i = 0; i < H; ++i) next_f[i] = log_r[i] - lse_rows[i];
  double best = std::numeric_limits<double>::infinity();
  int since_best = 0;
  int k = 0;
  tape->converged = false;
  while (k < options.max_sweeps) {
    ++k;
    tape->f.insert(tape->f.end(), next_f.begin(), next_f.end());
    const double* f = tape->f.data() + static_cast<size_t>(k) * H;
    ColumnLogSumExp(M, f, H, W, gamma, col_max.data(), lse_cols.data());
    const size_t g_at = tape->g.size();
    tape->g.resize(g_at + static_cast<size_t>(W));
    for (int64_t j = 0; j < W; ++j) tape->g[g_at + j] = log_c[j] - lse_cols[j];
    // The next sweep's row update; the row sums of the current plan are r_i·exp(f^k_i − f^{k+1}_i).
    RowLogSumExp(M, tape->g.data() + g_at, H, W, gamma, lse_rows.data());
    double error = 0;
    for (int64_t i = 0; i < H; ++i) {
      next_f[i] = log_r[i] - lse_rows[i];
      error = std::max(error, std::abs(r[i] * std::expm1(f[i] - next_f[i])));
    }
    error /= mass;
    tape->marginal_error = error;
    if (error <= options.tolerance) {
      tape->converged = true;
      break;
    }
    // A rounding floor: no new minimum for stall_sweeps sweeps once within acceptable_tolerance (the error of
    // plain Sinkhorn is not monotone early on, so a plateau above it is not taken for a floor).
    if (error < best) {
      best = error;
      since_best = 0;
    } else if (++since_best >= options.stall_sweeps && error <= options.acceptable_tolerance) {
      tape->converged = true;
      break;
    }
  }
  tape->sweeps = k;
  if (P) {
    const double* f = tape->f.data() + static_cast<size_t>(k) * H;
    const double* g = tape->g.data() + static_cast<size_t>(k) * W;
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j) P[i * W + j] = ExpNonPositive(std::min(f[i] + g[j] - gamma * M[i * W + j], 0.0));
  }
}

void SinkhornUnrolledVjp(const double* M, const double* r, const double* c, double gamma, const SinkhornTape& tape,
                         int steps, const double* V, double* dM, double* dr, double* dc) {
  const int64_t H = tape.H, W = tape.W;
  const int T = tape.sweeps;
  steps = std::clamp(steps, 0, T);
  std::vector<double> f_bar(H, 0.0), g_bar(W, 0.0), r_bar(H, 0.0), c_bar(W, 0.0), weights(std::max(H, W)), scratch(W);
  std::vector<double> m_bar(static_cast<size_t>(H * W));
  const double* fT = tape.f.data() + static_cast<size_t>(T) * H;
  const double* gT = tape.g.data() + static_cast<size_t>(T) * W;
  // The output P = exp(f^T + g^T − γM): f̄ = S1, ḡ = Sᵀ1, M̄ = −γS for S = V ∘ P.
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j) {
      const double s = V[i * W + j] * ExpNonPositive(std::min(fT[i] + gT[j] - gamma * M[i * W + j], 0.0));
      f_bar[i] += s;
      g_bar[j] += s;
      m_bar[i * W + j] = -gamma * s;
    }
  for (int k = T; k > T - steps; --k) {
    const double* f = tape.f.data() + static_cast<size_t>(k) * H;
    const double* g = tape.g.data() + static_cast<size_t>(k) * W;
    const double* g_prev = tape.g.data() + static_cast<size_t>(k - 1) * W;
    // g^k_j = log c_j − log Σ_i exp(f^k_i − γM_ij).
    for (int64_t j = 0; j < W; ++j) {
      weights[j] = g_bar[j] / c[j];
      c_bar[j] += weights[j];
    }
    HalfSweepAdjoint(M, f, g, H, W, gamma, /*by_rows=*/false, weights.data(), f_bar.data(), m_bar.data(),
                     scratch.data());
    // f^k_i = log r_i − log Σ_j exp(g^{k−1}_j − γM_ij); f^k is used by nothing earlier.
    for (int64_t i = 0; i < H; ++i) {
      weights[i] = f_bar[i] / r[i];
      r_bar[i] += weights[i];
      f_bar[i] = 0;
    }
    std::fill(g_bar.begin(), g_bar.end(), 0.0);
    HalfSweepAdjoint(M, f, g_prev, H, W, gamma, /*by_rows=*/true, weights.data(), g_bar.data(), m_bar.data(),
                     scratch.data());
  }
  // What is left in f̄, ḡ belongs to the potentials treated as constants (g⁰, or the truncation point).
  if (dM) std::copy(m_bar.begin(), m_bar.end(), dM);
  if (dr) std::copy(r_bar.begin(), r_bar.end(), dr);
  if (dc) std::copy(c_bar.begin(), c_bar.end(), dc);
}

}  // namespace ddn::alignment
