#include "nodes/projection/projections.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ddn/error.h"
#include "ddn/lane_sum.h"
#include "ddn/params.h"

namespace ddn {
namespace projection {
namespace {

// Relative tolerance for "on the boundary" and "tied" (a few dozen roundings).
constexpr double kTieTolerance = 64 * std::numeric_limits<double>::epsilon();

constexpr ProjectionSet kAllSets[] = {ProjectionSet::kSimplex,    ProjectionSet::kL1Sphere,  ProjectionSet::kL1Ball,
                                      ProjectionSet::kL2Sphere,   ProjectionSet::kL2Ball,    ProjectionSet::kLinfSphere,
                                      ProjectionSet::kLinfBall};

void SetFlag(ProblemStatus* status, StatusFlag flag, const char* why) {
  if (status) status->Set(flag, why);
}

// ‖x‖₂ without overflow or underflow.
[[gnu::always_inline]] inline double L2Norm(const double* x, int64_t n) {
  double ss = LaneSum(n, [&](int64_t i) { return x[i] * x[i]; });
  if (std::isfinite(ss) && ss > 1e-280) return std::sqrt(ss);
  double mx = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::abs(x[i]));
  if (mx == 0) return 0;
  ss = LaneSum(n, [&](int64_t i) {
    const double t = x[i] / mx;
    return t * t;
  });
  return mx * std::sqrt(ss);
}

[[gnu::always_inline]] inline double MaxAbs(const double* x, int64_t n) {
  // Eight running maxima (one chain of max would wait on itself, as the sums in ddn/lane_sum.h).
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] = std::max(lanes[j], std::abs(x[i + j]));
  double m = 0;
  for (; i < n; ++i) m = std::max(m, std::abs(x[i]));
  for (double l : lanes) m = std::max(m, l);
  return m;
}

int64_t FirstArgMaxAbs(const double* x, int64_t n, double m) {
  for (int64_t i = 0; i < n; ++i)
    if (std::abs(x[i]) == m) return i;
  return 0;
}

// Condat's algorithm (Math. Program. 158, 2016) on the values c[0..n). `active` holds the current
// candidate support, whose running threshold is rho = (Σ active − r)/|active|; `waiting` holds earlier
// candidates that a large value displaced (they may rejoin). Then elements ≤ rho are removed until the
// support is consistent, and τ is recomputed exactly from it.
double CondatThreshold(const double* c, size_t n, double r) {
  thread_local std::vector<double> active, waiting;
  active.clear();
  waiting.clear();
  active.push_back(c[0]);
  double rho = c[0] - r;
  for (size_t i = 1; i < n; ++i) {
    const double ui = c[i];
    if (ui <= rho) continue;
    rho += (ui - rho) / static_cast<double>(active.size() + 1);
    if (rho > ui - r) {
      active.push_back(ui);
    } else {
      waiting.insert(waiting.end(), active.begin(), active.end());
      active.clear();
      active.push_back(ui);
      rho = ui - r;
    }
  }
  for (double w : waiting) {
    if (w > rho) {
      active.push_back(w);
      rho += (w - rho) / static_cast<double>(active.size());
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    size_t kept = 0;
    size_t count = active.size();
    for (size_t j = 0; j < active.size(); ++j) {
      const double w = active[j];
      if (w > rho || count == 1) {
        active[kept++] = w;
      } else {
        --count;
        rho += (rho - w) / static_cast<double>(count);
        changed = true;
      }
    }
    active.resize(kept);
  }
  double sum = 0;
  for (double w : active) sum += w;
  return (sum - r) / static_cast<double>(active.size());
}

// The simplex threshold τ for u_i = x_i or |x_i|, as top + shift: top = max_i u_i and shift = τ − top ∈ [−r, 0).
// Every support element satisfies u_i > top − r (the largest one is in the support with y ≤ r), so one pass that
// keeps the values above the running max − r (a superset of the final filter) leaves Condat only the candidates:
// for Gaussian x ∈ R^1024 and r = 1, a few dozen. The search runs on u_i − top, which is exact for every
// candidate when r ≤ top/2 (Sterbenz) and rounded at the scale of r otherwise, so that y_i = (u_i − top) − shift is
// accurate relative to r even when r is far below the precision of max|x| (x = [5e15, 0, 1e16], r = 1: y = e_3;
// u_i − τ computed directly would round τ at the scale of 1e16). If `l1` is given it receives ‖x‖₁ from the same
// pass.
struct ShiftedThreshold {
  double top = 0, shift = 0;
  double tau() const { return top + shift; }
};

template <bool kAbs>
ShiftedThreshold Threshold(const double* x, int64_t n, double r, double* l1 = nullptr) {
  thread_local std::vector<double> candidates;
  candidates.clear();
  double umax = -std::numeric_limits<double>::infinity(), sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double ui = kAbs ? std::abs(x[i]) : x[i];
    sum += std::abs(x[i]);
    if (ui - umax > -r) {
      candidates.push_back(ui);
      umax = std::max(umax, ui);
    }
  }
  if (l1) *l1 = sum;
  size_t kept = 0;
  for (double c : candidates) {
    const double shifted = c - umax;  // ≤ 0, and 0 for the largest
    if (shifted > -r) candidates[kept++] = shifted;
  }
  return {umax, CondatThreshold(candidates.data(), kept, r)};
}

// y = s ⊙ max(u − τ, 0) for the simplex (u = x, s = 1) or the L1 sets (u = |x|, s = sign x), with τ as top + shift
// (see Threshold).
template <bool kAbs>
[[gnu::always_inline]] inline void ProjectSimplexLike(const double* x, int64_t n, double r, ShiftedThreshold t,
                                                      double* y, ProblemStatus* status) {
  const double top = t.top, shift = t.shift;
  // "At the threshold" at the scale of r (the shifted coordinates are exact or rounded at that scale).
  const double tol = kTieTolerance * (std::abs(shift) + r);
  // Two passes over the (cached) row: a store inside the sum would keep it from vectorising (aliasing).
  for (int64_t i = 0; i < n; ++i) {
    const double yi = std::max(((kAbs ? std::abs(x[i]) : x[i]) - top) - shift, 0.0);
    y[i] = kAbs ? std::copysign(yi, x[i]) : yi;
  }
  const double degenerate = LaneSum(n, [&](int64_t i) {
    return static_cast<double>(std::abs(((kAbs ? std::abs(x[i]) : x[i]) - top) - shift) <= tol);
  });
  if (degenerate) {
    SetFlag(status, kDegenerate, "a coordinate sits exactly at the threshold (zero multiplier of y_i >= 0)");
  }
  if (kAbs && t.tau() < 0) {
    bool zero = false;
    for (int64_t i = 0; i < n; ++i) zero |= x[i] == 0;
    if (zero) {
      SetFlag(status, kNonUnique, "L1 sphere from inside with x_i = 0: the sign of y_i is a free choice (+)");
      for (int64_t i = 0; i < n; ++i)
        if (x[i] == 0) y[i] = std::abs(y[i]);  // x_i = −0.0 too: choose +
    }
  }
}

// dx = vᵀ∂y/∂x, dr = vᵀ∂y/∂r on the support S = {y_i ≠ 0}, signs s_i = sign(y_i). Branch-free
// (s_i ∈ {−1, 0, 1}, s_i² is the support indicator) so that the passes vectorise. For the L1 ball
// (`ball_radius` > 0) ‖x‖₁ is summed too, and inside the ball dx = v.
[[gnu::always_inline]] inline void SimplexLikeVjp(const double* x, const double* y, int64_t n, const double* v,
                                                  double* dx, double* dr, double ball_radius = 0) {
  // s_i = sign(y_i): Σ s_i v_i, |S| = Σ s_i², ‖x‖₁ (three clean passes over the cached row).
  auto sign = [&](int64_t i) { return static_cast<double>(y[i] > 0) - static_cast<double>(y[i] < 0); };
  const double sum = LaneSum(n, [&](int64_t i) { return sign(i) * v[i]; });
  const double count = LaneSum(n, [&](int64_t i) { return static_cast<double>(y[i] != 0); });
  const double l1 = ball_radius > 0 ? LaneSum(n, [&](int64_t i) { return std::abs(x[i]); }) : 0.0;
  if (ball_radius > 0 && l1 < ball_radius) {
    std::copy(v, v + n, dx);
    if (dr) *dr = 0;
    return;
  }
  const double m = count > 0 ? sum / count : 0.0;  // count = 0 cannot happen for r > 0
  for (int64_t i = 0; i < n; ++i) {
    const double s = static_cast<double>(y[i] > 0) - static_cast<double>(y[i] < 0);
    dx[i] = s * s * v[i] - s * m;
  }
  if (dr) *dr = m;
}

void CopyInto(const double* x, int64_t n, double* y) { std::copy(x, x + n, y); }

[[gnu::always_inline]] inline void ProjectL2(bool sphere, const double* x, int64_t n, double r, double* y,
                                             ProblemStatus* status) {
  const double norm = L2Norm(x, n);
  if (std::abs(norm - r) <= kTieTolerance * r && !sphere) {
    SetFlag(status, kDegenerate, "x is on the L2 sphere: the ball constraint is active with a zero multiplier");
  }
  if (!sphere && norm < r) {
    CopyInto(x, n, y);
    return;
  }
  if (norm == 0) {
    SetFlag(status, kNonUnique, "x = 0: every point of the L2 sphere is nearest; y = r e_1");
    SetFlag(status, kNonRegular, "x = 0 on the L2 sphere: y(x) is discontinuous; gradient wrt x set to 0");
    std::fill(y, y + n, 0.0);
    y[0] = r;
    return;
  }
  const double scale = r / norm;
  for (int64_t i = 0; i < n; ++i) y[i] = scale * x[i];
}

[[gnu::always_inline]] inline void L2Vjp(bool sphere, const double* x, int64_t n, double r, const double* v, double* dx,
                                         double* dr) {
  const double norm = L2Norm(x, n);
  if (!sphere && norm < r) {
    std::copy(v, v + n, dx);
    if (dr) *dr = 0;
    return;
  }
  if (norm == 0) {
    std::fill(dx, dx + n, 0.0);
    if (dr) *dr = v[0];
    return;
  }
  const double xv = LaneSum(n, [&](int64_t i) { return x[i] * v[i]; });
  const double uv = xv / norm;         // uᵀv, u = x/‖x‖
  const double scale = r / norm;       // r/‖x‖
  const double c = scale * uv / norm;  // (r/‖x‖)·uᵀv/‖x‖
  for (int64_t i = 0; i < n; ++i) dx[i] = scale * v[i] - c * x[i];
  if (dr) *dr = uv;
}

[[gnu::always_inline]] inline void ProjectLinf(bool sphere, const double* x, int64_t n, double r, double* y,
                                               ProblemStatus* status) {
  const double tol = kTieTolerance * r;
  if (sphere) {
    const double m = MaxAbs(x, n);
    if (m < r) {
      // From inside: push the (first) largest coordinate to the nearest face.
      const int64_t k = FirstArgMaxAbs(x, n, m);
      int64_t tied = 0;
      for (int64_t i = 0; i < n; ++i) tied += std::abs(x[i]) >= m - tol;
      if (tied > 1) {
        SetFlag(status, kNonUnique, "L-inf sphere from inside with a tie for max |x_i|: the first one moves");
      }
      CopyInto(x, n, y);
      y[k] = x[k] < 0 ? -r : r;
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(x[i], -r), r);
  const double at = LaneSum(n, [&](int64_t i) { return static_cast<double>(std::abs(std::abs(x[i]) - r) <= tol); });
  const double beyond =
      sphere ? LaneSum(n, [&](int64_t i) { return static_cast<double>(std::abs(x[i]) >= r - tol); }) : 0.0;
  if (sphere) {
    if (at > 0 && beyond > 1) {
      SetFlag(status, kDegenerate, "a coordinate is exactly at |x_i| = r: one-sided derivative (clamped)");
    }
    if (beyond > 1) {
      SetFlag(status, kNonSmooth, "y is on an edge or corner of the L-inf sphere; derivative of the clamp");
    }
  } else if (at > 0) {
    SetFlag(status, kDegenerate, "a coordinate is exactly at |x_i| = r: one-sided derivative (clamped)");
  }
}

[[gnu::always_inline]] inline void LinfVjp(bool sphere, const double* x, int64_t n, double r, const double* v,
                                           double* dx, double* dr) {
  if (sphere) {
    const double m = MaxAbs(x, n);
    if (m < r) {
      const int64_t k = FirstArgMaxAbs(x, n, m);
      std::copy(v, v + n, dx);
      dx[k] = 0;
      if (dr) *dr = x[k] < 0 ? -v[k] : v[k];
      return;
    }
  }
  // Free coordinates (|x_i| < r) pass v_i through; clamped ones (y_i = ±r) feed dL/dr.
  for (int64_t i = 0; i < n; ++i) dx[i] = static_cast<double>(std::abs(x[i]) < r) * v[i];
  const double sum = LaneSum(n, [&](int64_t i) {
    return static_cast<double>(std::abs(x[i]) >= r) * std::copysign(1.0, x[i]) * v[i];
  });
  if (dr) *dr = sum;
}

}  // namespace

const char* ProjectionSetName(ProjectionSet set) {
  switch (set) {
    case ProjectionSet::kSimplex: return "simplex";
    case ProjectionSet::kL1Sphere: return "l1_sphere";
    case ProjectionSet::kL1Ball: return "l1_ball";
    case ProjectionSet::kL2Sphere: return "l2_sphere";
    case ProjectionSet::kL2Ball: return "l2_ball";
    case ProjectionSet::kLinfSphere: return "linf_sphere";
    case ProjectionSet::kLinfBall: return "linf_ball";
  }
  return "?";
}

std::vector<std::string> ProjectionSetNames() {
  std::vector<std::string> names;
  for (ProjectionSet s : kAllSets) names.push_back(ProjectionSetName(s));
  return names;
}

ProjectionSet ParseProjectionSet(const std::string& name) {
  for (ProjectionSet s : kAllSets)
    if (name == ProjectionSetName(s)) return s;
  std::string known;
  for (const auto& n : ProjectionSetNames()) known += (known.empty() ? "" : ", ") + n;
  throw InvalidInput("unknown projection shape '" + name + "' (known: " + known + ")");
}

bool IsConvex(ProjectionSet set) {
  return set == ProjectionSet::kSimplex || set == ProjectionSet::kL1Ball || set == ProjectionSet::kL2Ball ||
         set == ProjectionSet::kLinfBall;
}

double SimplexThreshold(const double* x, int64_t dim, double radius, bool use_abs) {
  return use_abs ? Threshold<true>(x, dim, radius).tau() : Threshold<false>(x, dim, radius).tau();
}

DDN_TARGET_CLONES void Project(ProjectionSet set, const double* x, int64_t n, double r, double* y,
                               ProblemStatus* status) {
  if (n < 1) throw InvalidInput("projection of an empty vector");
  if (!(r > 0) || !std::isfinite(r)) {
    throw InvalidInput("projection radius must be finite and > 0, got " + FormatDouble(r));
  }
  switch (set) {
    case ProjectionSet::kSimplex:
      ProjectSimplexLike<false>(x, n, r, Threshold<false>(x, n, r), y, status);
      return;
    case ProjectionSet::kL1Ball: {
      double norm = 0;
      const ShiftedThreshold tau = Threshold<true>(x, n, r, &norm);
      if (std::abs(norm - r) <= kTieTolerance * r) {
        SetFlag(status, kDegenerate, "x is on the L1 sphere: the ball constraint is active with a zero multiplier");
      }
      if (norm < r) {
        CopyInto(x, n, y);
        return;
      }
      ProjectSimplexLike<true>(x, n, r, tau, y, status);
      return;
    }
    case ProjectionSet::kL1Sphere:
      ProjectSimplexLike<true>(x, n, r, Threshold<true>(x, n, r), y, status);
      return;
    case ProjectionSet::kL2Sphere:
    case ProjectionSet::kL2Ball:
      ProjectL2(set == ProjectionSet::kL2Sphere, x, n, r, y, status);
      return;
    case ProjectionSet::kLinfSphere:
    case ProjectionSet::kLinfBall:
      ProjectLinf(set == ProjectionSet::kLinfSphere, x, n, r, y, status);
      return;
  }
}

DDN_TARGET_CLONES void ProjectVjp(ProjectionSet set, const double* x, const double* y, int64_t n, double r,
                                  const double* v, double* dx, double* dr) {
  switch (set) {
    case ProjectionSet::kSimplex:
    case ProjectionSet::kL1Sphere:
      SimplexLikeVjp(x, y, n, v, dx, dr);
      return;
    case ProjectionSet::kL1Ball:
      SimplexLikeVjp(x, y, n, v, dx, dr, r);
      return;
    case ProjectionSet::kL2Sphere:
    case ProjectionSet::kL2Ball:
      L2Vjp(set == ProjectionSet::kL2Sphere, x, n, r, v, dx, dr);
      return;
    case ProjectionSet::kLinfSphere:
    case ProjectionSet::kLinfBall:
      LinfVjp(set == ProjectionSet::kLinfSphere, x, n, r, v, dx, dr);
      return;
  }
}

}  // namespace projection
}  // namespace ddn
