// nodes/pooling/pooling_backward.cc: the closed-form backward of robust pooling (pooling_solvers.h, "Backward"):
// the implicit function theorem of ∇f(y) = 0, one pass over the points for H and one for the products.
#include <algorithm>
#include <cmath>
#include <vector>

#include "nodes/pooling/solver_parts.h"

namespace ddn::pooling::internal {

namespace {

void ZeroGradients(const PoolingProblem& p, double* dx, double* dw) {
  std::fill_n(dx, p.n * p.d, 0.0);
  if (dw) std::fill_n(dw, p.n, 0.0);
}

}  // namespace

bool BackwardScaled(const PoolingProblem& p, const double* y, const double* v, double* dx, double* dw, ProblemStatus* s,
                    bool check, bool assign, PoolingWorkspace* ws, bool* finite) {
  const double wmax = (check && p.w) ? MaxWeight(p) : 1.0;
  if (p.d == 1) {
    return DispatchPenalty(p.kind, [&](auto kc) {
      constexpr PenaltyKind K = decltype(kc)::value;
      // One pass stores w_i φ''_i (and φ'_i if w has a gradient); the second only scales. When dx is assigned, the
      // first pass stores w_i φ''_i in dx itself and the second scales it in place (same bits): the output's
      // memory traffic then overlaps the pass's arithmetic, and the scaling runs on N values already in cache
      // (welsch (1024, 1024) backward, alternated, 3.2–3.4 → 1.9–2.2 ms with x and dx in main memory).
      std::vector<double>&d1s = ws->d1, &d2s = ws->d2;
      if (!assign) d2s.resize(p.n);
      if (dw) d1s.resize(p.n);
      double* d2 = assign ? dx : d2s.data();
      const CurvatureSums c = ScalarCurvatures<K>(p, y[0], dw ? d1s.data() : nullptr, d2);
      // Σ (y − x_i) finite proves y and every x finite, Σ |w φ''| every w (a NaN or infinite w makes its term NaN
      // or infinite); such a problem goes on as if inside the envelope, and the caller looks (ddn/finiteness.h).
      bool read_finite = std::isfinite(c.zsum) && std::isfinite(c.habs) && std::isfinite(v[0]);
      if (!read_finite) {
        // Also the sums of finite values far outside the envelope (α² overflows: u = z²·0 is NaN) are not
        // finite: look at the values themselves (rare; such problems are then rescaled below).
        double sum = y[0] * 0.0 + v[0] * 0.0;
        for (int64_t i = 0; i < p.n; ++i) sum += p.x[i] * 0.0 + Weight(p.w, i) * 0.0;
        read_finite = sum == 0;
      }
      if (!read_finite) *finite = false;
      // |y| + max|y − x_i| bounds max|x| from above.
      if (check && read_finite && !InEnvelope(p.alpha, std::abs(y[0]) + c.zmax, wmax)) return false;
      const double h = c.h, habs = c.habs;
      const double* d1p = d1s.data();
      const double* d2p = d2;
      if (habs == 0) {
        if (assign) ZeroGradients(p, dx, dw);
        s->Set(kAllOutliers, "every point is beyond the penalty's reach (H = 0): gradient 0");
        return true;
      }
      if (!(h > 1e-12 * habs)) {
        if (assign) ZeroGradients(p, dx, dw);
        s->Set(kNonRegular, "H = sum w phi'' is not positive at the solution: minimum-norm gradient 0");
        return true;
      }
      const double vh = v[0] / h;
      // |dx_i| ≤ |v/h|·Σ|w φ''|; dw (rarely asked for) is looked at after it is written.
      if (!std::isfinite(2 * std::abs(vh) * habs)) *finite = false;
      if (dw) {
        for (int64_t i = 0; i < p.n; ++i) dw[i] = (assign ? 0.0 : dw[i]) - vh * d1p[i];
        double sum = 0;
        for (int64_t i = 0; i < p.n; ++i) sum += dw[i] * 0.0;
        if (sum != 0) *finite = false;
      }
      if (assign) {
#pragma omp simd
        for (int64_t i = 0; i < p.n; ++i) dx[i] = 0.0 + vh * dx[i];  // 0 + …: the bits of += into zeros
        return true;
      }
#pragma omp simd
      for (int64_t i = 0; i < p.n; ++i) dx[i] += vh * d2p[i];
      return true;
    });
  }
  const int64_t d = p.d;
  const VectorPoints points = ByCoordinate(p, ws);
  // The finiteness of everything read: x in the transpose (exact), y, v and w here; a bad value stops the backward
  // (dx and dw zero), and the caller looks (ddn/finiteness.h).
  double zero = 0;
  for (int64_t k = 0; k < d; ++k) zero += (y[k] - y[k]) + (v[k] - v[k]);
  if (p.w)
    for (int64_t i = 0; i < p.n; ++i) zero += p.w[i] - p.w[i];
  if (!points.finite || zero != 0) {
    *finite = false;
    if (assign) ZeroGradients(p, dx, dw);
    return true;
  }
  if (check && !InEnvelope(p.alpha, points.xmax, wmax)) return false;
  DispatchPenalty(p.kind, [&](auto kc) {
    constexpr PenaltyKind K = decltype(kc)::value;
    VectorSums S;
    VectorPass<K, true>(points, y, &S, ws);
    // H = M + Σwψ·I from M's lower triangle: its largest entry and largest diagonal entry (in absolute value).
    const double* M = S.M.data();
    double habs = 0, hmax = 0;
    for (int64_t k = 0; k < d; ++k) {
      hmax = std::max(hmax, std::abs(M[k + k * d] + S.spsi));
      for (int64_t i = k + 1; i < d; ++i) habs = std::max(habs, std::abs(M[i + k * d]));
    }
    habs = std::max(habs, hmax);
    if (habs == 0) {
      if (assign) ZeroGradients(p, dx, dw);
      s->Set(kAllOutliers, "every point is beyond the penalty's reach (H = 0): gradient 0");
      return;
    }
    Eigen::VectorXd u(d);
    SmallCholesky llt;
    if (llt.Factor(M, S.spsi, d) && llt.MinPivot() > std::sqrt(1e-10 * hmax)) {
      llt.Solve(v, u.data());
    } else {
      Eigen::MatrixXd H = S.M.selfadjointView<Eigen::Lower>();
      H.diagonal().array() += S.spsi;
      Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod;
      cod.setThreshold(1e-10);
      cod.compute(H);
      u = cod.solve(Eigen::Map<const Eigen::VectorXd>(v, d));
      s->Set(kNonRegular, "H is singular or ill-conditioned at the solution: minimum-norm gradient");
    }
    if (!VectorVjp<K>(points, y, u.data(), dx, dw, assign, ws)) *finite = false;
  });
  return true;
}

}  // namespace ddn::pooling::internal
