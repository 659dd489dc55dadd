// nodes/projection/ellipsoid.h: Euclidean projection onto an axis-aligned ellipsoid (solid or surface),
// by the secular equation, and its closed-form vector–Jacobian product.
//
// For x ∈ R^D and semi-axes a ∈ R^D (a_i > 0), with E = {y : Σ_i (y_i/a_i)² ≤ 1}:
//
//   solid     y = argmin_y ½‖y − x‖²  s.t.  Σ_i (y_i/a_i)² ≤ 1
//   surface   y = argmin_y ½‖y − x‖²  s.t.  Σ_i (y_i/a_i)² = 1
//
// Stationarity of the Lagrangian ½‖y − x‖² + (μ/2)(Σ (y_i/a_i)² − 1) gives
//
//   y_i(μ) = a_i² x_i / (a_i² + μ),
//
// and μ is the root of the secular equation  S(μ) = Σ_i (a_i x_i / (a_i² + μ))² = 1  on μ > −a_min²
// (μ ≥ 0 for the solid from outside, μ < 0 for the surface from inside; S is strictly decreasing there,
// so the root, when it exists, is unique and is the global minimiser: the nearest point of the surface).
// We solve q(μ) = S(μ)^(−1/2) = 1 instead, which is nearly linear in μ (exactly linear for a ball), by
// Newton's method safeguarded by bisection on the bracket
//
//   max(−a_min², a_min‖x‖ − a_max²)  ≤  μ  ≤  a_max‖x‖ − a_min²,
//
// to machine precision (typically 3–6 iterations).
//
// Special points (flags in ddn::ProblemStatus):
//   - the solid from inside (Σ(x_i/a_i)² < 1): y = x; on the surface (within 64ε): kDegenerate.
//   - the "hard case" of the surface (x_k = 0 on every shortest axis k and Σ_{i not shortest}
//     (a_i x_i / (a_i² − a_min²))² ≤ 1, e.g. x = 0): μ = −a_min², the point is not unique (±y_k):
//     y_k > 0 on the first shortest axis; kNonUnique and kNonRegular. No closed-form gradient there:
//     EllipsoidVjp returns false and the node uses the generic (minimum-norm) backward.
//
// Extreme scales: y(s·x; s·a) = s·y(x; a). Semi-axes outside [2^-200, 2^200] are rescaled by a power of two
// (exact); ‖x‖ is computed without overflow, so x may lie up to 2^1000 times a_max away. Semi-axes spanning
// a_max/a_min > 2^400, or x beyond 2^1000·a_max, are refused with InvalidInput (beyond double precision).
//
// Closed-form VJP (implicit differentiation of y_i(μ) and S(μ) = 1), with d_i = a_i² + μ,
// q = Σ_i y_i²/(a_i² d_i) and w = Σ_i v_i y_i/d_i:
//
//   dx_j = v_j a_j²/d_j − w y_j/(d_j q)
//   da_j = 2 v_j a_j x_j μ/d_j² − w a_j x_j² (μ − a_j²)/(d_j³ q)
//
// (and dx = v, da = 0 for the solid from inside).
#pragma once

#include <cstdint>

#include "ddn/status.h"

namespace ddn {
namespace projection {

struct EllipsoidSolution {
  double mu = 0;           // the multiplier (0 inside the solid)
  bool inside = false;     // solid ellipsoid and x inside it: y = x
  bool hard_case = false;  // see above
  int iterations = 0;      // Newton/bisection steps
};

// y = projection of x onto the ellipsoid with semi-axes a (all > 0; not checked here). Throws InvalidInput for
// scales beyond double precision (above).
EllipsoidSolution ProjectOntoEllipsoid(const double* x, const double* a, int64_t dim, bool surface, double* y,
                                       ProblemStatus* status);

// dx += vᵀ∂y/∂x, da += vᵀ∂y/∂a (either may be nullptr) at the y ProjectOntoEllipsoid returned.
// Returns false (and adds nothing) in the hard case, where y is not differentiable.
bool EllipsoidVjp(const double* x, const double* a, const double* y, int64_t dim, bool surface, const double* v,
                  double* dx, double* da);

}  // namespace projection
}  // namespace ddn
