// Robust pooling: validation, the objective, extreme scales and the entry points of pooling_solvers.h (the math
// and the guarantees are there). The solvers themselves are one file per concern (solver_parts.h lists them).
#include "nodes/pooling/pooling_solvers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/lane_sum.h"
#include "ddn/params.h"
#include "nodes/pooling/solver_parts.h"

namespace ddn::pooling {

using namespace internal;

namespace {

// Weighted mean, two-pass (the second pass removes the first one's rounding error).
double WeightedMeanScalar(const PoolingProblem& p) {
  const double W = TotalWeight(p);
  double s = 0;
  for (int64_t i = 0; i < p.n; ++i) s += Weight(p.w, i) * p.x[i];
  double m = s / W, c = 0;
  for (int64_t i = 0; i < p.n; ++i) c += Weight(p.w, i) * (p.x[i] - m);
  return m + c / W;
}

// ---- Extreme scales -----------------------------------------------------------------------------------------------
//
// Robust pooling is covariant under a joint scaling of the points and α, y(s·x; s·α) = s·y(x; α), and invariant
// under a scaling of the weights, y(x; c·w) = y(x; w). The passes compute z², u = (z/α)², α² and 1/α², which
// overflow or lose their precision to underflow when α, max|x|/α or the weights are far from 1 (z² overflows for
// |z| above 1.3e154). A problem inside the envelope below (every ordinary one) is solved as given; one outside it
// is solved on a copy rescaled by powers of two (exact): x' = x·2^-e with 2^e ≤ max|x| < 2^(e+1), α' = α·2^-e,
// w' = w·2^-e_w with max w' in [1, 2); then y = y'·2^e, dx = dx' and dw = dw'·2^(e−e_w). Two ends need more:
//   - α > 2^60·max|x|: every point is deep inside every penalty's quadratic region (u < 2^-120, where φ is ½z²
//     times a constant to double precision: 1 − exp(−u/2) = (u/2)(1 − u/4 + ...)), so α is replaced by
//     2^60·max|x|, which gives the same answer (the weighted mean) to rounding.
//   - max|x| > 2^450·α (2^450 ≈ 2.9e135): (z/α)² of the far points cannot be represented. Refused, InvalidInput.
constexpr double kQuadraticRegime = 0x1p60;
constexpr double kRefusedRatio = 0x1p450;

struct Rescaled {
  PoolingProblem q;    // x, w in the workspace (valid until the next Rescale with it)
  int x_exponent = 0;  // x = x'·2^x_exponent, y = y'·2^x_exponent
  int w_exponent = 0;  // w = w'·2^w_exponent
};

Rescaled Rescale(const PoolingProblem& p, PoolingWorkspace* workspace) {
  std::vector<double>&xs = workspace->scaled_x, &ws = workspace->scaled_w;
  Rescaled r;
  r.q = p;
  const int64_t size = p.n * p.d;
  double xmax = 0;
  for (int64_t i = 0; i < size; ++i) xmax = std::max(xmax, std::abs(p.x[i]));
  double alpha = p.alpha;
  if (xmax == 0) {
    alpha = 1;  // every point at 0: y = 0 whatever α is
  } else {
    alpha = std::min(alpha, kQuadraticRegime * xmax);
    if (xmax > kRefusedRatio * alpha) {
      throw InvalidInput("robust pooling: max|x| = " + FormatDouble(xmax) + " is more than 2^450 (about 2.9e135) " +
                         "times alpha = " + FormatDouble(p.alpha) + ": (x/alpha)^2 cannot be represented in double " +
                         "precision; use a larger alpha or centre x");
    }
    r.x_exponent = std::ilogb(xmax);
  }
  xs.resize(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) xs[i] = std::ldexp(p.x[i], -r.x_exponent);
  r.q.x = xs.data();
  r.q.alpha = std::ldexp(alpha, -r.x_exponent);
  if (p.w) {
    r.w_exponent = std::ilogb(MaxWeight(p));
    ws.resize(static_cast<size_t>(p.n));
    for (int64_t i = 0; i < p.n; ++i) ws[i] = std::ldexp(p.w[i], -r.w_exponent);
    r.q.w = ws.data();
  }
  return r;
}

// The solvers on a problem inside the envelope (or rescaled); lo, hi = min and max of x, lo < hi.
void SolveScalarScaled(const PoolingProblem& p, double lo, double hi, double* y, ProblemStatus* s,
                       const PoolingOptions& o, PoolingWorkspace* ws) {
  switch (p.kind) {
    case PenaltyKind::kQuadratic:
      *y = WeightedMeanScalar(p);
      s->residual = 0;
      return;
    case PenaltyKind::kPseudoHuber:
    case PenaltyKind::kHuber:
      return SolveScalarConvex(p, lo, hi, y, s, ws);
    case PenaltyKind::kTruncatedQuadratic:
      return SolveScalarTruncated(p, y, s, ws);
    case PenaltyKind::kWelsch:
    case PenaltyKind::kCauchy:
    case PenaltyKind::kGemanMcClure:
      return SolveScalarNonConvex(p, lo, hi, y, s, o, ws);
  }
}

// No answer whose optimality residual is far from zero is returned (the solvers reach ~1e-15; a residual above
// 1e-6 means a solve that did not converge).
// Not at a kink (kNonSmooth), where the residual uses one-sided derivatives: the truncated quadratic's mean of the
// inliers counts a point at |y − x_i| = α in, its φ' counts it out.
void RequireConverged(const PoolingProblem& p, const ProblemStatus& s) {
  if (s.residual > 1e-6 && !(s.flags & kNonSmooth)) {
    throw NumericalFailure("robust pooling (" + PenaltyName(p.kind) + ") did not converge: optimality residual " +
                           FormatDouble(s.residual) + " after " + std::to_string(s.iterations) + " iterations");
  }
}

}  // namespace

void ValidatePoolingProblem(const PoolingProblem& p, bool check_x_finite) {
  if (p.n < 1) throw InvalidInput("robust pooling needs at least one point (N = 0)");
  if (p.d < 1) throw InvalidInput("robust pooling needs D >= 1");
  if (!(p.alpha > 0) || !std::isfinite(p.alpha)) {
    throw InvalidInput("robust pooling: alpha must be a finite number > 0, got " + FormatDouble(p.alpha));
  }
  // x·0 sums to 0 iff every x is finite: a vectorised pass (ddn::Forward has checked already; direct callers
  // of the solvers have not), then the slow search only to name the index.
  if (check_x_finite && LaneSum(p.n * p.d, [&](int64_t i) { return p.x[i] * 0.0; }) != 0.0) {
    for (int64_t i = 0; i < p.n * p.d; ++i) {
      if (!std::isfinite(p.x[i])) {
        throw InvalidInput("input 'x' contains a non-finite value at index " + std::to_string(i));
      }
    }
  }
  if (p.w) {
    double total = 0;
    for (int64_t i = 0; i < p.n; ++i) {
      if (!std::isfinite(p.w[i])) {
        throw InvalidInput("input 'w' contains a non-finite value at index " + std::to_string(i));
      }
      if (p.w[i] < 0) {
        throw InvalidInput("input 'w' must be >= 0, got " + FormatDouble(p.w[i]) + " at index " + std::to_string(i));
      }
      total += p.w[i];
    }
    if (!(total > 0)) throw InvalidInput("input 'w' must not be all zero");
  }
}

double PoolingObjective(const PoolingProblem& p, const double* y) {
  const PenaltyEval pen(p.kind, p.alpha);
  double f = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    double z2 = 0;
    for (int64_t k = 0; k < p.d; ++k) z2 += (y[k] - p.x[i * p.d + k]) * (y[k] - p.x[i * p.d + k]);
    f += Weight(p.w, i) * pen.Phi(std::sqrt(z2));
  }
  return f;
}

void SolveScalarPool(const PoolingProblem& p, double* y, ProblemStatus* s, const PoolingOptions& o,
                     PoolingWorkspace* workspace) {
  SolveScalarPoolFolded(p, y, s, o, workspace, /*x_checked=*/true);
}

bool SolveScalarPoolFolded(const PoolingProblem& p, double* y, ProblemStatus* s, const PoolingOptions& o,
                           PoolingWorkspace* workspace, bool x_checked) {
  PoolingWorkspace local;
  PoolingWorkspace* ws = workspace ? workspace : &local;
  double lo, hi, sum;
  MinMaxSum(p.x, p.n, &lo, &hi, &sum);  // pooling_kernels.h
  if (!x_checked && !std::isfinite(sum)) return false;
  if (lo == hi) {  // every point at the same place (whatever the scale): y is that place
    *y = lo;
    s->residual = 0;
    return true;
  }
  if (InEnvelope(p.alpha, std::max(-lo, hi), p.w ? MaxWeight(p) : 1.0)) {
    SolveScalarScaled(p, lo, hi, y, s, o, ws);
  } else {
    const Rescaled r = Rescale(p, ws);
    double y_scaled = 0;
    SolveScalarScaled(r.q, std::ldexp(lo, -r.x_exponent), std::ldexp(hi, -r.x_exponent), &y_scaled, s, o, ws);
    *y = std::ldexp(y_scaled, r.x_exponent);
  }
  RequireConverged(p, *s);
  return true;
}

void SolveVectorPool(const PoolingProblem& p, double* y, ProblemStatus* s, const PoolingOptions& o, VectorStart* start,
                     PoolingWorkspace* workspace) {
  SolveVectorPoolFolded(p, y, s, o, start, workspace, /*x_checked=*/true);
}

bool SolveVectorPoolFolded(const PoolingProblem& p, double* y, ProblemStatus* s, const PoolingOptions& o,
                           VectorStart* start, PoolingWorkspace* workspace, bool x_checked) {
  PoolingWorkspace local;
  PoolingWorkspace* ws = workspace ? workspace : &local;
  if (start) *start = VectorStart{};
  const VectorPoints points = ByCoordinate(p, ws);
  if (!x_checked && !points.finite) return false;
  if (InEnvelope(p.alpha, points.xmax, p.w ? MaxWeight(p) : 1.0)) {
    SolveVectorScaled(points, y, s, o, start, ws);
  } else {
    const Rescaled r = Rescale(p, ws);
    const VectorPoints scaled = ByCoordinate(r.q, ws);  // overwrites `points` (no longer needed)
    SolveVectorScaled(scaled, y, s, o, start, ws);
    for (int64_t k = 0; k < p.d; ++k) y[k] = std::ldexp(y[k], r.x_exponent);
    if (start)
      for (double& v : start->y0) v = std::ldexp(v, r.x_exponent);
  }
  RequireConverged(p, *s);
  return true;
}

bool PoolingBackward(const PoolingProblem& p, const double* y, const double* v, double* dx, double* dw,
                     ProblemStatus* s, PoolingWorkspace* workspace, bool assign) {
  PoolingWorkspace local;
  PoolingWorkspace* ws = workspace ? workspace : &local;
  bool finite = true;
  if (BackwardScaled(p, y, v, dx, dw, s, /*check=*/true, assign, ws, &finite)) return finite;
  // Outside the envelope: the backward of the rescaled problem (see "Extreme scales").
  const Rescaled r = Rescale(p, ws);
  std::vector<double>&ys = ws->scaled_y, &dxs = ws->scaled_dx, &dws = ws->scaled_dw;
  ys.resize(static_cast<size_t>(p.d));
  for (int64_t k = 0; k < p.d; ++k) ys[k] = std::ldexp(y[k], -r.x_exponent);
  dxs.assign(static_cast<size_t>(p.n * p.d), 0.0);
  if (dw) dws.assign(static_cast<size_t>(p.n), 0.0);
  BackwardScaled(r.q, ys.data(), v, dxs.data(), dw ? dws.data() : nullptr, s, /*check=*/false, /*assign=*/false, ws,
                 &finite);
  for (int64_t i = 0; i < p.n * p.d; ++i) dx[i] = (assign ? 0.0 : dx[i]) + dxs[i];
  if (dw) {
    for (int64_t i = 0; i < p.n; ++i) dw[i] = (assign ? 0.0 : dw[i]) + std::ldexp(dws[i], r.x_exponent - r.w_exponent);
  }
  // Extreme scales only: the gradients' finiteness is looked at directly.
  double sum = 0;
  for (int64_t i = 0; i < p.n * p.d; ++i) sum += dx[i] * 0.0;
  if (dw)
    for (int64_t i = 0; i < p.n; ++i) sum += dw[i] * 0.0;
  return finite && sum == 0;
}

}  // namespace ddn::pooling
