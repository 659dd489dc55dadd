// nodes/pooling/penalties.h: the robust penalties φ(z; α) of robust pooling.
//
// Robust pooling computes y = argmin_y Σ_i w_i φ(y − x_i; α) (scalar) or Σ_i w_i φ(‖y − x_i‖; α) (vector).
// The penalties, with u = (z/α)², α > 0 (docs/design.md §2 for the first five, which follow the reference library):
//
//   quadratic            ½z²                                 φ' = z             φ'' = 1
//   pseudo_huber         α²(√(1+u) − 1) = z²/(1 + √(1+u))    φ' = z/√(1+u)      φ'' = (1+u)^(−3/2)
//   huber                ½z² (|z| ≤ α), α(|z| − ½α) else     φ' = clamp(z,±α)   φ'' = [|z| ≤ α]
//   welsch               1 − exp(−z²/(2α²))                  φ' = z e/α²        φ'' = (1 − u) e/α²,  e = exp(−u/2)
//   truncated_quadratic  ½z² (|z| ≤ α), ½α² else             φ' = z [|z| < α]   φ'' = [|z| < α]
//   cauchy               ½α² log(1 + u)                      φ' = z/(1+u)       φ'' = (1 − u)/(1+u)²
//   geman_mcclure        ½z²/(1 + u)                         φ' = z/(1+u)²      φ'' = (1 − 3u)/(1+u)³
//
// cauchy is Ceres' CauchyLoss(α) applied to the squared residual, times ½ (Ceres' cost is ½ρ(s)).
// geman_mcclure is written in the form ½z²/(1 + z²/α²), which is quadratic near 0 (like all the others,
// φ''(0) = 1 except welsch, whose φ''(0) = 1/α²) and tends to ½α²; it is the form with φ = ½z² + O(z⁴) and
// not Barron's 2(z/α)²/((z/α)² + 4).
//
// One-sided choices at kinks: huber counts |z| = α as inside (φ'' = 1); truncated_quadratic counts |z| = α as
// outside (φ' = φ'' = 0). Nodes flag such points with kNonSmooth.
//
// Two faces:
//   - PenaltyOfSquare<T>(kind, s, α) = φ(√s; α), scalar-generic (ddn/scalar.h), for the generic Ceres path and
//     nested Jets. Written in s = z² so that it is smooth at z = 0 for Jets (no √ of 0 in the vector case);
//     Penalty<T>(kind, z, α) = PenaltyOfSquare(z·z).
//   - PenaltyDerivatives(kind, α) → a small struct of doubles evaluating φ, φ', φ'' and ψ = φ'/z (the IRLS
//     weight, finite at z = 0) for the fast paths.
//
// Shape facts used by the specialised solvers (pooling_solvers.h): every φ is even and nondecreasing in |z|;
// welsch, cauchy and geman_mcclure have φ'' even, decreasing on [0, z₂] and increasing on [z₂, ∞) towards
// ≤ 0 (z₂ = √3·α for welsch and cauchy, α for geman_mcclure); all penalties are concave in s = z² (so IRLS is
// a majorise–minimise descent method).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "ddn/error.h"
#include "ddn/fast_exp.h"
#include "ddn/scalar.h"

namespace ddn::pooling {

enum class PenaltyKind { kQuadratic, kPseudoHuber, kHuber, kWelsch, kTruncatedQuadratic, kCauchy, kGemanMcClure };

inline const std::vector<std::string>& PenaltyNames() {
  static const std::vector<std::string> names = {"quadratic",           "pseudo_huber", "huber",        "welsch",
                                                 "truncated_quadratic", "cauchy",       "geman_mcclure"};
  return names;
}

inline std::string PenaltyName(PenaltyKind kind) {
  return PenaltyNames()[static_cast<int>(kind)];
}

// Throws InvalidInput naming the known penalties.
inline PenaltyKind ParsePenalty(const std::string& name) {
  const auto& names = PenaltyNames();
  std::string known;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<PenaltyKind>(i);
    known += (i ? ", " : "") + names[i];
  }
  throw InvalidInput("unknown penalty '" + name + "' (known: " + known + ")");
}

// Convex penalties have a unique minimiser (up to flat pieces of huber) found by local methods.
inline bool IsConvex(PenaltyKind kind) {
  return kind == PenaltyKind::kQuadratic || kind == PenaltyKind::kPseudoHuber || kind == PenaltyKind::kHuber;
}
// Penalties whose φ is smooth (C²) everywhere.
inline bool IsSmooth(PenaltyKind kind) {
  return kind != PenaltyKind::kHuber && kind != PenaltyKind::kTruncatedQuadratic;
}

// φ(√s; α) for s = z² ≥ 0, in the scalar-generic dialect.
template <typename T>
T PenaltyOfSquare(PenaltyKind kind, const T& s, double alpha) {
  using std::exp;
  using std::log;
  using std::sqrt;
  const T one = Constant<T>(1.0), half = Constant<T>(0.5);
  const T a2 = Constant<T>(alpha * alpha);
  switch (kind) {
    case PenaltyKind::kQuadratic:
      return half * s;
    case PenaltyKind::kPseudoHuber:
      return s / (one + sqrt(one + s / a2));  // = α²(√(1 + s/α²) − 1) without cancellation
    case PenaltyKind::kHuber:
      if (Value(s) <= alpha * alpha) return half * s;
      return Constant<T>(alpha) * (sqrt(s) - Constant<T>(0.5 * alpha));
    case PenaltyKind::kWelsch:
      return one - exp(-s / Constant<T>(2.0 * alpha * alpha));
    case PenaltyKind::kTruncatedQuadratic:
      if (Value(s) < alpha * alpha) return half * s;
      return Constant<T>(0.5 * alpha * alpha) + Constant<T>(0.0) * s;  // keep s's derivative slots (zero)
    case PenaltyKind::kCauchy:
      return half * a2 * log(one + s / a2);
    case PenaltyKind::kGemanMcClure:
      return half * s / (one + s / a2);
  }
  return s;
}

template <typename T>
T Penalty(PenaltyKind kind, const T& z, double alpha) {
  return PenaltyOfSquare<T>(kind, z * z, alpha);
}

// 1 − exp(−t) for t ≥ 0 without cancellation, given e = exp(−t): a Taylor series for t < 0.05, else 1 − e.
// Both branches are computed (selects, not jumps) so that loops vectorise.
inline double OneMinusExpNeg(double t, double e) {
  double series = 1.0 / 40320.0;
  series = series * (-t) + 1.0 / 5040.0;
  series = series * (-t) + 1.0 / 720.0;
  series = series * (-t) + 1.0 / 120.0;
  series = series * (-t) + 1.0 / 24.0;
  series = series * (-t) + 1.0 / 6.0;
  series = series * (-t) + 0.5;
  series = series * (-t) + 1.0;
  series *= t;
  return t < 0.05 ? series : 1.0 - e;
}
inline double OneMinusExpNeg(double t) {
  return OneMinusExpNeg(t, ExpNonPositive(-t));
}

// e = exp(−t) for t ≥ 0, the bits of ExpNonPositive(−t) (from the same ExpNonPositiveParts), and 1 − e without
// cancellation from the same evaluation: when the reduction x = n·ln2 + r leaves n = 0 (t < ln2/2 ≈ 0.35), r = −t
// exactly and the polynomial is e = 1 + r·q(r), so 1 − e = −r·q(r) is one product (one rounding, no series of its own);
// otherwise e < 0.71 and 1 − e loses nothing. The welsch passes need both (φ = 1 − e, φ' ∝ e).
struct ExpAndComplement {
  double e, one_minus_e;
};
inline ExpAndComplement ExpNegWithComplement(double t) {
  const ExpParts x = ExpNonPositiveParts(-t);
  const double rq = x.r * x.q;
  const double e = (x.q * x.r + 1.0) * x.scale;  // ExpNonPositive(−t) (a fused multiply–add where it contracts)
  return {e, x.n == 0 ? -rq : 1.0 - e};
}

// φ, φ', φ'' and ψ = φ'(z)/z at one z (double only, for the fast paths).
struct PenaltyValues {
  double phi, d1, d2, psi;
};

// The penalty K at z (inv_a2 = 1/α²), as a template so that hot loops compile without a switch. With
// kPhi = false the value φ is not computed (left 0).
template <PenaltyKind K, bool kPhi = true>
inline PenaltyValues EvaluatePenalty(double z, double alpha, double inv_a2) {
  const double u = z * z * inv_a2;
  if constexpr (K == PenaltyKind::kQuadratic) {
    return {0.5 * z * z, z, 1.0, 1.0};
  } else if constexpr (K == PenaltyKind::kPseudoHuber) {
    const double q = std::sqrt(1.0 + u), iq = 1.0 / q;
    return {kPhi ? z * z / (1.0 + q) : 0.0, z * iq, iq * iq * iq, iq};
  } else if constexpr (K == PenaltyKind::kHuber) {
    // Branch-free (selects) so that loops over points vectorise.
    const double az = std::abs(z);
    const bool in = az <= alpha;
    return {in ? 0.5 * z * z : alpha * (az - 0.5 * alpha), in ? z : std::copysign(alpha, z), in ? 1.0 : 0.0,
            in ? 1.0 : alpha / (in ? 1.0 : az)};
  } else if constexpr (K == PenaltyKind::kWelsch) {
    if constexpr (kPhi) {
      const ExpAndComplement ec = ExpNegWithComplement(0.5 * u);
      const double e = ec.e;
      return {ec.one_minus_e, z * e * inv_a2, (1.0 - u) * e * inv_a2, e * inv_a2};
    } else {
      const double e = ExpNonPositive(-0.5 * u);
      return {0.0, z * e * inv_a2, (1.0 - u) * e * inv_a2, e * inv_a2};
    }
  } else if constexpr (K == PenaltyKind::kTruncatedQuadratic) {
    const bool in = std::abs(z) < alpha;
    return {in ? 0.5 * z * z : 0.5 * alpha * alpha, in ? z : 0.0, in ? 1.0 : 0.0, in ? 1.0 : 0.0};
  } else if constexpr (K == PenaltyKind::kCauchy) {
    const double i1 = 1.0 / (1.0 + u);
    return {kPhi ? 0.5 * alpha * alpha * std::log1p(u) : 0.0, z * i1, (1.0 - u) * i1 * i1, i1};
  } else {
    const double i1 = 1.0 / (1.0 + u);
    return {0.5 * z * z * i1, z * i1 * i1, (1.0 - 3.0 * u) * i1 * i1 * i1, i1 * i1};
  }
}

// ∂φ'/∂α of pseudo_huber at z: z³/(α² + z²)^{3/2} (robust regression learns α: nodes/regression/regression.h).
inline double PseudoHuberSlopeByAlpha(double z, double alpha) {
  const double t = alpha * alpha + z * z;
  return z * z * z / (t * std::sqrt(t));
}

// pseudo_huber with α a variable too (scalar-generic in both): α²(√(1 + s/α²) − 1) for s = z², as
// PenaltyOfSquare computes it.
template <typename T>
T PseudoHuberOfSquare(const T& s, const T& alpha) {
  using std::sqrt;
  const T one = Constant<T>(1.0);
  return s / (one + sqrt(one + s / (alpha * alpha)));
}

// Calls f(std::integral_constant<PenaltyKind, K>{}) for the runtime kind.
template <class F>
decltype(auto) DispatchPenalty(PenaltyKind kind, F&& f) {
  using K = PenaltyKind;
  switch (kind) {
    case K::kQuadratic:
      return f(std::integral_constant<K, K::kQuadratic>{});
    case K::kPseudoHuber:
      return f(std::integral_constant<K, K::kPseudoHuber>{});
    case K::kHuber:
      return f(std::integral_constant<K, K::kHuber>{});
    case K::kWelsch:
      return f(std::integral_constant<K, K::kWelsch>{});
    case K::kTruncatedQuadratic:
      return f(std::integral_constant<K, K::kTruncatedQuadratic>{});
    case K::kCauchy:
      return f(std::integral_constant<K, K::kCauchy>{});
    case K::kGemanMcClure:
      break;
  }
  return f(std::integral_constant<K, K::kGemanMcClure>{});
}

// Double-precision evaluation of one penalty. Cheap to copy; the switch is hoisted by the callers' templates.
struct PenaltyEval {
  PenaltyKind kind;
  double alpha;
  double inv_a2;  // 1/α²

  PenaltyEval(PenaltyKind k, double a) : kind(k), alpha(a), inv_a2(1.0 / (a * a)) {}

  PenaltyValues operator()(double z) const {
    return DispatchPenalty(kind, [&](auto k) { return EvaluatePenalty<decltype(k)::value>(z, alpha, inv_a2); });
  }
  double Phi(double z) const { return (*this)(z).phi; }
  double D1(double z) const { return (*this)(z).d1; }
  double D2(double z) const { return (*this)(z).d2; }

  // For the redescending smooth penalties (welsch, cauchy, geman_mcclure): where φ'' is smallest (z₂) and its
  // value there; φ'' decreases on [0, z₂] and increases after. Others: z₂ = 0, φ''(z₂) = φ''(0).
  double CurvatureMinimiser() const {
    switch (kind) {
      case PenaltyKind::kWelsch:
      case PenaltyKind::kCauchy:
        return std::sqrt(3.0) * alpha;
      case PenaltyKind::kGemanMcClure:
        return alpha;
      default:
        return 0.0;
    }
  }
  // min of φ'' over |z| ∈ [lo, hi] (0 ≤ lo ≤ hi) for the smooth redescending penalties.
  double MinCurvature(double lo, double hi) const {
    const double z2 = CurvatureMinimiser();
    if (lo <= z2 && z2 <= hi) return D2(z2);
    return std::min(D2(lo), D2(hi));
  }
};

}  // namespace ddn::pooling
