// nodes/projection/projections.h: exact Euclidean projections onto Lp balls and spheres and the simplex,
// and their closed-form vector–Jacobian products.
//
// For x ∈ R^D and a radius r > 0 these compute
//
//   y(x, r) = argmin_y ½‖y − x‖²   subject to  y ∈ S(r),
//
// for the sets
//
//   simplex       {y : Σ_i y_i = r, y ≥ 0}
//   l1_sphere     {y : ‖y‖₁ = r}            l1_ball     {y : ‖y‖₁ ≤ r}
//   l2_sphere     {y : ‖y‖₂ = r}            l2_ball     {y : ‖y‖₂ ≤ r}
//   linf_sphere   {y : ‖y‖∞ = r}            linf_ball   {y : ‖y‖∞ ≤ r}
//
// Forward (all exact, no iterations to a tolerance):
//   simplex       y_i = max(x_i − τ, 0) with the threshold τ solving Σ_i max(x_i − τ, 0) = r. Every support
//                 element exceeds max_j x_j − r, so one pass finds the maximum (and each block of 16's maximum),
//                 a second looks only inside the blocks that can hold such a candidate, and the threshold is
//                 searched among the candidates alone, without sorting: Michelot's iteration (J. Optim. Theory
//                 Appl. 50, 1986) for a few dozen, Condat's algorithm (L. Condat, "Fast projection onto the
//                 simplex and the l1 ball", Math. Program. 158, 2016; expected O(D)) for more. Both end with τ
//                 computed from the identified support S = {i : y_i > 0} as τ = (Σ_S x_i − r)/|S|. The search
//                 runs on x_i − max x (exact for the candidates when r ≤ max x/2), so that y is in the set to
//                 rounding at the scale of r however far r is below the precision of max|x| (r = 1e-17,
//                 x = [1, 3, 2]: y = [0, 1e-17, 0]).
//   l1 sets       y = s ⊙ simplex(|x|, r) with s_i = sign(x_i) (sign(0) = +1) (Duchi et al., ICML 2008, §4),
//                 for the ball only when ‖x‖₁ > r (else y = x). For the L1 sphere from inside
//                 (‖x‖₁ < r) the same formula gives τ < 0, i.e. y = x + s (r − ‖x‖₁)/D: the projection
//                 onto the nearest facet {sᵀy = r} of the cross-polytope, which is the nearest point of the
//                 sphere because that facet's hyperplane is the closest one (maximal sᵀx) and the point
//                 stays in x's orthant.
//   l2 sets       y = r x/‖x‖ (sphere; ball when ‖x‖ > r, else y = x).
//   linf_ball     y_i = clamp(x_i, −r, r).
//   linf_sphere   the clamp when ‖x‖∞ ≥ r; from inside, the coordinate k of largest |x_k| moves to
//                 s_k r (the nearest face), the others stay.
//
// Backward, v = dL/dy (no D×D matrix is formed):
//   simplex       dx_i = [i ∈ S] (v_i − m),  m = Σ_S v_j/|S|;        dr = m.
//   l1 sets       dx_i = [i ∈ S] (v_i − s_i m), m = Σ_S s_j v_j/|S|;  dr = m   (S = {y_i ≠ 0}).
//   l2 sets       dx = (r/‖x‖)(v − u uᵀv), u = x/‖x‖;                 dr = uᵀv.
//   linf sets     dx_i = v_i on free coordinates, 0 on clamped/pushed ones; dr = Σ_clamped s_i v_i.
//   Inside a ball: dx = v, dr = 0.
//
// Awkward points (flags in ddn::ProblemStatus; the answer is always finite):
//   - On the boundary of a ball (‖x‖ = r, |x_i| = r for L∞, x_i = τ for the simplex and L1 sets, within
//     a relative 64ε): the constraint counts as active and the gradient is that of the outside piece
//     (the generalised-Jacobian element the generic engine also picks); kDegenerate (zero multiplier).
//   - x = 0 on the L2 sphere: y = r e₁, dx = 0, dr = v₁; kNonUnique and kNonRegular.
//   - L∞ sphere from inside with a tie for max |x_i|: the first such coordinate moves; kNonUnique.
//     From outside with a coordinate exactly at |x_i| = r while another reaches r too: kDegenerate.
//     y on an edge or corner of the L∞ sphere (two or more coordinates at ±r): kNonSmooth — the sphere
//     is not a smooth surface there; the derivative given is the clamp's (exact unless |x_i| = r).
//   - L1 sphere from inside with some x_i = 0: the sign of such y_i is a free choice (+); kNonUnique.
//
// Usage:
//   ProjectionSet set = ParseProjectionSet("l1_ball");
//   ProblemStatus status;
//   Project(set, x, D, r, y, &status);
//   ProjectVjp(set, x, y, D, r, v, dx, &dr);   // dx = vᵀ∂y/∂x, dr = vᵀ∂y/∂r (dr may be nullptr)
//
// Cost: memory-bound on long rows. Each function makes one or two passes over a row (which is in cache after the
// first), computing a store and all the sums it needs in the same pass, four coordinates at a time (AVX2 when the
// CPU has it, chosen at load time; SSE2 otherwise): the forward reads x and writes y (plus the threshold's one
// extra pass for the simplex and L1 sets), the backward reads y or x and v and writes dx. A second pass over a
// row in cache also asks the memory for the rows that follow those it reads (prefetch hints, never reads): in a
// batch tensor they are the next problem's, whose fetching then overlaps this problem's arithmetic.
//
// These functions are thread-safe (they keep per-thread scratch buffers) and allocation-free after the
// first call on a thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddn/status.h"

namespace ddn {
namespace projection {

enum class ProjectionSet { kSimplex, kL1Sphere, kL1Ball, kL2Sphere, kL2Ball, kLinfSphere, kLinfBall };

// "simplex", "l1_sphere", ...; ParseProjectionSet throws InvalidInput listing the valid names.
const char* ProjectionSetName(ProjectionSet set);
ProjectionSet ParseProjectionSet(const std::string& name);
std::vector<std::string> ProjectionSetNames();
// Spheres are not convex sets (the projection onto them can be non-unique).
bool IsConvex(ProjectionSet set);

// y = the projection of x (length dim ≥ 1) onto the set of radius r > 0. Sets flags on `status`
// (may be nullptr) as described above. Returns true if every x_i and y_i is finite; false if some may not be
// (y is then unspecified): the finiteness check folded into the passes over x and y (ddn/finiteness.h), which
// a sum that overflowed can also fail, so false means "look", e.g. with ddn::RecheckForward.
bool Project(ProjectionSet set, const double* x, int64_t dim, double radius, double* y, ProblemStatus* status);

// dx = vᵀ ∂y/∂x (every element written) and, if dradius is given, *dradius = vᵀ ∂y/∂r, at the y that
// Project returned for x. Returns true if every value of v, of what it reads of x and y (x for the L2 and L∞
// sets; y for the simplex and L1 sets, and for the L1 ball the leading values of x until their sum shows x outside
// the ball, or all of x) and of dx and dradius is finite; false if some may not be (as Project).
bool ProjectVjp(ProjectionSet set, const double* x, const double* y, int64_t dim, double radius, const double* v,
                double* dx, double* dradius);

// The simplex threshold τ: Σ_i max(u_i − τ, 0) = r with u_i = x_i (use_abs false) or |x_i| (true).
// Condat's algorithm; exposed for tests.
double SimplexThreshold(const double* x, int64_t dim, double radius, bool use_abs);

}  // namespace projection
}  // namespace ddn
