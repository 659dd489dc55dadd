#include "nodes/projection/ellipsoid.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn {
namespace projection {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kTieTolerance = 64 * kEps;

// In terms of the shift δ = μ + a_min² (so that d_i = a_i² + μ = (a_i² − a_min²) + δ keeps its relative
// precision near the pole δ → 0): S = Σ (a_i x_i / d_i)² and T = Σ (a_i x_i)² / d_i³ (S' = −2T).
void Secular(const double* x, const double* a, int64_t n, double a_min2, double delta, double* S, double* T) {
  double s = 0, t = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = (a[i] * a[i] - a_min2) + delta;
    const double e = a[i] * x[i] / d;
    s += e * e;
    t += e * e / d;
  }
  *S = s;
  *T = t;
}

// The multiplier and the case, without writing y (Project and Vjp share it, so they agree exactly).
EllipsoidSolution SolveSecular(const double* x, const double* a, int64_t n, bool surface, int64_t* shortest,
                               double* delta_out) {
  EllipsoidSolution sol;
  double a_min = a[0], a_max = a[0], xnorm2 = 0, inside = 0;
  *shortest = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (a[i] < a_min) {
      a_min = a[i];
      *shortest = i;
    }
    a_max = std::max(a_max, a[i]);
    xnorm2 += x[i] * x[i];
    const double t = x[i] / a[i];
    inside += t * t;
  }
  const double a_min2 = a_min * a_min;
  *delta_out = a_min2;  // μ = 0
  if (!surface && inside < 1) {
    sol.inside = true;
    return sol;
  }
  if (inside == 1) return sol;  // on the surface: μ = 0
  // Hard case: x vanishes on every shortest axis and S stays ≤ 1 up to the pole.
  bool pole = false;
  for (int64_t i = 0; i < n; ++i) pole |= (a[i] == a_min && x[i] != 0);
  if (!pole) {
    double s_pole = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (a[i] == a_min) continue;
      const double e = a[i] * x[i] / (a[i] * a[i] - a_min2);
      s_pole += e * e;
    }
    if (s_pole <= 1) {
      sol.mu = -a_min2;
      sol.hard_case = true;
      *delta_out = 0;
      return sol;
    }
  }
  // Bracket for δ: S(δ) ≥ 1 at lo, ≤ 1 at hi (see the header), then the side of μ = 0 (δ = a_min²).
  double xnorm = std::sqrt(xnorm2);
  if (!(xnorm2 <= 1e300)) {  // x far outside: Σ x_i² overflows long before ‖x‖ does
    double xmax = 0, ss = 0;
    for (int64_t i = 0; i < n; ++i) xmax = std::max(xmax, std::abs(x[i]));
    for (int64_t i = 0; i < n; ++i) ss += (x[i] / xmax) * (x[i] / xmax);
    xnorm = xmax * std::sqrt(ss);
  }
  // (Widened by the rounding error of the expressions, so that the root is never cut off.)
  double lo = std::max(0.0, a_min * xnorm - (a_max * a_max - a_min2) - 8 * kEps * (a_max * a_max + a_min * xnorm));
  double hi = std::max(a_max * xnorm * (1 + 8 * kEps), lo);
  if (inside > 1) {
    lo = std::max(lo, a_min2);  // outside: μ > 0
  } else {
    hi = std::min(hi, a_min2);  // surface from inside: μ < 0
  }
  // Newton on q(δ) = S^(−1/2) − 1 (increasing), safeguarded by the bracket [lo, hi].
  double delta = lo > 0 ? lo : 0.5 * hi;
  for (int it = 0; it < 200; ++it) {
    ++sol.iterations;
    double S, T;
    Secular(x, a, n, a_min2, delta, &S, &T);
    const double q = 1 / std::sqrt(S) - 1;
    if (q == 0) break;
    if (q < 0) {
      lo = std::max(lo, delta);
    } else {
      hi = std::min(hi, delta);
    }
    const double dq = T / (S * std::sqrt(S));  // q' = S^(−3/2) T
    double next = delta - q / dq;
    if (!(next > lo && next < hi) || !std::isfinite(next)) next = 0.5 * (lo + hi);
    const double step = std::abs(next - delta);
    delta = next;
    if (step <= 2 * kEps * delta || hi - lo <= 2 * kEps * delta) break;
  }
  *delta_out = delta;
  sol.mu = delta - a_min2;
  return sol;
}

EllipsoidSolution ProjectScaled(const double* x, const double* a, int64_t n, bool surface, double* y,
                                ProblemStatus* status) {
  int64_t shortest = 0;
  double delta = 0;
  EllipsoidSolution sol = SolveSecular(x, a, n, surface, &shortest, &delta);
  if (status) status->iterations += sol.iterations;
  if (sol.inside) {
    std::copy(x, x + n, y);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += (x[i] / a[i]) * (x[i] / a[i]);
    if (status && s >= 1 - kTieTolerance) {
      status->Set(kDegenerate, "x is on the ellipsoid: the constraint is active with a zero multiplier");
    }
    return sol;
  }
  if (sol.hard_case) {
    const double a_min2 = a[shortest] * a[shortest];
    double rest = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (a[i] * a[i] == a_min2) {
        y[i] = 0;
        continue;
      }
      y[i] = a[i] * a[i] * x[i] / (a[i] * a[i] - a_min2);
      rest += (y[i] / a[i]) * (y[i] / a[i]);
    }
    y[shortest] = a[shortest] * std::sqrt(std::max(0.0, 1 - rest));
    if (status) {
      status->Set(kNonUnique, "ellipsoid hard case (x = 0 on the shortest axis): y_k > 0 chosen on that axis");
      status->Set(kNonRegular, "ellipsoid hard case: the KKT matrix is singular");
    }
    return sol;
  }
  const double a_min2 = a[shortest] * a[shortest];
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * a[i] * x[i] / ((a[i] * a[i] - a_min2) + delta);
  if (status && !surface && std::abs(sol.mu) <= kTieTolerance * a[shortest] * a[shortest]) {
    status->Set(kDegenerate, "x is on the ellipsoid: the constraint is active with a zero multiplier");
  }
  return sol;
}

bool VjpScaled(const double* x, const double* a, const double* y, int64_t n, bool surface, const double* v, double* dx,
               double* da) {
  int64_t shortest = 0;
  double delta = 0;
  const EllipsoidSolution sol = SolveSecular(x, a, n, surface, &shortest, &delta);
  if (sol.hard_case) return false;
  if (sol.inside) {
    if (dx)
      for (int64_t i = 0; i < n; ++i) dx[i] += v[i];
    return true;
  }
  const double mu = sol.mu;
  const double a_min2 = a[shortest] * a[shortest];
  double q = 0, w = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = (a[i] * a[i] - a_min2) + delta;
    q += y[i] * y[i] / (a[i] * a[i] * d);
    w += v[i] * y[i] / d;
  }
  const double wq = w / q;
  for (int64_t j = 0; j < n; ++j) {
    const double aj2 = a[j] * a[j];
    const double d = (aj2 - a_min2) + delta;
    if (dx) dx[j] += v[j] * aj2 / d - wq * y[j] / d;
    // In ratios x_j/d and μ/d, each O(1) or less, so that nothing overflows for x far outside.
    const double xd = x[j] / d;
    if (da) da[j] += 2 * v[j] * a[j] * xd * (mu / d) - wq * a[j] * xd * xd * ((mu - aj2) / d);
  }
  return true;
}

// ---- Extreme scales ---------------------------------------------------------------------------------------------
// The projection is covariant under a joint scaling, y(s·x; s·a) = s·y(x; a), with the same derivatives. The
// secular equation squares the semi-axes (a_i², d_i³), so semi-axes outside [2^-200, 2^200] are rescaled by a power
// of two (exact) to a_max ∈ [1, 2); x may then reach 2^1000 (its norm is computed without overflow). Beyond that,
// refused with InvalidInput: semi-axes spanning more than 2^400 (a_min² would underflow next to a_max²), or x more
// than 2^1000 times a_max (δ ≈ a·‖x‖ and d_i³ in the VJP would leave the range of a double).
constexpr double kAxisEnvelope = 0x1p200;

// The power of two to divide x and a by (0: none). Throws InvalidInput as above.
int ScaleExponent(const double* x, const double* a, int64_t n) {
  double a_min = a[0], a_max = a[0], xmax = 0;
  for (int64_t i = 0; i < n; ++i) {
    a_min = std::min(a_min, a[i]);
    a_max = std::max(a_max, a[i]);
    xmax = std::max(xmax, std::abs(x[i]));
  }
  if (a_max > 0x1p400 * a_min) {
    throw InvalidInput("project_ellipsoid: the semi-axes span a_max/a_min = " + FormatDouble(a_max / a_min) +
                       ", more than 2^400 (about 2.6e120): their squares cannot be compared in double precision");
  }
  const int e = (a_max > kAxisEnvelope || a_min < 1 / kAxisEnvelope) ? std::ilogb(a_max) : 0;
  if (std::ldexp(xmax, -e) > 0x1p1000) {
    throw InvalidInput("project_ellipsoid: max|x| = " + FormatDouble(xmax) + " is more than 2^1000 times the largest " +
                       "semi-axis " + FormatDouble(a_max) + ": beyond double precision");
  }
  return e;
}

// Scaled copies of x and a (thread-local buffers) when e ≠ 0.
void ScaledCopies(const double* x, const double* a, int64_t n, int e, std::vector<double>* xs,
                  std::vector<double>* as) {
  xs->resize(static_cast<size_t>(n));
  as->resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    (*xs)[i] = std::ldexp(x[i], -e);
    (*as)[i] = std::ldexp(a[i], -e);
  }
}

}  // namespace

EllipsoidSolution ProjectOntoEllipsoid(const double* x, const double* a, int64_t n, bool surface, double* y,
                                       ProblemStatus* status) {
  const int e = ScaleExponent(x, a, n);
  if (e == 0) return ProjectScaled(x, a, n, surface, y, status);
  thread_local std::vector<double> xs, as;
  ScaledCopies(x, a, n, e, &xs, &as);
  EllipsoidSolution sol = ProjectScaled(xs.data(), as.data(), n, surface, y, status);
  for (int64_t i = 0; i < n; ++i) y[i] = std::ldexp(y[i], e);
  sol.mu = std::ldexp(sol.mu, 2 * e);
  return sol;
}

bool EllipsoidVjp(const double* x, const double* a, const double* y, int64_t n, bool surface, const double* v,
                  double* dx, double* da) {
  const int e = ScaleExponent(x, a, n);
  if (e == 0) return VjpScaled(x, a, y, n, surface, v, dx, da);
  thread_local std::vector<double> xs, as, ys;
  ScaledCopies(x, a, n, e, &xs, &as);
  ys.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ys[i] = std::ldexp(y[i], -e);
  return VjpScaled(xs.data(), as.data(), ys.data(), n, surface, v, dx, da);  // dy/dx, dy/da are scale-free
}

}  // namespace projection
}  // namespace ddn
