// ddn/tape.h: reverse-mode automatic differentiation with exact sparse Hessians, for whole functions.
//
// The generic engine (ddn/declarative.h) differentiates a node's objective term by term with Ceres Jets
// (forward mode: cheap for small terms). Functions evaluated whole — a constraint such as ‖y‖² − r² ≤ 0 that
// reads every coordinate, or an objective written without terms — cost O(m · cost) in forward mode for a
// gradient and O(m² · cost) for a Hessian. TapeScalar records such a function once on a thread-local tape and
// then differentiates the recording in reverse:
//
//   gradient of Σ_i w_i c_i          one reverse sweep, O(tape)
//   Jacobian rows of c               one reverse sweep per row over the part of the tape it depends on
//   Hessian of Σ_i w_i c_i           edge pushing (Gower & Mello, "A new framework for the computation of
//                                    Hessians", Optim. Methods Softw. 27, 2012): one reverse sweep that
//                                    carries the nonlinear interactions as weighted edges; the cost follows
//                                    the number of nonzeros of the Hessian, not m².
//
// Every operation records its result's first and second partial derivatives with respect to (at most) two
// operands, evaluated at the recorded point; constants (Constant<TapeScalar>(c), default-constructed values)
// are not recorded. TapeScalar follows the scalar-generic dialect (ddn/scalar.h) and offers every function
// and operator that ceres::Jet offers, so an objective that compiles with Jets compiles with it.
//
// The same operations, defined once below for both, drive SecondOrder<N>: forward-mode second derivatives of
// N variables in one evaluation (value, gradient and the N×N Hessian carried through every operation by the
// chain rule: g = φ' g_a, H = φ'' g_a g_aᵀ + φ' H_a, and the two-operand analogue). The engine evaluates a
// term of up to four variables with it, where nested ceres::Jets would take several evaluations.
//
// Use (engine internal): Tape tape; tape.Begin(); TapeScalar y = tape.Variable(1.5); ... evaluate ...;
// tape.End(); then Gradient/JacobianRows/Hessian on the outputs' indices. One tape per thread is active at a
// time (TapeScalar operations record on it).
#pragma once

#include <cmath>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "ddn/generic_solver.h"  // SparseEntry
#include "ddn/scalar.h"

// The operations of the second-order scalars are a few multiply-adds each: always inline them (GCC otherwise
// keeps some as calls, which costs more than the arithmetic).
#define DDN_AD_INLINE inline __attribute__((always_inline))
// A loop over a node's terms: every call inside it is inlined (the term and the functions it calls), so that the
// loop body is one piece of straight code the compiler can optimise and the processor can overlap.
#define DDN_AD_FLATTEN __attribute__((flatten))
// A lambda in such a loop, always inlined.
#define DDN_AD_INLINE_LAMBDA __attribute__((always_inline))

namespace ddn {

class Tape;

// TapeScalar and its operators live in their own namespace, so that argument-dependent lookup on it finds the
// math functions below and nothing else of ddn (a node's own helper named like a ddn function stays
// unambiguous, as it is for ceres::Jet).
namespace ad {
class TapeScalar;
}  // namespace ad
using ad::TapeScalar;

namespace ad {

class TapeScalar {
 public:
  TapeScalar() = default;
  // A constant (not recorded).
  explicit TapeScalar(double value) : value_(value) {}

  double value() const { return value_; }
  // Position on the tape, or −1 for a constant.
  int index() const { return index_; }

  // Engine use: a value recorded at `index`.
  static TapeScalar Recorded(double value, int index) {
    TapeScalar t(value);
    t.index_ = index;
    return t;
  }
  // r = φ(a) with φ' = d1, φ'' = d2; r = φ(a, b) with its first and second partials (recorded).
  static TapeScalar Apply1(const TapeScalar& a, double value, double d1, double d2);
  static TapeScalar Apply2(const TapeScalar& a, const TapeScalar& b, double value, double da, double db, double daa,
                           double dab, double dbb);
  // The linear and bilinear operations (the forward-mode scalars have cheaper rules for them).
  static TapeScalar Linear1(const TapeScalar& a, double value, double d1) { return Apply1(a, value, d1, 0); }
  static TapeScalar Linear2(const TapeScalar& a, const TapeScalar& b, double value, double ca, double cb) {
    return Apply2(a, b, value, ca, cb, 0, 0, 0);
  }
  static TapeScalar Product(const TapeScalar& a, const TapeScalar& b) {
    return Apply2(a, b, a.value() * b.value(), b.value(), a.value(), 0, 1, 0);
  }
  static TapeScalar Quotient(const TapeScalar& a, const TapeScalar& b) {
    const double ib = 1.0 / b.value(), q = a.value() * ib;
    return Apply2(a, b, q, ib, -q * ib, 0, -ib * ib, 2 * q * ib * ib);
  }

 private:
  double value_ = 0.0;
  int index_ = -1;
};

// Value, gradient and Hessian (lower triangle, row-major packed) with respect to N seeded variables. R < N
// carries only the second derivatives ∂²/∂v_i∂v_j with min(i, j) < R (the rows of the first R variables: a
// term's y–y and y–x blocks without its x–x block, which the implicit backward does not use); R = 0
// (FirstOrder<N>) only the value and the gradient: a gradient for the price of one.
template <int N, int R = N>
class SecondOrder {
 public:
  static_assert(R >= 0 && R <= N, "SecondOrder<N, R>: 0 <= R <= N");
  static constexpr bool kSecond = R > 0;
  static constexpr int kPacked = kSecond ? N * (N + 1) / 2 : 1;
  SecondOrder() = default;
  explicit SecondOrder(double value) : value_(value) {}
  // Copies one double at a time. The implicit copy moves the object in 16-byte pieces; when a term returns one of
  // two scalars (`w ? w * phi : phi`) the compiler keeps the result in memory, written a double at a time, and a
  // 16-byte read of two 8-byte writes cannot be forwarded from the store buffer: the loop then stalls on every
  // term (measured: a third of a Hessian pass over the pooling terms).
  DDN_AD_INLINE SecondOrder(const SecondOrder& o) { CopyFrom(o); }
  DDN_AD_INLINE SecondOrder& operator=(const SecondOrder& o) {
    CopyFrom(o);
    return *this;
  }
  // Variable k of the N (gradient e_k, Hessian 0).
  static SecondOrder Variable(double value, int k) {
    SecondOrder r(value);
    r.g_[k] = 1.0;
    return r;
  }
  double value() const { return value_; }
  // In place (for a hot loop that re-seeds the same storage): the value only, derivatives untouched; variable k
  // (gradient e_k; the Hessian must be 0, as it is for a variable or a constant); back to a constant.
  void set_value(double value) { value_ = value; }
  void Seed(int k) { g_[k] = 1.0; }
  void Unseed(int k) { g_[k] = 0.0; }
  double gradient(int k) const { return g_[k]; }
  // ∂²/∂v_i∂v_j (any order of i, j).
  double hessian(int i, int j) const {
    static_assert(kSecond, "a FirstOrder scalar carries no second derivatives");
    // (entries with min(i, j) ≥ R are not computed: 0)
    return i >= j ? h_[i * (i + 1) / 2 + j] : h_[j * (j + 1) / 2 + i];
  }

  DDN_AD_INLINE static SecondOrder Apply1(const SecondOrder& a, double value, double d1, double d2) {
    SecondOrder r(value);
    for (int i = 0; i < N; ++i) r.g_[i] = d1 * a.g_[i];
    if constexpr (!kSecond) return r;
    for (int i = 0, k = 0; i < N; ++i)
      for (int j = 0; j <= i; ++j, ++k)
        if (j < R) r.h_[k] = d2 * a.g_[i] * a.g_[j] + d1 * a.h_[k];
    return r;
  }
  DDN_AD_INLINE static SecondOrder Apply2(const SecondOrder& a, const SecondOrder& b, double value, double da,
                                          double db, double daa, double dab, double dbb) {
    SecondOrder r(value);
    for (int i = 0; i < N; ++i) r.g_[i] = da * a.g_[i] + db * b.g_[i];
    if constexpr (!kSecond) return r;
    for (int i = 0, k = 0; i < N; ++i) {
      for (int j = 0; j <= i; ++j, ++k) {
        if (j >= R) continue;
        r.h_[k] = daa * a.g_[i] * a.g_[j] + dab * (a.g_[i] * b.g_[j] + b.g_[i] * a.g_[j]) + dbb * b.g_[i] * b.g_[j] +
                  da * a.h_[k] + db * b.h_[k];
      }
    }
    return r;
  }
  // r = d1·a + const and r = ca·a + cb·b: the second-order terms are zero (not multiplied by zero: IEEE
  // arithmetic cannot drop 0·x, and most operations of a term are these); r = a·b: the one mixed term.
  DDN_AD_INLINE static SecondOrder Linear1(const SecondOrder& a, double value, double d1) {
    SecondOrder r(value);
    for (int i = 0; i < N; ++i) r.g_[i] = d1 * a.g_[i];
    if constexpr (!kSecond) return r;
    for (int i = 0, k = 0; i < N; ++i)
      for (int j = 0; j <= i; ++j, ++k)
        if (j < R) r.h_[k] = d1 * a.h_[k];
    return r;
  }
  DDN_AD_INLINE static SecondOrder Linear2(const SecondOrder& a, const SecondOrder& b, double value, double ca,
                                           double cb) {
    SecondOrder r(value);
    for (int i = 0; i < N; ++i) r.g_[i] = ca * a.g_[i] + cb * b.g_[i];
    if constexpr (!kSecond) return r;
    for (int i = 0, k = 0; i < N; ++i)
      for (int j = 0; j <= i; ++j, ++k)
        if (j < R) r.h_[k] = ca * a.h_[k] + cb * b.h_[k];
    return r;
  }
  DDN_AD_INLINE static SecondOrder Product(const SecondOrder& a, const SecondOrder& b) {
    const double av = a.value_, bv = b.value_;
    SecondOrder r(av * bv);
    for (int i = 0; i < N; ++i) r.g_[i] = bv * a.g_[i] + av * b.g_[i];
    if constexpr (!kSecond) return r;
    for (int i = 0, k = 0; i < N; ++i)
      for (int j = 0; j <= i; ++j, ++k)
        if (j < R) r.h_[k] = (a.g_[i] * b.g_[j] + b.g_[i] * a.g_[j]) + bv * a.h_[k] + av * b.h_[k];
    return r;
  }
  // r = a/b: with g = ∇r = (∇a − r∇b)/b, ∇²r = (∇²a − r∇²b − (g∇bᵀ + ∇b gᵀ))/b.
  DDN_AD_INLINE static SecondOrder Quotient(const SecondOrder& a, const SecondOrder& b) {
    const double ib = 1.0 / b.value_, q = a.value_ * ib;
    SecondOrder r(q);
    for (int i = 0; i < N; ++i) r.g_[i] = ib * (a.g_[i] - q * b.g_[i]);
    if constexpr (!kSecond) return r;
    for (int i = 0, k = 0; i < N; ++i)
      for (int j = 0; j <= i; ++j, ++k)
        if (j < R) r.h_[k] = ib * (a.h_[k] - q * b.h_[k] - (r.g_[i] * b.g_[j] + b.g_[i] * r.g_[j]));
    return r;
  }

 private:
  DDN_AD_INLINE void CopyFrom(const SecondOrder& o) {
    value_ = o.value_;
    for (int i = 0; i < N; ++i) g_[i] = o.g_[i];
    for (int k = 0; k < kPacked; ++k) h_[k] = o.h_[k];
  }

  double value_ = 0.0;
  double g_[N] = {};
  double h_[kPacked] = {};
};

template <int N>
using FirstOrder = SecondOrder<N, 0>;

template <class S>
struct IsAdScalar : std::false_type {};
template <>
struct IsAdScalar<TapeScalar> : std::true_type {};
template <int N, int R>
struct IsAdScalar<SecondOrder<N, R>> : std::true_type {};
template <class S>
using EnableAd = std::enable_if_t<IsAdScalar<S>::value, int>;

}  // namespace ad

// One recorded operation: v = φ(a, b) with ∂φ/∂a, ∂φ/∂b and the second partials (b = −1: unary).
struct TapeNode {
  int a = -1, b = -1;
  double da = 0, db = 0;
  double daa = 0, dab = 0, dbb = 0;
};

class Tape {
 public:
  // Starts a recording on this thread (clears the previous one). Nested recordings are not supported.
  void Begin();
  // Stops recording on this thread.
  void End();
  // A new independent variable (recorded first, before any operation, so that its index is < every
  // operation's). Returns the variable; its index is variable number k = the k-th call since Begin.
  TapeScalar Variable(double value);
  int num_variables() const { return num_variables_; }
  int size() const { return static_cast<int>(nodes_.size()); }

  // ∇ Σ_k w_k out_k with respect to the variables: grad[variable] += ... (size num_variables).
  void Gradient(const std::vector<TapeScalar>& outputs, const std::vector<double>& weights, double* grad);
  // The same sweep with absolute values, |w_k| and |∂φ/∂v|: per variable an upper bound of the sum of the
  // magnitudes of the contributions to the gradient (the scale of its rounding error).
  void AbsoluteGradient(const std::vector<TapeScalar>& outputs, const std::vector<double>& weights, double* grad);
  // The gradient of each output (one row each): entries (row = output number, col = variable, value).
  void JacobianRows(const std::vector<TapeScalar>& outputs, std::vector<SparseEntry>* rows);
  // The Hessian of Σ_k w_k out_k with respect to the variables, lower triangle (row ≥ col) with duplicates,
  // by edge pushing; also adds the gradient of the same sum to `grad` if given.
  void Hessian(const std::vector<TapeScalar>& outputs, const std::vector<double>& weights,
               std::vector<SparseEntry>* lower, double* grad = nullptr);

  // Recording (used by TapeScalar's operations).
  static Tape* Active();
  TapeScalar Record(double value, const TapeNode& node);

 private:
  struct Edge {
    int to;
    double weight;
  };
  void AddEdge(int i, int j, double w);

  std::vector<TapeNode> nodes_;
  int num_variables_ = 0;
  // Sweep workspaces, kept between calls.
  std::vector<double> adjoint_;
  std::vector<std::vector<Edge>> edges_;
  std::vector<int> stamp_;
  int generation_ = 0;
  std::vector<int> cone_;
};

// ---- operations, defined once for TapeScalar and SecondOrder<N> ---------------------------------------
namespace ad {

inline TapeScalar TapeScalar::Apply1(const TapeScalar& a, double value, double d1, double d2) {
  if (a.index() < 0) return TapeScalar(value);
  TapeNode n;
  n.a = a.index();
  n.da = d1;
  n.daa = d2;
  return Tape::Active()->Record(value, n);
}

inline TapeScalar TapeScalar::Apply2(const TapeScalar& a, const TapeScalar& b, double value, double da, double db,
                                     double daa, double dab, double dbb) {
  if (a.index() < 0 && b.index() < 0) return TapeScalar(value);
  if (b.index() < 0) return Apply1(a, value, da, daa);
  if (a.index() < 0) return Apply1(b, value, db, dbb);
  TapeNode n;
  if (a.index() == b.index()) {  // φ(a, a): one operand
    n.a = a.index();
    n.da = da + db;
    n.daa = daa + 2 * dab + dbb;
  } else {
    n.a = a.index();
    n.b = b.index();
    n.da = da;
    n.db = db;
    n.daa = daa;
    n.dab = dab;
    n.dbb = dbb;
  }
  return Tape::Active()->Record(value, n);
}

template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator+(const S& a) {
  return a;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator-(const S& a) {
  return S::Linear1(a, -a.value(), -1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator+(const S& a, const S& b) {
  return S::Linear2(a, b, a.value() + b.value(), 1, 1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator-(const S& a, const S& b) {
  return S::Linear2(a, b, a.value() - b.value(), 1, -1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator*(const S& a, const S& b) {
  return S::Product(a, b);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator/(const S& a, const S& b) {
  return S::Quotient(a, b);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator+(const S& a, double s) {
  return S::Linear1(a, a.value() + s, 1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator+(double s, const S& a) {
  return a + s;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator-(const S& a, double s) {
  return S::Linear1(a, a.value() - s, 1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator-(double s, const S& a) {
  return S::Linear1(a, s - a.value(), -1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator*(const S& a, double s) {
  return S::Linear1(a, a.value() * s, s);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator*(double s, const S& a) {
  return a * s;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator/(const S& a, double s) {
  return S::Linear1(a, a.value() / s, 1 / s);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S operator/(double s, const S& a) {
  const double ia = 1.0 / a.value(), q = s * ia;
  return S::Apply1(a, q, -q * ia, 2 * q * ia * ia);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator+=(S& a, const S& b) {
  return a = a + b;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator-=(S& a, const S& b) {
  return a = a - b;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator*=(S& a, const S& b) {
  return a = a * b;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator/=(S& a, const S& b) {
  return a = a / b;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator+=(S& a, double s) {
  return a = a + s;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator-=(S& a, double s) {
  return a = a - s;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator*=(S& a, double s) {
  return a = a * s;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S& operator/=(S& a, double s) {
  return a = a / s;
}

// Comparisons compare values (as ceres::Jet's do), with the scalar or a double on either side.
#define DDN_AD_COMPARISON(op)                              \
  template <class S, EnableAd<S> = 0>                      \
  DDN_AD_INLINE bool operator op(const S& a, const S& b) { \
    return a.value() op b.value();                         \
  }                                                        \
  template <class S, EnableAd<S> = 0>                      \
  DDN_AD_INLINE bool operator op(const S& a, double b) {   \
    return a.value() op b;                                 \
  }                                                        \
  template <class S, EnableAd<S> = 0>                      \
  DDN_AD_INLINE bool operator op(double a, const S& b) {   \
    return a op b.value();                                 \
  }
DDN_AD_COMPARISON(<)
DDN_AD_COMPARISON(<=)
DDN_AD_COMPARISON(>)
DDN_AD_COMPARISON(>=)
DDN_AD_COMPARISON(==)
DDN_AD_COMPARISON(!=)
#undef DDN_AD_COMPARISON

std::ostream& operator<<(std::ostream& out, const TapeScalar& t);

// ---- functions: the set ceres::Jet offers (ceres/jet.h, Ceres 2.1) ----------------------------------------
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S abs(const S& a) {
  const double s = a.value() < 0 ? -1.0 : 1.0;  // as Jet: the derivative at 0 is +1
  return S::Apply1(a, std::abs(a.value()), s, 0);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S copysign(const S& a, const S& b) {
  const double s = std::signbit(a.value()) == std::signbit(b.value()) ? 1.0 : -1.0;
  return S::Apply1(a, std::copysign(a.value(), b.value()), s, 0);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S log(const S& a) {
  const double i = 1.0 / a.value();
  return S::Apply1(a, std::log(a.value()), i, -i * i);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S log10(const S& a) {
  const double i = 1.0 / (a.value() * std::log(10.0));
  return S::Apply1(a, std::log10(a.value()), i, -i / a.value());
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S log2(const S& a) {
  const double i = 1.0 / (a.value() * std::log(2.0));
  return S::Apply1(a, std::log2(a.value()), i, -i / a.value());
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S log1p(const S& a) {
  const double i = 1.0 / (1.0 + a.value());
  return S::Apply1(a, std::log1p(a.value()), i, -i * i);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S exp(const S& a) {
  const double e = std::exp(a.value());
  return S::Apply1(a, e, e, e);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S expm1(const S& a) {
  const double e = std::exp(a.value());
  return S::Apply1(a, std::expm1(a.value()), e, e);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S exp2(const S& a) {
  const double e = std::exp2(a.value()), l = std::log(2.0);
  return S::Apply1(a, e, e * l, e * l * l);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S sqrt(const S& a) {
  // φ' = 1/(2√x) = √x/(2x), φ'' = −1/(4x√x) = −φ'/(2x): one division, by x, which runs alongside the square root
  // instead of after it (a term's derivatives wait on divisions). Outside [1e-300, 1e300] (where 1/x would
  // overflow or lose digits) and for 0, ∞ and NaN, the direct forms (an infinite φ' at 0, as ceres::Jet's).
  const double x = a.value(), s = std::sqrt(x);
  if (__builtin_expect(x >= 1e-300 && x <= 1e300, 1)) {
    const double ix = 1.0 / x, d1 = 0.5 * s * ix;
    return S::Apply1(a, s, d1, -0.5 * d1 * ix);
  }
  return S::Apply1(a, s, 0.5 / s, -0.25 / (s * x));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S cbrt(const S& a) {
  const double c = std::cbrt(a.value());
  const double d1 = 1.0 / (3.0 * c * c);
  return S::Apply1(a, c, d1, -2.0 * d1 / (3.0 * a.value()));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S cos(const S& a) {
  return S::Apply1(a, std::cos(a.value()), -std::sin(a.value()), -std::cos(a.value()));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S sin(const S& a) {
  return S::Apply1(a, std::sin(a.value()), std::cos(a.value()), -std::sin(a.value()));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S tan(const S& a) {
  const double t = std::tan(a.value()), d1 = 1 + t * t;
  return S::Apply1(a, t, d1, 2 * t * d1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S acos(const S& a) {
  const double x = a.value(), r = 1.0 / std::sqrt(1 - x * x);
  return S::Apply1(a, std::acos(x), -r, -x * r * r * r);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S asin(const S& a) {
  const double x = a.value(), r = 1.0 / std::sqrt(1 - x * x);
  return S::Apply1(a, std::asin(x), r, x * r * r * r);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S atan(const S& a) {
  const double x = a.value(), i = 1.0 / (1 + x * x);
  return S::Apply1(a, std::atan(x), i, -2 * x * i * i);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S sinh(const S& a) {
  return S::Apply1(a, std::sinh(a.value()), std::cosh(a.value()), std::sinh(a.value()));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S cosh(const S& a) {
  return S::Apply1(a, std::cosh(a.value()), std::sinh(a.value()), std::cosh(a.value()));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S tanh(const S& a) {
  const double t = std::tanh(a.value()), d1 = 1 - t * t;
  return S::Apply1(a, t, d1, -2 * t * d1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S floor(const S& a) {
  return S(std::floor(a.value()));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S ceil(const S& a) {
  return S(std::ceil(a.value()));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S norm(const S& a) {
  return a * a;  // as ceres::norm: the square
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S erf(const S& a) {
  const double x = a.value(), d1 = 2.0 / std::sqrt(M_PI) * std::exp(-x * x);
  return S::Apply1(a, std::erf(x), d1, -2 * x * d1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S erfc(const S& a) {
  const double x = a.value(), d1 = -2.0 / std::sqrt(M_PI) * std::exp(-x * x);
  return S::Apply1(a, std::erfc(x), d1, -2 * x * d1);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S atan2(const S& y, const S& x) {
  const double u = y.value(), v = x.value(), r2 = u * u + v * v, i2 = 1.0 / (r2 * r2);
  // ∂/∂y = x/r², ∂/∂x = −y/r², and the second partials of atan2(y, x).
  return S::Apply2(y, x, std::atan2(u, v), v / r2, -u / r2, -2 * u * v * i2, (u * u - v * v) * i2, 2 * u * v * i2);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S hypot(const S& x, const S& y) {
  const double u = x.value(), v = y.value(), h = std::hypot(u, v), h3 = h * h * h;
  return S::Apply2(x, y, h, u / h, v / h, v * v / h3, -u * v / h3, u * u / h3);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S hypot(const S& x, const S& y, const S& z) {
  return sqrt(x * x + y * y + z * z);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fma(const S& x, const S& y, const S& z) {
  return x * y + z;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fmax(const S& a, const S& b) {
  return a.value() >= b.value() || std::isnan(b.value()) ? a : b;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fmin(const S& a, const S& b) {
  return a.value() <= b.value() || std::isnan(b.value()) ? a : b;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fmax(const S& a, double b) {
  return fmax(a, S(b));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fmax(double a, const S& b) {
  return fmax(S(a), b);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fmin(const S& a, double b) {
  return fmin(a, S(b));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fmin(double a, const S& b) {
  return fmin(S(a), b);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fdim(const S& a, const S& b) {
  return a > b ? a - b : S(0.0);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fdim(const S& a, double b) {
  return fdim(a, S(b));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S fdim(double a, const S& b) {
  return fdim(S(a), b);
}
// pow(f, g) = exp(g log f) where f > 0, with the special cases of ceres::pow (f = 0).
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S pow(const S& f, double g) {
  const double x = f.value();
  const double d1 = g * std::pow(x, g - 1.0), d2 = g * (g - 1.0) * std::pow(x, g - 2.0);
  return S::Apply1(f, std::pow(x, g), d1, d2);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S pow(double f, const S& g) {
  if (f == 0 && g.value() > 0) return S(0.0);
  const double v = std::pow(f, g.value()), l = std::log(f);
  return S::Apply1(g, v, v * l, v * l * l);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S pow(const S& f, const S& g) {
  const double x = f.value(), p = g.value();
  if (x == 0 && p >= 1) return p > 1 ? S(0.0) : f;
  const double v = std::pow(x, p), l = std::log(x);
  const double dx = p * std::pow(x, p - 1.0), dp = v * l;
  const double dxx = p * (p - 1.0) * std::pow(x, p - 2.0), dxp = std::pow(x, p - 1.0) * (1.0 + p * l), dpp = v * l * l;
  return S::Apply2(f, g, v, dx, dp, dxx, dxp, dpp);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S lerp(const S& a, const S& b, const S& t) {
  return (S(1.0) - t) * a + t * b;
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S midpoint(const S& a, const S& b) {
  return 0.5 * (a + b);
}
// Bessel functions of the first kind (derivatives by the recurrences J0' = −J1, Jn' = (J(n−1) − J(n+1))/2).
double BesselJnValue(int n, double x);
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S BesselJn(int n, const S& a) {
  const double x = a.value();
  return S::Apply1(a, BesselJnValue(n, x), 0.5 * (BesselJnValue(n - 1, x) - BesselJnValue(n + 1, x)),
                   0.25 * (BesselJnValue(n - 2, x) - 2 * BesselJnValue(n, x) + BesselJnValue(n + 2, x)));
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S BesselJ0(const S& a) {
  return BesselJn(0, a);
}
template <class S, EnableAd<S> = 0>
DDN_AD_INLINE S BesselJ1(const S& a) {
  return BesselJn(1, a);
}

template <class S, EnableAd<S> = 0>
inline bool isfinite(const S& a) {
  return std::isfinite(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool isinf(const S& a) {
  return std::isinf(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool isnan(const S& a) {
  return std::isnan(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool isnormal(const S& a) {
  return std::isnormal(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool signbit(const S& a) {
  return std::signbit(a.value());
}
template <class S, EnableAd<S> = 0>
inline int fpclassify(const S& a) {
  return std::fpclassify(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool IsFinite(const S& a) {
  return std::isfinite(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool IsInfinite(const S& a) {
  return std::isinf(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool IsNaN(const S& a) {
  return std::isnan(a.value());
}
template <class S, EnableAd<S> = 0>
inline bool IsNormal(const S& a) {
  return std::isnormal(a.value());
}
template <class L, class R>
inline bool isless(const L& a, const R& b) {
  return a < b;
}
template <class L, class R>
inline bool isgreater(const L& a, const R& b) {
  return a > b;
}
template <class L, class R>
inline bool islessequal(const L& a, const R& b) {
  return a <= b;
}
template <class L, class R>
inline bool isgreaterequal(const L& a, const R& b) {
  return a >= b;
}
template <class L, class R>
inline bool islessgreater(const L& a, const R& b) {
  return a < b || a > b;
}
template <class L, class R>
inline bool isunordered(const L& a, const R& b) {
  return isnan(a) || isnan(b);
}

}  // namespace ad

namespace internal {
template <>
struct ScalarTraits<TapeScalar> {
  static TapeScalar Make(double c) { return TapeScalar(c); }
  static double Value(const TapeScalar& t) { return t.value(); }
};
template <int N, int K>
struct ScalarTraits<ad::SecondOrder<N, K>> {
  static ad::SecondOrder<N, K> Make(double c) { return ad::SecondOrder<N, K>(c); }
  static double Value(const ad::SecondOrder<N, K>& t) { return t.value(); }
};
}  // namespace internal

}  // namespace ddn

namespace std {
template <>
struct numeric_limits<ddn::TapeScalar> : numeric_limits<double> {
  static ddn::TapeScalar min() noexcept { return ddn::TapeScalar(numeric_limits<double>::min()); }
  static ddn::TapeScalar max() noexcept { return ddn::TapeScalar(numeric_limits<double>::max()); }
  static ddn::TapeScalar lowest() noexcept { return ddn::TapeScalar(numeric_limits<double>::lowest()); }
  static ddn::TapeScalar epsilon() noexcept { return ddn::TapeScalar(numeric_limits<double>::epsilon()); }
  static ddn::TapeScalar round_error() noexcept { return ddn::TapeScalar(numeric_limits<double>::round_error()); }
  static ddn::TapeScalar infinity() noexcept { return ddn::TapeScalar(numeric_limits<double>::infinity()); }
  static ddn::TapeScalar quiet_NaN() noexcept { return ddn::TapeScalar(numeric_limits<double>::quiet_NaN()); }
  static ddn::TapeScalar signaling_NaN() noexcept { return ddn::TapeScalar(numeric_limits<double>::signaling_NaN()); }
  static ddn::TapeScalar denorm_min() noexcept { return ddn::TapeScalar(numeric_limits<double>::denorm_min()); }
};
}  // namespace std

namespace std {
template <int N, int K>
struct numeric_limits<ddn::ad::SecondOrder<N, K>> : numeric_limits<double> {
  using S = ddn::ad::SecondOrder<N, K>;
  static S min() noexcept { return S(numeric_limits<double>::min()); }
  static S max() noexcept { return S(numeric_limits<double>::max()); }
  static S lowest() noexcept { return S(numeric_limits<double>::lowest()); }
  static S epsilon() noexcept { return S(numeric_limits<double>::epsilon()); }
  static S round_error() noexcept { return S(numeric_limits<double>::round_error()); }
  static S infinity() noexcept { return S(numeric_limits<double>::infinity()); }
  static S quiet_NaN() noexcept { return S(numeric_limits<double>::quiet_NaN()); }
  static S signaling_NaN() noexcept { return S(numeric_limits<double>::signaling_NaN()); }
  static S denorm_min() noexcept { return S(numeric_limits<double>::denorm_min()); }
};
}  // namespace std

namespace Eigen {
template <int N, int K>
struct NumTraits<ddn::ad::SecondOrder<N, K>> : NumTraits<double> {
  using Real = ddn::ad::SecondOrder<N, K>;
  using NonInteger = ddn::ad::SecondOrder<N, K>;
  using Nested = ddn::ad::SecondOrder<N, K>;
  using Literal = ddn::ad::SecondOrder<N, K>;
  enum {
    IsComplex = 0,
    IsInteger = 0,
    IsSigned = 1,
    RequireInitialization = 1,
    ReadCost = 2,
    AddCost = 8,
    MulCost = 8
  };
};
template <>
struct NumTraits<ddn::TapeScalar> : NumTraits<double> {
  using Real = ddn::TapeScalar;
  using NonInteger = ddn::TapeScalar;
  using Nested = ddn::TapeScalar;
  using Literal = ddn::TapeScalar;
  enum {
    IsComplex = 0,
    IsInteger = 0,
    IsSigned = 1,
    RequireInitialization = 1,
    ReadCost = 2,
    AddCost = 8,
    MulCost = 8
  };
};
}  // namespace Eigen
