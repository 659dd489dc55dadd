// nodes/pooling/pooling_backward.cc: the closed-form backward of robust pooling (pooling_solvers.h, "Backward"):
// the implicit function theorem of ∇f(y) = 0, one pass over the points for H and one for the products.
#include <algorithm>
#include <cmath>
#include <vector>

#include "nodes/pooling/solver_parts.h"

namespace ddn::pooling::internal {

bool BackwardScaled(const PoolingProblem& p, const double* y, const double* v, double* dx, double* dw, ProblemStatus* s,
                    bool check, PoolingWorkspace* ws) {
  const double wmax = (check && p.w) ? MaxWeight(p) : 1.0;
  if (p.d == 1) {
    return DispatchPenalty(p.kind, [&](auto kc) {
      constexpr PenaltyKind K = decltype(kc)::value;
      // One pass stores w_i φ''_i (and φ'_i if w has a gradient); the second only scales.
      std::vector<double>&d1s = ws->d1, &d2s = ws->d2;
      d2s.resize(p.n);
      if (dw) d1s.resize(p.n);
      const CurvatureSums c = ScalarCurvatures<K>(p, y[0], dw ? d1s.data() : nullptr, d2s.data());
      // |y| + max|y − x_i| bounds max|x| from above.
      if (check && !InEnvelope(p.alpha, std::abs(y[0]) + c.zmax, wmax)) return false;
      const double h = c.h, habs = c.habs;
      const double* d1p = d1s.data();
      const double* d2p = d2s.data();
      if (habs == 0) {
        s->Set(kAllOutliers, "every point is beyond the penalty's reach (H = 0): gradient 0");
        return true;
      }
      if (!(h > 1e-12 * habs)) {
        s->Set(kNonRegular, "H = sum w phi'' is not positive at the solution: minimum-norm gradient 0");
        return true;
      }
      const double vh = v[0] / h;
#pragma omp simd
      for (int64_t i = 0; i < p.n; ++i) dx[i] += vh * d2p[i];
      if (dw) {
#pragma omp simd
        for (int64_t i = 0; i < p.n; ++i) dw[i] -= vh * d1p[i];
      }
      return true;
    });
  }
  const int64_t d = p.d;
  const VectorPoints points = ByCoordinate(p, ws);
  if (check && !InEnvelope(p.alpha, points.xmax, wmax)) return false;
  DispatchPenalty(p.kind, [&](auto kc) {
    constexpr PenaltyKind K = decltype(kc)::value;
    VectorSums S;
    VectorPass<K, true>(points, y, &S, ws);
    Eigen::MatrixXd H = S.M.selfadjointView<Eigen::Lower>();
    H.diagonal().array() += S.spsi;
    const Eigen::Map<const Eigen::VectorXd> vv(v, d);
    Eigen::VectorXd u;
    if (H.cwiseAbs().maxCoeff() == 0) {
      s->Set(kAllOutliers, "every point is beyond the penalty's reach (H = 0): gradient 0");
      return;
    }
    Eigen::LLT<Eigen::MatrixXd> llt(H);
    const double hmax = H.diagonal().cwiseAbs().maxCoeff();
    if (llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > std::sqrt(1e-10 * hmax)) {
      u = llt.solve(vv);
    } else {
      Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod;
      cod.setThreshold(1e-10);
      cod.compute(H);
      u = cod.solve(vv);
      s->Set(kNonRegular, "H is singular or ill-conditioned at the solution: minimum-norm gradient");
    }
    VectorVjp<K>(points, y, u.data(), dx, dw, ws);
  });
  return true;
}

}  // namespace ddn::pooling::internal
