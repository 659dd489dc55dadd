// nodes/pooling/pooling_kernels.h: the loops over points of the robust pooling solvers, and their SIMD dispatch
// (internal to the pooling family: pooling_solvers.cc, scalar_*.cc, vector_multistart.cc, pooling_backward.cc).
//
// What. Every solver of pooling_solvers.h spends its time in a few passes over the N points at a trial y:
//   ScalarPass        scalar: f = Σ w φ(y − x_i) (optional), f' = Σ w φ', f'' = Σ w φ'', Σ w |φ'|, Σ w ψ
//                     (ScalarNewtonPass: f' and f'' only)
//   ScalarCurvatures  scalar backward: w_i φ''_i and φ'_i stored per point, Σ w φ'', Σ |w φ''|, max |y − x_i|
//   VectorPass        vector: f, g = Σ w ψ r_i, the lower triangle of M = Σ w (φ'' − ψ)/‖r‖² r rᵀ (optional),
//                     Σ w ψ, Σ w |φ'|, Σ w (|ψ| + |φ''|) with r_i = y − x_i (then ∇f = g, ∇²f = M + (Σ w ψ) I)
//   SampleObjective   vector: f on a stride sample (scoring the candidate starts)
// where ψ = φ'(z)/z (the IRLS weight, penalties.h). Each loop is written once, as an always-inline template over
// the penalty, and compiled twice: a baseline (SSE2) copy and an AVX2+FMA copy (gnu::target), so that the same
// source vectorises 2 or 4 wide; the copy is chosen at run time by ddn::UseAvx2() (ddn/simd.h: the CPU, and
// DDN_DISABLE_AVX2=1 in the environment forces the baseline; the tests run both). The AVX2 copies keep their own
// target, avx2+fma (a subset of the x86-64-v3 level that UseAvx2() checks). The copies agree to rounding
// (summation order, fused multiply–adds); each is deterministic. The files that include this header are compiled
// with -fno-math-errno -fno-trapping-math (CMakeLists.txt) so that sqrt and the selects vectorise; IEEE results
// are unchanged.
//
// Also here: the optimality residual of pooling_solvers.h (ScaledResidual), the weights' helpers, and the
// envelope of scales inside which the passes neither overflow nor underflow (InEnvelope; "Extreme scales" in
// pooling_solvers.cc).
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ddn/simd.h"
#include "nodes/pooling/penalties.h"
#include "nodes/pooling/pooling_solvers.h"
#include "nodes/pooling/pooling_workspace.h"

namespace ddn::pooling::internal {

constexpr double kEps = std::numeric_limits<double>::epsilon();

inline double Weight(const double* w, int64_t i) {
  return w ? w[i] : 1.0;
}

inline double TotalWeight(const PoolingProblem& p) {
  if (!p.w) return static_cast<double>(p.n);
  double s = 0;
  for (int64_t i = 0; i < p.n; ++i) s += p.w[i];
  return s;
}

inline double MaxWeight(const PoolingProblem& p) {
  double m = 0;
  for (int64_t i = 0; i < p.n; ++i) m = std::max(m, p.w[i]);
  return m;
}

// α, x (through max|x|, or an upper bound of it) and the weights (max w; 1 without weights) within 2^±200 of
// each other and of 1, where the passes neither overflow nor underflow ("Extreme scales", pooling_solvers.cc).
constexpr double kEnvelope = 0x1p200;
inline bool InEnvelope(double alpha, double xmax, double wmax) {
  return alpha >= 1 / kEnvelope && alpha <= kEnvelope &&
         (xmax == 0 || (xmax >= alpha / kEnvelope && xmax <= alpha * kEnvelope)) && wmax >= 1 / kEnvelope &&
         wmax <= kEnvelope;
}

// |f'| / max(Σ w|φ'|, 1e-6·|f''|·(max|x| + α)): the optimality residual of pooling_solvers.h. The second term
// matters only when the points' pulls are themselves tiny (every other point far beyond a redescending penalty's
// reach, or a single inlier): |f'| of a y exact to rounding is then of the order of |f''|·ε·(max|x| + α) (the
// differences y − x_i are rounded at the scale of the data), and the residual stays near 1e-10 instead of O(1).
// `scale` is max|x| + α; the residual is |f'| / Σ w|φ'| whenever that sum is the larger.
inline double ScaledResidual(double g, double gabs, double curvature = 0, double scale = 0) {
  const double denominator = std::max(gabs, 1e-6 * std::abs(curvature) * scale);
  return denominator > 0 ? std::abs(g) / denominator : 0.0;
}

// ---- Scalar passes ------------------------------------------------------------------------------------------

struct ScalarSums {
  double f = 0;     // Σ w φ
  double g = 0;     // Σ w φ'
  double h = 0;     // Σ w φ''
  double gabs = 0;  // Σ w |φ'|
  double spsi = 0;  // Σ w ψ
};

// Welsch (φ = 1 − e, φ' = z e/α², φ'' = (1 − z²/α²) e/α², ψ = e/α², e = exp(−z²/(2α²))) has a loop of its own:
// the common factor 1/α² is taken out of the sums (two multiplies fewer per point: −11 % per pass, measured), and
// f = Σ w (1 − e_i) is Σ w − Σ w e_i, from a sum the pass forms anyway, without the complement 1 − e per point (a
// quarter of the pass). Its error is a few ulps of Σ w rather than of f, which matters only for an f far below
// Σ w (every point within a small fraction of α of y); the solvers compare f values to 1e-12·(|f| + Σw·φ(α)), far
// above it.
template <bool kPhi, bool kWeighted, bool kLean>
[[gnu::always_inline]] inline ScalarSums WelschLoop(const double* x, const double* w, int64_t n, double y,
                                                    double inv_a2) {
  const double c = -0.5 * inv_a2;
  double wsum = 0, g = 0, h = 0, gabs = 0, se = 0;
#pragma omp simd reduction(+ : wsum, g, h, gabs, se)
  for (int64_t i = 0; i < n; ++i) {
    const double z = y - x[i], zz = z * z, e = ExpNonPositive(c * zz);
    const double wi = kWeighted ? w[i] : 1.0;
    g += wi * z * e;
    h += wi * (1.0 - zz * inv_a2) * e;
    if (!kLean) {
      if (kPhi && kWeighted) wsum += wi;
      gabs += wi * std::abs(z) * e;
      se += wi * e;
    }
  }
  const double f = kPhi && !kLean ? (kWeighted ? wsum : static_cast<double>(n)) - se : 0.0;
  return {f, g * inv_a2, h * inv_a2, gabs * inv_a2, se * inv_a2};
}

template <PenaltyKind K, bool kPhi, bool kWeighted, bool kLean = false>
[[gnu::always_inline]] inline ScalarSums ScalarLoop(const double* x, const double* w, int64_t n, double y, double alpha,
                                                    double inv_a2) {
  if constexpr (K == PenaltyKind::kWelsch) {
    return WelschLoop<kPhi, kWeighted, kLean>(x, w, n, y, inv_a2);
  } else {
    double f = 0, g = 0, h = 0, gabs = 0, spsi = 0;
#pragma omp simd reduction(+ : f, g, h, gabs, spsi)
    for (int64_t i = 0; i < n; ++i) {
      const PenaltyValues v = EvaluatePenalty<K, kPhi>(y - x[i], alpha, inv_a2);
      const double wi = kWeighted ? w[i] : 1.0;
      if (kPhi) f += wi * v.phi;
      g += wi * v.d1;
      h += wi * v.d2;
      if (!kLean) {
        gabs += wi * std::abs(v.d1);
        spsi += wi * v.psi;
      }
    }
    return {f, g, h, gabs, spsi};
  }
}

template <PenaltyKind K, bool kPhi, bool kWeighted, bool kLean = false>
ScalarSums ScalarPassBaseline(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2) {
  return ScalarLoop<K, kPhi, kWeighted, kLean>(x, w, n, y, alpha, inv_a2);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K, bool kPhi, bool kWeighted, bool kLean = false>
[[gnu::target("avx2,fma")]] ScalarSums ScalarPassAvx2(const double* x, const double* w, int64_t n, double y,
                                                      double alpha, double inv_a2) {
  return ScalarLoop<K, kPhi, kWeighted, kLean>(x, w, n, y, alpha, inv_a2);
}
#endif

template <PenaltyKind K, bool kPhi, bool kWeighted, bool kLean = false>
ScalarSums ScalarPassT(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2) {
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) return ScalarPassAvx2<K, kPhi, kWeighted, kLean>(x, w, n, y, alpha, inv_a2);
#endif
  return ScalarPassBaseline<K, kPhi, kWeighted, kLean>(x, w, n, y, alpha, inv_a2);
}

// The sums at y; with kPhi = false, f is not computed (0).
template <PenaltyKind K, bool kPhi>
ScalarSums ScalarPass(const PoolingProblem& p, double y) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  if (p.w) return ScalarPassT<K, kPhi, true>(p.x, p.w, p.n, y, p.alpha, inv_a2);
  return ScalarPassT<K, kPhi, false>(p.x, p.w, p.n, y, p.alpha, inv_a2);
}

// f' and f'' only (a Newton step; f, Σ w|φ'| and Σ w ψ are left 0): a sixth less arithmetic than ScalarPass.
template <PenaltyKind K>
ScalarSums ScalarNewtonPass(const PoolingProblem& p, double y) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  if (p.w) return ScalarPassT<K, false, true, true>(p.x, p.w, p.n, y, p.alpha, inv_a2);
  return ScalarPassT<K, false, false, true>(p.x, p.w, p.n, y, p.alpha, inv_a2);
}

// The backward's pass: d2[i] = w_i φ''(y − x_i), d1[i] = φ'(y − x_i) (if d1 is not null), *h = Σ d2, *habs = Σ |d2|,
// *zmax = max |y − x_i| (for the check of the scale envelope). For welsch, d1, d2, h and habs leave out the factor
// 1/α² that all four have in common (as in WelschLoop), which the backward's uses (v/h·d2_i, v/h·d1_i, h against
// habs) do not see.
struct CurvatureSums {
  double h = 0, habs = 0, zmax = 0;
  double zsum = 0;  // Σ (y − x_i): finite iff y and every x_i are (or an overflow; ddn/finiteness.h)
};

template <PenaltyKind K, bool kWeighted, bool kD1>
[[gnu::always_inline]] inline CurvatureSums CurvatureLoop(const double* x, const double* w, int64_t n, double y,
                                                          double alpha, double inv_a2, double* d1, double* d2) {
  double h = 0, habs = 0, zmax = 0, zsum = 0;
#pragma omp simd reduction(+ : h, habs, zsum) reduction(max : zmax)
  for (int64_t i = 0; i < n; ++i) {
    const double z = y - x[i];
    zsum += z;
    double wd2;
    if constexpr (K == PenaltyKind::kWelsch) {
      const double zz = z * z, e = ExpNonPositive(-0.5 * inv_a2 * zz);
      wd2 = (kWeighted ? w[i] : 1.0) * ((1.0 - zz * inv_a2) * e);  // α² w φ''
      if (kD1) d1[i] = z * e;                                      // α² φ'
    } else {
      const PenaltyValues v = EvaluatePenalty<K, false>(z, alpha, inv_a2);
      wd2 = (kWeighted ? w[i] : 1.0) * v.d2;
      if (kD1) d1[i] = v.d1;
    }
    d2[i] = wd2;
    h += wd2;
    habs += std::abs(wd2);
    zmax = std::max(zmax, std::abs(z));
  }
  return {h, habs, zmax, zsum};
}

template <PenaltyKind K, bool kWeighted, bool kD1>
CurvatureSums CurvatureBaseline(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2,
                                double* d1, double* d2) {
  return CurvatureLoop<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K, bool kWeighted, bool kD1>
[[gnu::target("avx2,fma")]] CurvatureSums CurvatureAvx2(const double* x, const double* w, int64_t n, double y,
                                                        double alpha, double inv_a2, double* d1, double* d2) {
  return CurvatureLoop<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
}
#endif

template <PenaltyKind K, bool kWeighted, bool kD1>
CurvatureSums CurvatureT(const double* x, const double* w, int64_t n, double y, double alpha, double inv_a2, double* d1,
                         double* d2) {
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) return CurvatureAvx2<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
#endif
  return CurvatureBaseline<K, kWeighted, kD1>(x, w, n, y, alpha, inv_a2, d1, d2);
}

template <PenaltyKind K>
CurvatureSums ScalarCurvatures(const PoolingProblem& p, double y, double* d1, double* d2) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  if (p.w && d1) return CurvatureT<K, true, true>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
  if (p.w) return CurvatureT<K, true, false>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
  if (d1) return CurvatureT<K, false, true>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
  return CurvatureT<K, false, false>(p.x, p.w, p.n, y, p.alpha, inv_a2, d1, d2);
}

// ---- Vector passes ------------------------------------------------------------------------------------------

// The penalty of a vector residual from its squared length zz = ‖r‖² (inv_a2 = 1/α²): φ, ψ = φ'/z, φ'' and the
// coefficient c = (φ'' − ψ)/z² of the Hessian's r rᵀ term, in closed forms that need no √zz (except huber's
// ψ = α/z) and no division by zz: c = −ψ³/α² (pseudo_huber, ψ = (1+u)^(−1/2)), −ψ/α² (welsch), −2ψ²/α² (cauchy),
// −4(1+u)^(−3)/α² (geman_mcclure), 0 (quadratic, truncated quadratic, huber inside α), −ψ/z² (huber outside).
// The forms have no cancellation at small z (φ'' − ψ computed as a difference loses the relative precision
// of c there). |φ'| = √zz·ψ when a pass needs it. The same formulas as EvaluatePenalty (penalties.h) otherwise.
struct SquaredPenaltyValues {
  double phi, psi, d2, c;
};

template <PenaltyKind K>
inline SquaredPenaltyValues PenaltyOfSquaredLength(double zz, double alpha, double inv_a2) {
  const double u = zz * inv_a2;
  if constexpr (K == PenaltyKind::kQuadratic) {
    return {0.5 * zz, 1.0, 1.0, 0.0};
  } else if constexpr (K == PenaltyKind::kPseudoHuber) {
    const double q = std::sqrt(1.0 + u), iq = 1.0 / q, iq3 = iq * iq * iq;
    return {zz / (1.0 + q), iq, iq3, -iq3 * inv_a2};
  } else if constexpr (K == PenaltyKind::kHuber) {
    // Branch-free (selects) so that loops over points vectorise.
    const double z = std::sqrt(zz);
    const bool in = z <= alpha;
    const double psi = in ? 1.0 : alpha / (in ? 1.0 : z);
    return {in ? 0.5 * zz : alpha * (z - 0.5 * alpha), psi, in ? 1.0 : 0.0, in ? 0.0 : -psi / (in ? 1.0 : zz)};
  } else if constexpr (K == PenaltyKind::kWelsch) {
    const ExpAndComplement ec = ExpNegWithComplement(0.5 * u);
    const double psi = ec.e * inv_a2;
    return {ec.one_minus_e, psi, (1.0 - u) * psi, -psi * inv_a2};
  } else if constexpr (K == PenaltyKind::kTruncatedQuadratic) {
    const bool in = zz < alpha * alpha;
    return {in ? 0.5 * zz : 0.5 * alpha * alpha, in ? 1.0 : 0.0, in ? 1.0 : 0.0, 0.0};
  } else if constexpr (K == PenaltyKind::kCauchy) {
    const double i1 = 1.0 / (1.0 + u);
    return {0.5 * alpha * alpha * std::log1p(u), i1, (1.0 - u) * i1 * i1, -2.0 * i1 * i1 * inv_a2};
  } else {
    const double i1 = 1.0 / (1.0 + u), i3 = i1 * i1 * i1;
    return {0.5 * zz * i1, i1 * i1, (1.0 - 3.0 * u) * i3, -4.0 * i3 * inv_a2};
  }
}

// The points of a vector problem stored by coordinate (D rows of N, a copy made once per problem in the
// workspace): the passes then run over contiguous memory, vectorised across points.
struct VectorPoints {
  const PoolingProblem* problem = nullptr;
  const double* cols = nullptr;  // cols[k·N + i] = x_i[k]
  double xmax = 0;               // max |x_i[k]|
  bool finite = true;            // every x_i[k] is finite (else xmax and the solvers' sums mean nothing)
};

// Fills ws->cols (the previous contents are overwritten) and points into it.
VectorPoints ByCoordinate(const PoolingProblem& p, PoolingWorkspace* ws);

// The lower median of each coordinate over the stride sample x_0, x_stride, x_2·stride, … of `count` ≤ 128 points
// (x row-major with d coordinates): median[k] is the ((count − 1)/2)-th smallest, exactly SelectKth's value. Eight
// coordinates at a time: the sample in single precision sorted by a network across the lanes, then the one point
// whose float is the float median gives the double (a tie in float falls back to SelectKth on the doubles).
// scratch: 2·count values. On (64, 256, 8) 1.0 µs a problem instead of eight SelectKth's 2.4 µs.
void SampleMedians(const double* x, int64_t d, int64_t stride, int64_t count, double* median, double* scratch);

// The raw sums of one pass (the lower triangle of M only).
struct VectorPassOut {
  double f, spsi, gabs, hsum;
};

// One pass over the points in blocks of kVectorBlock: residuals R = y − x (by coordinate), the penalty of every
// ‖r_i‖, then g = Σ wψ r and the lower triangle of M = Σ c r rᵀ as dot products over the block's points. Every
// loop runs over contiguous points. A Hessian pass (kHessian) leaves gabs at 0: the local solves use it only
// through the residual, which is taken from a gradient pass.
constexpr int64_t kVectorBlock = 256;

// Σ_j a_j b_j over one block, in 16 interleaved partial sums added pairwise at the end: a single running sum is
// one chain of dependent additions (4 cycles each), and the D(D+1)/2 + D dot products of a Hessian pass were
// bound by that latency; 16 lanes compile to four independent vector accumulators (AVX2) or eight (SSE2).
// The order of the additions depends on n only: deterministic.
[[gnu::always_inline]] inline double BlockDot(const double* a, const double* b, int64_t n) {
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int t = 0; t < kLanes; ++t) acc[t] += a[j + t] * b[j + t];
  double tail = 0;
  for (; j < n; ++j) tail += a[j] * b[j];
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int t = 0; t < width; ++t) acc[t] += acc[t + width];
  return acc[0] + tail;
}

// Four doubles as one value (GCC vector extension): one AVX2 register in the AVX2 copies, two SSE2 registers in
// the baseline copies. Never passed to or returned from a function (that ABI differs between the copies).
typedef double V4 __attribute__((vector_size(32)));
#define DDN_LOAD_V4(name, address) \
  V4 name;                         \
  __builtin_memcpy(&name, address, sizeof(V4))

typedef int64_t I4 __attribute__((vector_size(32)));

// min, max and Σ of x[0..n): the scalar solvers' first pass (their range, and a sum that is finite iff every x_i is,
// up to overflow: ddn/finiteness.h). Eight values per step in two pairs of vectors: a plain loop of minsd, maxsd and
// addsd is one chain of dependent additions (4 cycles per point), which GCC does not vectorise here; this runs at
// the speed memory delivers x. With a NaN in x, lo and hi are unspecified and the sum is NaN.
[[gnu::always_inline]] inline void MinMaxSumLoop(const double* x, int64_t n, double* lo, double* hi, double* sum) {
  double a = x[0], b = x[0], t = 0;
  int64_t i = 0;
  if (n >= 8) {
    DDN_LOAD_V4(mn0, x);
    DDN_LOAD_V4(mn1, x + 4);
    V4 mx0 = mn0, mx1 = mn1, s0 = mn0, s1 = mn1;
    for (i = 8; i + 8 <= n; i += 8) {
      DDN_LOAD_V4(v0, x + i);
      DDN_LOAD_V4(v1, x + i + 4);
      mn0 = v0 < mn0 ? v0 : mn0;
      mn1 = v1 < mn1 ? v1 : mn1;
      mx0 = v0 > mx0 ? v0 : mx0;
      mx1 = v1 > mx1 ? v1 : mx1;
      s0 += v0;
      s1 += v1;
    }
    for (int k = 0; k < 4; ++k) {
      a = std::min({a, mn0[k], mn1[k]});
      b = std::max({b, mx0[k], mx1[k]});
    }
    const V4 s = s0 + s1;
    t = (s[0] + s[1]) + (s[2] + s[3]);
  }
  for (; i < n; ++i) {
    a = std::min(a, x[i]);
    b = std::max(b, x[i]);
    t += x[i];
  }
  *lo = a;
  *hi = b;
  *sum = t;
}

inline void MinMaxSumBaseline(const double* x, int64_t n, double* lo, double* hi, double* sum) {
  MinMaxSumLoop(x, n, lo, hi, sum);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
[[gnu::target("avx2,fma")]] inline void MinMaxSumAvx2(const double* x, int64_t n, double* lo, double* hi, double* sum) {
  MinMaxSumLoop(x, n, lo, hi, sum);
}
#endif

inline void MinMaxSum(const double* x, int64_t n, double* lo, double* hi, double* sum) {
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) return MinMaxSumAvx2(x, n, lo, hi, sum);
#endif
  MinMaxSumBaseline(x, n, lo, hi, sum);
}

// rows[t][e] = in[e][t]: a 4 × 4 transpose in registers (unpacks and lane permutes with AVX2, pairs of SSE2
// shuffles in the baseline copies). Through pointers (V4 is never passed by value, see above).
[[gnu::always_inline]] inline void Transpose4(const V4* in, V4* rows) {
  const V4 a = in[0], b = in[1], c = in[2], e = in[3];
  const V4 t0 = __builtin_shuffle(a, b, I4{0, 4, 2, 6});  // a0 b0 a2 b2
  const V4 t1 = __builtin_shuffle(a, b, I4{1, 5, 3, 7});  // a1 b1 a3 b3
  const V4 t2 = __builtin_shuffle(c, e, I4{0, 4, 2, 6});  // c0 e0 c2 e2
  const V4 t3 = __builtin_shuffle(c, e, I4{1, 5, 3, 7});  // c1 e1 c3 e3
  rows[0] = __builtin_shuffle(t0, t2, I4{0, 1, 4, 5});
  rows[1] = __builtin_shuffle(t1, t3, I4{0, 1, 4, 5});
  rows[2] = __builtin_shuffle(t0, t2, I4{2, 3, 6, 7});
  rows[3] = __builtin_shuffle(t1, t3, I4{2, 3, 6, 7});
}

// Rows of a pass's block buffer: D rounded up to a multiple of 4, so that the Hessian's tiles (below) may read
// whole tiles; the rows past D are zero.
inline int64_t PaddedRows(int64_t d) {
  return (d + 3) / 4 * 4;
}

// M(k, l) += Σ_j CR_k[j] R_l[j] for l ≤ k < d over one block of nb points (rows of kVectorBlock values, zero past
// row d), in tiles of 4 rows k by 2 columns l: per four points, six loads feed eight multiply–adds into eight
// independent accumulators (one dot product at a time needed two loads per multiply–add). Entries above the
// diagonal that a tile computes are dropped.
[[gnu::always_inline]] inline void AccumulateHessianBlock(const double* R, const double* CR, int64_t d, int64_t nb,
                                                          double* M) {
  const int64_t nb4 = nb - nb % 4;
  for (int64_t k0 = 0; k0 < d; k0 += 4) {
    const double* c0 = CR + k0 * kVectorBlock;
    const double *c1 = c0 + kVectorBlock, *c2 = c1 + kVectorBlock, *c3 = c2 + kVectorBlock;
    for (int64_t l0 = 0; l0 < d && l0 <= k0 + 3; l0 += 2) {
      const double* r0 = R + l0 * kVectorBlock;
      const double* r1 = r0 + kVectorBlock;
      if (l0 == k0 + 2) {
        // The tile of columns k0+2, k0+3 on the diagonal: only rows k0+2, k0+3 hold entries of the lower triangle
        // (a 2 × 2 tile, the same sums in the same order as the full tile's).
        V4 a20 = {}, a21 = {}, a30 = {}, a31 = {};
        for (int64_t j = 0; j < nb4; j += 4) {
          DDN_LOAD_V4(x0, r0 + j);
          DDN_LOAD_V4(x1, r1 + j);
          DDN_LOAD_V4(y2, c2 + j);
          DDN_LOAD_V4(y3, c3 + j);
          a20 += y2 * x0;
          a21 += y2 * x1;
          a30 += y3 * x0;
          a31 += y3 * x1;
        }
        const V4 acc[2][2] = {{a20, a21}, {a30, a31}};
        const double* rows[2] = {c2, c3};
        const double* cols[2] = {r0, r1};
        for (int t = 0; t < 2; ++t) {
          for (int e = 0; e < 2; ++e) {
            const int64_t k = k0 + 2 + t, l = l0 + e;
            if (k >= d || l > k) continue;
            const V4& a = acc[t][e];
            double sum = (a[0] + a[1]) + (a[2] + a[3]);
            for (int64_t j = nb4; j < nb; ++j) sum += rows[t][j] * cols[e][j];
            M[k + l * d] += sum;
          }
        }
        continue;
      }
      V4 a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {};
      for (int64_t j = 0; j < nb4; j += 4) {
        DDN_LOAD_V4(x0, r0 + j);
        DDN_LOAD_V4(x1, r1 + j);
        DDN_LOAD_V4(y0, c0 + j);
        DDN_LOAD_V4(y1, c1 + j);
        DDN_LOAD_V4(y2, c2 + j);
        DDN_LOAD_V4(y3, c3 + j);
        a00 += y0 * x0;
        a01 += y0 * x1;
        a10 += y1 * x0;
        a11 += y1 * x1;
        a20 += y2 * x0;
        a21 += y2 * x1;
        a30 += y3 * x0;
        a31 += y3 * x1;
      }
      const V4 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
      const double* rows[4] = {c0, c1, c2, c3};
      const double* cols[2] = {r0, r1};
      for (int t = 0; t < 4; ++t) {
        for (int e = 0; e < 2; ++e) {
          const int64_t k = k0 + t, l = l0 + e;
          if (k >= d || l > k) continue;
          const V4& a = acc[t][e];
          double sum = (a[0] + a[1]) + (a[2] + a[3]);
          for (int64_t j = nb4; j < nb; ++j) sum += rows[t][j] * cols[e][j];
          M[k + l * d] += sum;  // column-major (Eigen's default), lower triangle
        }
      }
    }
  }
}

// One block's residuals by coordinate, R[k·kVectorBlock + j] = y_k − x_k[j] (xk = cols + k·n), and their squared
// lengths z2[j] = Σ_k R_k[j]², summed in k order. Sixteen points at a time, their four vectors of z2 in registers
// (stored once, not loaded and stored per coordinate; four independent chains of multiply–adds).
[[gnu::always_inline]] inline void Residuals(const double* cols, int64_t n, int64_t d, int64_t nb, const double* y,
                                             double* R, double* z2) {
  const int64_t nb16 = nb - nb % 16;
  for (int64_t j = 0; j < nb16; j += 16) {
    V4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
    for (int64_t k = 0; k < d; ++k) {
      const double* xk = cols + k * n + j;
      double* rk = R + k * kVectorBlock + j;
      DDN_LOAD_V4(x0, xk);
      DDN_LOAD_V4(x1, xk + 4);
      DDN_LOAD_V4(x2, xk + 8);
      DDN_LOAD_V4(x3, xk + 12);
      const V4 r0 = y[k] - x0, r1 = y[k] - x1, r2 = y[k] - x2, r3 = y[k] - x3;
      __builtin_memcpy(rk, &r0, sizeof(V4));
      __builtin_memcpy(rk + 4, &r1, sizeof(V4));
      __builtin_memcpy(rk + 8, &r2, sizeof(V4));
      __builtin_memcpy(rk + 12, &r3, sizeof(V4));
      s0 += r0 * r0;
      s1 += r1 * r1;
      s2 += r2 * r2;
      s3 += r3 * r3;
    }
    __builtin_memcpy(z2 + j, &s0, sizeof(V4));
    __builtin_memcpy(z2 + j + 4, &s1, sizeof(V4));
    __builtin_memcpy(z2 + j + 8, &s2, sizeof(V4));
    __builtin_memcpy(z2 + j + 12, &s3, sizeof(V4));
  }
  for (int64_t j = nb16; j < nb; ++j) {
    double s = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double r = y[k] - cols[k * n + j];
      R[k * kVectorBlock + j] = r;
      s += r * r;
    }
    z2[j] = s;
  }
}

template <PenaltyKind K, bool kHessian, bool kWeighted, bool kResidualSums>
[[gnu::always_inline]] inline VectorPassOut VectorLoop(const double* cols, const double* w, int64_t n, int64_t d,
                                                       const double* y, double alpha, double inv_a2, double* R,
                                                       double* g, double* M) {
  double f = 0, spsi = 0, gabs = 0, hsum = 0;
  double z2[kVectorBlock], wpsi[kVectorBlock], cw[kVectorBlock];
  double* CR = R + PaddedRows(d) * kVectorBlock;
  for (int64_t k = 0; k < d; ++k) g[k] = 0;
  if (kHessian)
    for (int64_t k = 0; k < d * d; ++k) M[k] = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kVectorBlock) {
    const int64_t nb = std::min(kVectorBlock, n - i0);
    Residuals(cols + i0, n, d, nb, y, R, z2);
#pragma omp simd reduction(+ : f, spsi, gabs, hsum)
    for (int64_t j = 0; j < nb; ++j) {
      const double zz = z2[j];
      const SquaredPenaltyValues v = PenaltyOfSquaredLength<K>(zz, alpha, inv_a2);
      const double wi = kWeighted ? w[i0 + j] : 1.0;
      f += K == PenaltyKind::kWelsch ? wi : wi * v.phi;  // welsch: Σ w, f below (as in ScalarLoop)
      spsi += wi * v.psi;
      if (!kHessian && kResidualSums) gabs += wi * std::sqrt(zz) * std::abs(v.psi);  // Σ w|φ'|, for the residual
      if (kHessian || kResidualSums) hsum += wi * (std::abs(v.psi) + std::abs(v.d2));
      wpsi[j] = wi * v.psi;
      cw[j] = wi * v.c;
    }
    for (int64_t k = 0; k < d; ++k) {
      const double* rk = R + k * kVectorBlock;
      g[k] += BlockDot(wpsi, rk, nb);
      if (!kHessian) continue;
      double* crk = CR + k * kVectorBlock;  // c ⊙ r_k
#pragma omp simd
      for (int64_t j = 0; j < nb; ++j) crk[j] = cw[j] * rk[j];
    }
    if (kHessian) AccumulateHessianBlock(R, CR, d, nb, M);
  }
  if (K == PenaltyKind::kWelsch) f -= alpha * alpha * spsi;  // Σ w (1 − e_i) = Σ w − α² Σ w ψ_i
  return {f, spsi, gabs, hsum};
}

template <PenaltyKind K, bool kHessian, bool kWeighted, bool kResidualSums>
VectorPassOut VectorPassBaseline(const double* cols, const double* w, int64_t n, int64_t d, const double* y,
                                 double alpha, double inv_a2, double* R, double* g, double* M) {
  return VectorLoop<K, kHessian, kWeighted, kResidualSums>(cols, w, n, d, y, alpha, inv_a2, R, g, M);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K, bool kHessian, bool kWeighted, bool kResidualSums>
[[gnu::target("avx2,fma")]] VectorPassOut VectorPassAvx2(const double* cols, const double* w, int64_t n, int64_t d,
                                                         const double* y, double alpha, double inv_a2, double* R,
                                                         double* g, double* M) {
  return VectorLoop<K, kHessian, kWeighted, kResidualSums>(cols, w, n, d, y, alpha, inv_a2, R, g, M);
}
#endif

// The sums at y (M only with kHessian). ws->block holds the pass's residuals. Without kResidualSums a gradient
// pass leaves gabs and hsum at 0 (f, g and Σwψ only: no square root per point), for steps that only need those.
template <PenaltyKind K, bool kHessian, bool kResidualSums = true>
void VectorPass(const VectorPoints& points, const double* y, VectorSums* S, PoolingWorkspace* ws) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  std::vector<double>& R = ws->block;
  const int64_t rows = PaddedRows(d);
  R.resize(static_cast<size_t>(2 * rows * kVectorBlock));  // residuals, then c ⊙ residuals
  // The padding rows of both are zero (read by the Hessian's tiles, never written).
  std::fill(R.begin() + d * kVectorBlock, R.begin() + rows * kVectorBlock, 0.0);
  std::fill(R.begin() + (rows + d) * kVectorBlock, R.end(), 0.0);
  S->g.resize(d);
  if (kHessian) S->M.resize(d, d);
  double* M = kHessian ? S->M.data() : nullptr;
  VectorPassOut out;
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) {
    out = p.w ? VectorPassAvx2<K, kHessian, true, kResidualSums>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2, R.data(),
                                                                 S->g.data(), M)
              : VectorPassAvx2<K, kHessian, false, kResidualSums>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2,
                                                                  R.data(), S->g.data(), M);
  } else
#endif
  {
    out = p.w ? VectorPassBaseline<K, kHessian, true, kResidualSums>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2,
                                                                     R.data(), S->g.data(), M)
              : VectorPassBaseline<K, kHessian, false, kResidualSums>(points.cols, p.w, p.n, d, y, p.alpha, inv_a2,
                                                                      R.data(), S->g.data(), M);
  }
  S->f = out.f;
  S->spsi = out.spsi;
  S->gabs = out.gabs;
  S->hsum = out.hsum;
}

inline double Norm(const Eigen::VectorXd& v) {
  return v.lpNorm<Eigen::Infinity>();
}

// The Cholesky factorisation H = L Lᵀ of the d × d matrix H = M + s·I from the lower triangle of M (column-major,
// as VectorPass leaves it), and solves with it: the Newton steps of the local solves and the backward's H⁻¹v.
// Up to kSmallDim coordinates it is plain loops on a fixed array (the same left-looking algorithm as Eigen's
// unblocked LLT: no allocation, no call per column; an 8 × 8 factorisation and solve in a fraction of Eigen's
// dynamic-size time); beyond that Eigen's LLT. Factor returns false unless every pivot is positive; MinPivot is
// the smallest diagonal entry of L (the callers' test of a well-conditioned H).
class SmallCholesky {
 public:
  static constexpr int64_t kSmallDim = 16;

  bool Factor(const double* M, double s, int64_t d) {
    d_ = d;
    if (d > kSmallDim) {
      Eigen::MatrixXd H = Eigen::Map<const Eigen::MatrixXd>(M, d, d).selfadjointView<Eigen::Lower>();
      H.diagonal().array() += s;
      llt_.compute(H);
      if (llt_.info() != Eigen::Success) return false;
      min_pivot_ = llt_.matrixLLT().diagonal().minCoeff();
      return true;
    }
    double* L = L_;
    min_pivot_ = std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < d; ++k) {
      double x = M[k + k * d] + s;
      for (int64_t j = 0; j < k; ++j) x -= L[k + j * d] * L[k + j * d];
      if (!(x > 0)) return false;
      const double lkk = std::sqrt(x);
      L[k + k * d] = lkk;
      inv_pivot_[k] = 1.0 / lkk;
      min_pivot_ = std::min(min_pivot_, lkk);
      for (int64_t i = k + 1; i < d; ++i) {
        double v = M[i + k * d];
        for (int64_t j = 0; j < k; ++j) v -= L[i + j * d] * L[k + j * d];
        L[i + k * d] = v / lkk;
      }
    }
    return true;
  }

  double MinPivot() const { return min_pivot_; }

  // out = H⁻¹ b (out may alias b).
  void Solve(const double* b, double* out) const {
    const int64_t d = d_;
    if (d > kSmallDim) {
      Eigen::Map<Eigen::VectorXd>(out, d) = llt_.solve(Eigen::Map<const Eigen::VectorXd>(b, d));
      return;
    }
    switch (d) {  // the usual dimensions unrolled
      case 2:
        return SolveFixed<2>(b, out);
      case 3:
        return SolveFixed<3>(b, out);
      case 8:
        return SolveFixed<8>(b, out);
      default:
        return SolveFixed<0>(b, out);
    }
  }

 private:
  // The two triangular solves, multiplying by the pivots' reciprocals (computed by Factor, off the chain: each z[i]
  // waits on the one before, and a division's latency is several times a multiplication's). kD > 0: d_ == kD,
  // known at compile time; kD == 0: d_.
  template <int kD>
  void SolveFixed(const double* b, double* out) const {
    const int64_t d = kD > 0 ? kD : d_;
    const double* L = L_;
    double z[kSmallDim];
    for (int64_t i = 0; i < d; ++i) {
      double v = b[i];
      for (int64_t j = 0; j < i; ++j) v -= L[i + j * d] * z[j];
      z[i] = v * inv_pivot_[i];
    }
    for (int64_t i = d - 1; i >= 0; --i) {
      double v = z[i];
      for (int64_t j = i + 1; j < d; ++j) v -= L[j + i * d] * out[j];
      out[i] = v * inv_pivot_[i];
    }
  }

  int64_t d_ = 0;
  double min_pivot_ = 0;
  double L_[kSmallDim * kSmallDim];
  double inv_pivot_[kSmallDim];  // 1/L_kk
  Eigen::LLT<Eigen::MatrixXd> llt_;
};

// The vector backward's products (pooling_solvers.h, "Backward") for u = H⁻¹v, over the points by coordinate in
// blocks: dx_i += w_i (ψ_i u + (φ''_i − ψ_i)/‖r_i‖² (r_iᵀu) r_i), dw_i −= ψ_i r_iᵀu (if dw is not null); with
// `assign`, dx_i = 0 + … and dw_i = 0 − … (the bits of the sums into zeros, without reading dx and dw).
template <PenaltyKind K, bool kWeighted, bool kDw>
[[gnu::always_inline]] inline bool VjpLoop(const double* cols, const double* w, int64_t n, int64_t d, const double* y,
                                           const double* u, double alpha, double inv_a2, double* R, double* dx,
                                           double* dw, bool assign) {
  double z2[kVectorBlock], ru[kVectorBlock], a[kVectorBlock], b[kVectorBlock];
  // Every value written, v − v: 0 if finite, NaN for ±Inf and NaN (the engine's check of the gradients, folded).
  V4 zero4 = {0, 0, 0, 0};
  double zero = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kVectorBlock) {
    const int64_t nb = std::min(kVectorBlock, n - i0);
    for (int64_t j = 0; j < nb; ++j) z2[j] = ru[j] = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double* xk = cols + k * n + i0;
      double* rk = R + k * kVectorBlock;
      const double yk = y[k], uk = u[k];
#pragma omp simd
      for (int64_t j = 0; j < nb; ++j) {
        rk[j] = yk - xk[j];
        z2[j] += rk[j] * rk[j];
        ru[j] += rk[j] * uk;
      }
    }
#pragma omp simd
    for (int64_t j = 0; j < nb; ++j) {
      const SquaredPenaltyValues v = PenaltyOfSquaredLength<K>(z2[j], alpha, inv_a2);
      const double wi = kWeighted ? w[i0 + j] : 1.0;
      a[j] = wi * v.psi;
      b[j] = wi * v.c * ru[j];
      if (kDw) {
        dw[i0 + j] = (assign ? 0.0 : dw[i0 + j]) - v.psi * ru[j];
        zero += dw[i0 + j] - dw[i0 + j];
      }
    }
    // dx_i[k] (+)= a_i u_k + b_i r_ik: computed by coordinate for four points at a time (vectors over points), four
    // coordinates transposed in registers to four points' rows of dx (row-major), the rest one by one.
    const int64_t nb4 = nb - nb % 4, d4 = d - d % 4;
    for (int64_t j = 0; j < nb4; j += 4) {
      DDN_LOAD_V4(a4, a + j);
      DDN_LOAD_V4(b4, b + j);
      double* dx0 = dx + (i0 + j) * d;
      for (int64_t k = 0; k < d4; k += 4) {
        V4 v[4];
        for (int t = 0; t < 4; ++t) {
          DDN_LOAD_V4(rk, R + (k + t) * kVectorBlock + j);
          v[t] = a4 * u[k + t] + b4 * rk;
        }
        V4 rows[4];
        Transpose4(v, rows);
        for (int t = 0; t < 4; ++t) {
          double* out = dx0 + t * d + k;
          V4 old = {0, 0, 0, 0};
          if (!assign) __builtin_memcpy(&old, out, sizeof(V4));
          const V4 sum = old + rows[t];
          __builtin_memcpy(out, &sum, sizeof(V4));
          zero4 += sum - sum;
        }
      }
      for (int64_t t = 0; t < 4; ++t) {
        double* dxi = dx0 + t * d;
        for (int64_t k = d4; k < d; ++k) {
          dxi[k] = (assign ? 0.0 : dxi[k]) + (a[j + t] * u[k] + b[j + t] * R[k * kVectorBlock + j + t]);
          zero += dxi[k] - dxi[k];
        }
      }
    }
    for (int64_t j = nb4; j < nb; ++j) {
      double* dxi = dx + (i0 + j) * d;
      for (int64_t k = 0; k < d; ++k) {
        dxi[k] = (assign ? 0.0 : dxi[k]) + (a[j] * u[k] + b[j] * R[k * kVectorBlock + j]);
        zero += dxi[k] - dxi[k];
      }
    }
  }
  return zero + ((zero4[0] + zero4[1]) + (zero4[2] + zero4[3])) == 0;
}

template <PenaltyKind K, bool kWeighted, bool kDw>
bool VjpBaseline(const double* cols, const double* w, int64_t n, int64_t d, const double* y, const double* u,
                 double alpha, double inv_a2, double* R, double* dx, double* dw, bool assign) {
  return VjpLoop<K, kWeighted, kDw>(cols, w, n, d, y, u, alpha, inv_a2, R, dx, dw, assign);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K, bool kWeighted, bool kDw>
[[gnu::target("avx2,fma")]] bool VjpAvx2(const double* cols, const double* w, int64_t n, int64_t d, const double* y,
                                         const double* u, double alpha, double inv_a2, double* R, double* dx,
                                         double* dw, bool assign) {
  return VjpLoop<K, kWeighted, kDw>(cols, w, n, d, y, u, alpha, inv_a2, R, dx, dw, assign);
}
#endif

template <PenaltyKind K, bool kWeighted, bool kDw>
bool VjpT(const double* cols, const double* w, int64_t n, int64_t d, const double* y, const double* u, double alpha,
          double inv_a2, double* R, double* dx, double* dw, bool assign) {
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) return VjpAvx2<K, kWeighted, kDw>(cols, w, n, d, y, u, alpha, inv_a2, R, dx, dw, assign);
#endif
  return VjpBaseline<K, kWeighted, kDw>(cols, w, n, d, y, u, alpha, inv_a2, R, dx, dw, assign);
}

// dx (N·D, row-major) and dw (N, may be null) from u = H⁻¹v: written (assign) or added to. Returns whether every
// value written is finite.
template <PenaltyKind K>
bool VectorVjp(const VectorPoints& points, const double* y, const double* u, double* dx, double* dw, bool assign,
               PoolingWorkspace* ws) {
  const PoolingProblem& p = *points.problem;
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  std::vector<double>& R = ws->block;
  R.resize(static_cast<size_t>(p.d * kVectorBlock));
  const double *cols = points.cols, *w = p.w;
  if (w && dw) return VjpT<K, true, true>(cols, w, p.n, p.d, y, u, p.alpha, inv_a2, R.data(), dx, dw, assign);
  if (w) return VjpT<K, true, false>(cols, w, p.n, p.d, y, u, p.alpha, inv_a2, R.data(), dx, dw, assign);
  if (dw) return VjpT<K, false, true>(cols, w, p.n, p.d, y, u, p.alpha, inv_a2, R.data(), dx, dw, assign);
  return VjpT<K, false, false>(cols, w, p.n, p.d, y, u, p.alpha, inv_a2, R.data(), dx, dw, assign);
}

// ---- Scoring candidate starts -------------------------------------------------------------------------------
//
// f(y) over a stride sample of at most kScoreSample·2 points (i = 0, s, 2s, ...), stored by coordinate (d rows
// of m) once per problem.
constexpr int64_t kScoreSample = 64;

// `center` (d values): the origin of the single-precision copy (ScoreSample::frame).
void BuildScoreSample(const VectorPoints& points, const double* center, ScoreSample* S);
// All the points in single precision in `frame` (the score sample's), for the screening passes.
void BuildFloatPoints(const VectorPoints& points, const FloatFrame& frame, FloatPoints* F);

template <PenaltyKind K>
[[gnu::always_inline]] inline double ScoreLoop(const double* cols, const double* w, int64_t m, int64_t d,
                                               const double* y, double alpha, double inv_a2) {
  double z2[2 * kScoreSample];
  for (int64_t j = 0; j < m; ++j) z2[j] = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double* ck = cols + k * m;
    const double yk = y[k];
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) z2[j] += (yk - ck[j]) * (yk - ck[j]);
  }
  double f = 0;
#pragma omp simd reduction(+ : f)
  for (int64_t j = 0; j < m; ++j) f += w[j] * PenaltyOfSquaredLength<K>(z2[j], alpha, inv_a2).phi;
  return f;
}

template <PenaltyKind K>
double ScoreBaseline(const double* cols, const double* w, int64_t m, int64_t d, const double* y, double alpha,
                     double inv_a2) {
  return ScoreLoop<K>(cols, w, m, d, y, alpha, inv_a2);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K>
[[gnu::target("avx2,fma")]] double ScoreAvx2(const double* cols, const double* w, int64_t m, int64_t d, const double* y,
                                             double alpha, double inv_a2) {
  return ScoreLoop<K>(cols, w, m, d, y, alpha, inv_a2);
}
#endif

// When the candidates are the score sample's points themselves (N = 256 with the default 64 candidates, or
// N ≤ 64): f of every sample point on the sample, each penalty of a pair evaluated once. φ(‖x_c − x_j‖) for
// j ≤ c, mirrored (Σ_k (a_k − b_k)² has the same bits either way round), then f_c = Σ_j w_j φ_cj by a loop of
// ScoreLoop's form: the values SampleObjective gives at the sample points, up to the order of that last sum.
// z2[i] = ‖y − x_i‖² for i < n, the points stored by coordinate (x_i's k-th coordinate at cols[k·stride + i]) and
// y's k-th coordinate at y[k·y_stride]: coordinate by coordinate, in the order k = 0, 1, …, so that the same pair of
// points gives the same bits whichever is y. Used by the scoring below and by truncated_vector.cc.
[[gnu::always_inline]] inline void SquaredDistancesByCoordinate(const double* cols, int64_t stride, int64_t n,
                                                                int64_t d, const double* y, int64_t y_stride,
                                                                double* z2) {
  for (int64_t i = 0; i < n; ++i) z2[i] = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double* ck = cols + k * stride;
    const double yk = y[k * y_stride];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) z2[i] += (yk - ck[i]) * (yk - ck[i]);
  }
}

// f at each of the m sample points, on the sample: each pair's penalty once (φ(0) = 0 for every penalty, so the
// diagonal adds nothing), added to both points' sums as it is computed, row c against the points before it.
template <PenaltyKind K>
[[gnu::always_inline]] inline void SymmetricScoreLoop(const double* cols, const double* w, int64_t m, int64_t d,
                                                      double alpha, double inv_a2, double* f) {
  double z2[2 * kScoreSample];
  for (int64_t c = 0; c < m; ++c) f[c] = 0;
  for (int64_t c = 1; c < m; ++c) {
    SquaredDistancesByCoordinate(cols, m, c, d, cols + c, m, z2);
    const double wc = w[c];
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < c; ++j) {
      const double phi = PenaltyOfSquaredLength<K>(z2[j], alpha, inv_a2).phi;
      s += w[j] * phi;
      f[j] += wc * phi;
    }
    f[c] += s;
  }
}

template <PenaltyKind K>
void SymmetricScoreBaseline(const double* cols, const double* w, int64_t m, int64_t d, double alpha, double inv_a2,
                            double* f) {
  SymmetricScoreLoop<K>(cols, w, m, d, alpha, inv_a2, f);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K>
[[gnu::target("avx2,fma")]] void SymmetricScoreAvx2(const double* cols, const double* w, int64_t m, int64_t d,
                                                    double alpha, double inv_a2, double* f) {
  SymmetricScoreLoop<K>(cols, w, m, d, alpha, inv_a2, f);
}
#endif

// The scores in single precision, for welsch and Geman–McClure (FloatScores<K>): they only rank the candidate
// starts, and float doubles the lanes (eight in the AVX2 copy) and halves the exponential's polynomial
// (ddn/fast_exp.h). The copy is in units of α around the median start and of the largest weight (ScoreSample), so
// that any scale of the envelope fits float. Welsch sums the similarities Σ w_j e_cj and returns
// f_c = Σ_{j≠c} w_j − Σ_{j≠c} w_j e_cj in double (φ = 1 − e: the sum of the e's keeps float's relative precision
// where the sum of the φ's would lose it against Σ w). Scores of two candidates that agree to about 1e-6 may rank
// either way. Measured against the double scores (pooling_solvers_test: within 1e-6 of Σ w): on 5,760 random
// clustered problems (bench/vector_starts_quality.py's generator, 40 seeds) the answers were the same on all but
// one, 1.0e-8 (relative) higher: welsch, α = 0.25, D = 8, where every point is its own minimum (f ≈ N − 1) and the
// candidates differ by 1e-6 in similarity. Vector welsch (64, 256, 8) forward 1.92–2.02 → 1.76–1.80 ms.
template <PenaltyKind K>
constexpr bool FloatScores() {
  return K == PenaltyKind::kWelsch || K == PenaltyKind::kGemanMcClure;
}

// u = z²/α² (the single-precision copy is in units of α). welsch: e = exp(−u/2); Geman–McClure: φ/α² = ½ u/(1 + u)
// (PenaltyOfSquaredLength's φ over α², a common factor that does not change the ranking).
template <PenaltyKind K>
[[gnu::always_inline]] inline float FloatScoreTerm(float u) {
  if constexpr (K == PenaltyKind::kWelsch) {
    return ::ddn::ExpNonPositiveFloat(-0.5f * u);
  } else {
    return 0.5f * u / (1.0f + u);
  }
}

// The term of FloatScoreTerm on eight lanes, in place.
template <PenaltyKind K>
[[gnu::always_inline]] inline void FloatScoreTerm8(::ddn::Float8& u) {
  if constexpr (K == PenaltyKind::kWelsch) {
    u = -0.5f * u;
    ::ddn::ExpNonPositiveFloat8(u);
  } else {
    u = 0.5f * u / (1.0f + u);
  }
}

// Σ of eight lanes, pairwise.
[[gnu::always_inline]] inline float LaneSum8(const ::ddn::Float8& v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// Rows c against the points j < c, two rows c0 = c, c1 = c + 1 and eight points j at a time: the squared distances
// in registers summed over the coordinates (each point's floats loaded once for both rows: two independent chains
// of multiply–adds), the terms and the sums from them. j runs to c1 rounded up to eight and the terms of j ≥ c are
// masked to zero (the padding holds zeros, so every distance is finite). mf: the padded row length. A pass over
// the coordinates per row with the distances stored and reloaded for every coordinate took 1.9× the time (64
// points, D = 8: 4.3 against 2.3 µs).
template <PenaltyKind K>
[[gnu::always_inline]] inline void SymmetricScoreLoopFloat(const float* cols, const float* w, int64_t m, int64_t mf,
                                                           int64_t d, double* f) {
  using ::ddn::Float8;
  alignas(32) float acc[2 * kScoreSample + 8];
  for (int64_t c = 0; c < mf; ++c) acc[c] = 0;
  const ::ddn::Int8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t c0 = 1; c0 < m; c0 += 2) {
    const int64_t c1 = c0 + 1;
    const bool two = c1 < m;
    const float w0 = w[c0], w1 = two ? w[c1] : 0.0f;
    Float8 s0 = {}, s1 = {};
    for (int64_t j = 0; j < (two ? c1 : c0); j += 8) {
      Float8 t0 = {}, t1 = {};
      for (int64_t k = 0; k < d; ++k) {
        const float* ck = cols + k * mf;
        Float8 x;
        __builtin_memcpy(&x, ck + j, sizeof x);
        const Float8 r0 = ck[c0] - x, r1 = ck[two ? c1 : c0] - x;
        t0 += r0 * r0;
        t1 += r1 * r1;
      }
      FloatScoreTerm8<K>(t0);
      FloatScoreTerm8<K>(t1);
      if (j + 8 > c0) t0 = lane < static_cast<int32_t>(c0 - j) ? t0 : Float8{};
      if (!two) {
        t1 = Float8{};
      } else if (j + 8 > c1) {
        t1 = lane < static_cast<int32_t>(c1 - j) ? t1 : Float8{};
      }
      Float8 wj, a;
      __builtin_memcpy(&wj, w + j, sizeof wj);
      __builtin_memcpy(&a, acc + j, sizeof a);
      s0 += wj * t0;
      s1 += wj * t1;
      a += w0 * t0 + w1 * t1;
      __builtin_memcpy(acc + j, &a, sizeof a);
    }
    acc[c0] += LaneSum8(s0);
    if (two) acc[c1] += LaneSum8(s1);
  }
  if constexpr (K == PenaltyKind::kWelsch) {
    double total = 0;
    for (int64_t c = 0; c < m; ++c) total += w[c];
    for (int64_t c = 0; c < m; ++c) f[c] = (total - w[c]) - static_cast<double>(acc[c]);
  } else {
    for (int64_t c = 0; c < m; ++c) f[c] = acc[c];
  }
}

template <PenaltyKind K>
void SymmetricScoreFloatBaseline(const float* cols, const float* w, int64_t m, int64_t mf, int64_t d, double* f) {
  SymmetricScoreLoopFloat<K>(cols, w, m, mf, d, f);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K>
[[gnu::target("avx2,fma")]] void SymmetricScoreFloatAvx2(const float* cols, const float* w, int64_t m, int64_t mf,
                                                         int64_t d, double* f) {
  SymmetricScoreLoopFloat<K>(cols, w, m, mf, d, f);
}
#endif

// f at y (yf: y in the copy's units, ScoreSample::ToFloat) on the sample in single precision, over the padded rows
// (the padding's weights are 0): ScoreLoop's form for the candidates that are not sample points.
template <PenaltyKind K>
[[gnu::always_inline]] inline double ScoreLoopFloat(const float* cols, const float* w, int64_t m, int64_t mf, int64_t d,
                                                    const float* yf) {
  alignas(32) float z2[2 * kScoreSample + 8];
  for (int64_t j = 0; j < mf; ++j) z2[j] = 0;
  for (int64_t k = 0; k < d; ++k) {
    const float* ck = cols + k * mf;
    const float yk = yf[k];
#pragma omp simd
    for (int64_t j = 0; j < mf; ++j) z2[j] += (yk - ck[j]) * (yk - ck[j]);
  }
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < mf; ++j) s += w[j] * FloatScoreTerm<K>(z2[j]);
  if constexpr (K == PenaltyKind::kWelsch) {
    double total = 0;
    for (int64_t j = 0; j < m; ++j) total += w[j];
    return total - static_cast<double>(s);
  } else {
    return s;
  }
}

template <PenaltyKind K>
double ScoreFloatBaseline(const float* cols, const float* w, int64_t m, int64_t mf, int64_t d, const float* yf) {
  return ScoreLoopFloat<K>(cols, w, m, mf, d, yf);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K>
[[gnu::target("avx2,fma")]] double ScoreFloatAvx2(const float* cols, const float* w, int64_t m, int64_t mf, int64_t d,
                                                  const float* yf) {
  return ScoreLoopFloat<K>(cols, w, m, mf, d, yf);
}
#endif

// ---- Screening passes in single precision -----------------------------------------------------------------
//
// The sums of a gradient pass over all the points in the FloatFrame (y' = (y − c)/α, x' likewise, w' = w/wmax),
// for welsch (t = e = exp(−u/2)) and Geman–McClure (t = ψ = 1/(1 + u)², and F = Σ w' ½ u/(1 + u)), u = ‖y' − x'‖²:
// A = Σ w' t, B_k = Σ w' t x'_k, F. Then g = Σ w ψ (y − x) is wmax/α (y'A − B) for welsch and wmax·α (y'A − B) for
// Geman–McClure, Σ w ψ is wmax·A/α² and wmax·A, f is wmax (Σw' − A) and wmax·α²·F (FloatScreeningSums). Blocks of
// 256 points are summed in float and added in double. They steer the screening's chord and IRLS steps (decisions
// at 0.3·α and 1e-3·α, vector_multistart.cc); every solve and every answer stays in double.
struct FloatPassSums {
  double a = 0, f = 0;
  double b[32];  // B_k (d ≤ 32: the float screening is used up to that dimension)
};
constexpr int64_t kFloatScreeningMaxDim = 32;

// w·t for eight points from their u = ‖y' − x'‖² and weights w (t: e for welsch, ψ for Geman–McClure); Geman–McClure
// also adds w·½u/(1 + u) to *f.
template <PenaltyKind K>
[[gnu::always_inline]] inline void FloatPassTerm(const ::ddn::Float8& u, const ::ddn::Float8& w, ::ddn::Float8* f,
                                                 ::ddn::Float8* wt) {
  ::ddn::Float8 t;
  if constexpr (K == PenaltyKind::kWelsch) {
    t = -0.5f * u;
    ::ddn::ExpNonPositiveFloat8(t);
  } else {
    const ::ddn::Float8 inv = 1.0f / (1.0f + u);
    t = inv * inv;
    *f += w * (0.5f * u * inv);
  }
  *wt = w * t;
}

// Sixteen points at a time (then eight): their squared distances in registers summed over the coordinates, the
// terms, and every sum from them (A, F and the d sums B_k in eight lanes each); the points' floats are read twice,
// from L1. With the distances stored and reloaded for every coordinate and a separate loop per B_k, a pass over
// (256, 8) took 1.25× the time (435 against 350 ns, alternated).
template <PenaltyKind K>
[[gnu::always_inline]] inline void FloatPassLoop(const float* cols, const float* w, int64_t n_pad, int64_t d,
                                                 const float* y, FloatPassSums* out) {
  using ::ddn::Float8;
  constexpr int64_t kBlock = 256;
  Float8 b[kFloatScreeningMaxDim];
  out->a = out->f = 0;
  for (int64_t k = 0; k < d; ++k) out->b[k] = 0;
  for (int64_t i0 = 0; i0 < n_pad; i0 += kBlock) {
    const int64_t i1 = std::min(i0 + kBlock, n_pad);
    Float8 a = {}, f = {};
    for (int64_t k = 0; k < d; ++k) b[k] = Float8{};
    // Sixteen points at a time where there are (two independent chains of multiply–adds), then eight.
    int64_t j = i0;
    for (; j + 16 <= i1; j += 16) {
      Float8 u0 = {}, u1 = {};
      for (int64_t k = 0; k < d; ++k) {
        Float8 x0, x1;
        __builtin_memcpy(&x0, cols + k * n_pad + j, sizeof x0);
        __builtin_memcpy(&x1, cols + k * n_pad + j + 8, sizeof x1);
        const Float8 r0 = y[k] - x0, r1 = y[k] - x1;
        u0 += r0 * r0;
        u1 += r1 * r1;
      }
      Float8 w0, w1;
      __builtin_memcpy(&w0, w + j, sizeof w0);
      __builtin_memcpy(&w1, w + j + 8, sizeof w1);
      Float8 wt0, wt1;
      FloatPassTerm<K>(u0, w0, &f, &wt0);
      FloatPassTerm<K>(u1, w1, &f, &wt1);
      a += wt0;
      a += wt1;
      for (int64_t k = 0; k < d; ++k) {
        Float8 x0, x1;
        __builtin_memcpy(&x0, cols + k * n_pad + j, sizeof x0);
        __builtin_memcpy(&x1, cols + k * n_pad + j + 8, sizeof x1);
        b[k] += wt0 * x0;
        b[k] += wt1 * x1;
      }
    }
    for (; j < i1; j += 8) {
      Float8 u = {};
      for (int64_t k = 0; k < d; ++k) {
        Float8 x;
        __builtin_memcpy(&x, cols + k * n_pad + j, sizeof x);
        const Float8 r = y[k] - x;
        u += r * r;
      }
      Float8 wj;
      __builtin_memcpy(&wj, w + j, sizeof wj);
      Float8 wt;
      FloatPassTerm<K>(u, wj, &f, &wt);
      a += wt;
      for (int64_t k = 0; k < d; ++k) {
        Float8 x;
        __builtin_memcpy(&x, cols + k * n_pad + j, sizeof x);
        b[k] += wt * x;
      }
    }
    out->a += LaneSum8(a);
    out->f += LaneSum8(f);
    for (int64_t k = 0; k < d; ++k) out->b[k] += LaneSum8(b[k]);
  }
}

template <PenaltyKind K>
void FloatPassBaseline(const float* cols, const float* w, int64_t n_pad, int64_t d, const float* y,
                       FloatPassSums* out) {
  FloatPassLoop<K>(cols, w, n_pad, d, y, out);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <PenaltyKind K>
[[gnu::target("avx2,fma")]] void FloatPassAvx2(const float* cols, const float* w, int64_t n_pad, int64_t d,
                                               const float* y, FloatPassSums* out) {
  FloatPassLoop<K>(cols, w, n_pad, d, y, out);
}
#endif

// f, g (d values) and Σ w ψ at y in the problem's units, from the float pass (above). y_f: scratch of d floats.
template <PenaltyKind K>
void FloatScreeningSums(const FloatPoints& F, const FloatFrame& frame, double alpha, int64_t d, const double* y,
                        std::vector<float>* y_f, double* f, double* g, double* spsi) {
  y_f->resize(static_cast<size_t>(d));
  for (int64_t k = 0; k < d; ++k) (*y_f)[k] = frame.ToFloat(y[k], k);
  FloatPassSums s;
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) {
    FloatPassAvx2<K>(F.cols.data(), F.w.data(), F.n_pad, d, y_f->data(), &s);
  } else
#endif
  {
    FloatPassBaseline<K>(F.cols.data(), F.w.data(), F.n_pad, d, y_f->data(), &s);
  }
  // g_k ∝ y'_k A − B_k with the y' the pass used (rounded to float), so that the terms cancel as they should.
  const double unit = K == PenaltyKind::kWelsch ? frame.wmax / alpha : frame.wmax * alpha;
  for (int64_t k = 0; k < d; ++k) g[k] = unit * (static_cast<double>((*y_f)[k]) * s.a - s.b[k]);
  if constexpr (K == PenaltyKind::kWelsch) {
    *spsi = frame.wmax * s.a / (alpha * alpha);
    *f = frame.wmax * (F.wsum - s.a);
  } else {
    *spsi = frame.wmax * s.a;
    *f = frame.wmax * alpha * alpha * s.f;
  }
}

// f at each of the S.m sample points (S.f), on the sample (SymmetricScoreLoop).
template <PenaltyKind K>
void SampleObjectivesAtSample(const PoolingProblem& p, ScoreSample* S) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  S->f.resize(static_cast<size_t>(S->m));
  if constexpr (FloatScores<K>()) {
#if defined(DDN_HAVE_SIMD_DISPATCH)
    if (::ddn::UseAvx2()) {
      return SymmetricScoreFloatAvx2<K>(S->cols_f.data(), S->w_f.data(), S->m, S->m_f, p.d, S->f.data());
    }
#endif
    return SymmetricScoreFloatBaseline<K>(S->cols_f.data(), S->w_f.data(), S->m, S->m_f, p.d, S->f.data());
  }
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) {
    return SymmetricScoreAvx2<K>(S->cols.data(), S->w.data(), S->m, p.d, p.alpha, inv_a2, S->f.data());
  }
#endif
  SymmetricScoreBaseline<K>(S->cols.data(), S->w.data(), S->m, p.d, p.alpha, inv_a2, S->f.data());
}

template <PenaltyKind K>
double SampleObjective(const PoolingProblem& p, const ScoreSample& S, const double* y) {
  const double inv_a2 = 1.0 / (p.alpha * p.alpha);
  if constexpr (FloatScores<K>()) {
    S.y_f.resize(static_cast<size_t>(p.d));
    for (int64_t k = 0; k < p.d; ++k) S.y_f[k] = S.frame.ToFloat(y[k], k);
#if defined(DDN_HAVE_SIMD_DISPATCH)
    if (::ddn::UseAvx2()) return ScoreFloatAvx2<K>(S.cols_f.data(), S.w_f.data(), S.m, S.m_f, p.d, S.y_f.data());
#endif
    return ScoreFloatBaseline<K>(S.cols_f.data(), S.w_f.data(), S.m, S.m_f, p.d, S.y_f.data());
  }
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) return ScoreAvx2<K>(S.cols.data(), S.w.data(), S.m, p.d, y, p.alpha, inv_a2);
#endif
  return ScoreBaseline<K>(S.cols.data(), S.w.data(), S.m, p.d, y, p.alpha, inv_a2);
}

}  // namespace ddn::pooling::internal
