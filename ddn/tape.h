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
// Use (engine internal): Tape tape; tape.Begin(); TapeScalar y = tape.Variable(1.5); ... evaluate ...;
// tape.End(); then Gradient/JacobianRows/Hessian on the outputs' indices. One tape per thread is active at a
// time (TapeScalar operations record on it).
#pragma once

#include <cmath>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "ddn/generic_solver.h"  // SparseEntry
#include "ddn/scalar.h"

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

  TapeScalar& operator+=(const TapeScalar& o);
  TapeScalar& operator-=(const TapeScalar& o);
  TapeScalar& operator*=(const TapeScalar& o);
  TapeScalar& operator/=(const TapeScalar& o);
  TapeScalar& operator+=(double s);
  TapeScalar& operator-=(double s);
  TapeScalar& operator*=(double s);
  TapeScalar& operator/=(double s);

  // Engine use: a value recorded at `index`.
  static TapeScalar Recorded(double value, int index) {
    TapeScalar t(value);
    t.index_ = index;
    return t;
  }

 private:
  double value_ = 0.0;
  int index_ = -1;
};

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

// ---- operations ---------------------------------------------------------------------------------------
namespace ad {
namespace tape_internal {
// r = φ(a) with φ' = d1, φ'' = d2.
inline TapeScalar Unary(const TapeScalar& a, double value, double d1, double d2) {
  if (a.index() < 0) return TapeScalar(value);
  TapeNode n;
  n.a = a.index();
  n.da = d1;
  n.daa = d2;
  return Tape::Active()->Record(value, n);
}
// r = φ(a, b) with its first and second partials.
inline TapeScalar Binary(const TapeScalar& a, const TapeScalar& b, double value, double da, double db, double daa,
                         double dab, double dbb) {
  if (a.index() < 0 && b.index() < 0) return TapeScalar(value);
  if (b.index() < 0) return Unary(a, value, da, daa);
  if (a.index() < 0) return Unary(b, value, db, dbb);
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
}  // namespace tape_internal

inline TapeScalar operator+(const TapeScalar& a) { return a; }
inline TapeScalar operator-(const TapeScalar& a) { return tape_internal::Unary(a, -a.value(), -1, 0); }
inline TapeScalar operator+(const TapeScalar& a, const TapeScalar& b) {
  return tape_internal::Binary(a, b, a.value() + b.value(), 1, 1, 0, 0, 0);
}
inline TapeScalar operator-(const TapeScalar& a, const TapeScalar& b) {
  return tape_internal::Binary(a, b, a.value() - b.value(), 1, -1, 0, 0, 0);
}
inline TapeScalar operator*(const TapeScalar& a, const TapeScalar& b) {
  return tape_internal::Binary(a, b, a.value() * b.value(), b.value(), a.value(), 0, 1, 0);
}
inline TapeScalar operator/(const TapeScalar& a, const TapeScalar& b) {
  const double ib = 1.0 / b.value(), q = a.value() * ib;
  return tape_internal::Binary(a, b, q, ib, -q * ib, 0, -ib * ib, 2 * q * ib * ib);
}
inline TapeScalar operator+(const TapeScalar& a, double s) { return tape_internal::Unary(a, a.value() + s, 1, 0); }
inline TapeScalar operator+(double s, const TapeScalar& a) { return a + s; }
inline TapeScalar operator-(const TapeScalar& a, double s) { return tape_internal::Unary(a, a.value() - s, 1, 0); }
inline TapeScalar operator-(double s, const TapeScalar& a) { return tape_internal::Unary(a, s - a.value(), -1, 0); }
inline TapeScalar operator*(const TapeScalar& a, double s) { return tape_internal::Unary(a, a.value() * s, s, 0); }
inline TapeScalar operator*(double s, const TapeScalar& a) { return a * s; }
inline TapeScalar operator/(const TapeScalar& a, double s) { return tape_internal::Unary(a, a.value() / s, 1 / s, 0); }
inline TapeScalar operator/(double s, const TapeScalar& a) {
  const double ia = 1.0 / a.value(), q = s * ia;
  return tape_internal::Unary(a, q, -q * ia, 2 * q * ia * ia);
}

inline TapeScalar& TapeScalar::operator+=(const TapeScalar& o) { return *this = *this + o; }
inline TapeScalar& TapeScalar::operator-=(const TapeScalar& o) { return *this = *this - o; }
inline TapeScalar& TapeScalar::operator*=(const TapeScalar& o) { return *this = *this * o; }
inline TapeScalar& TapeScalar::operator/=(const TapeScalar& o) { return *this = *this / o; }
inline TapeScalar& TapeScalar::operator+=(double s) { return *this = *this + s; }
inline TapeScalar& TapeScalar::operator-=(double s) { return *this = *this - s; }
inline TapeScalar& TapeScalar::operator*=(double s) { return *this = *this * s; }
inline TapeScalar& TapeScalar::operator/=(double s) { return *this = *this / s; }

// Comparisons compare values (as ceres::Jet's do), with TapeScalar or double on either side.
#define DDN_TAPE_COMPARISON(op)                                                                         \
  inline bool operator op(const TapeScalar& a, const TapeScalar& b) { return a.value() op b.value(); } \
  inline bool operator op(const TapeScalar& a, double b) { return a.value() op b; }                    \
  inline bool operator op(double a, const TapeScalar& b) { return a op b.value(); }
DDN_TAPE_COMPARISON(<)
DDN_TAPE_COMPARISON(<=)
DDN_TAPE_COMPARISON(>)
DDN_TAPE_COMPARISON(>=)
DDN_TAPE_COMPARISON(==)
DDN_TAPE_COMPARISON(!=)
#undef DDN_TAPE_COMPARISON

std::ostream& operator<<(std::ostream& out, const TapeScalar& t);

// ---- functions: the set ceres::Jet offers (ceres/jet.h, Ceres 2.1) ----------------------------------------
inline TapeScalar abs(const TapeScalar& a) {
  const double s = a.value() < 0 ? -1.0 : 1.0;  // as Jet: the derivative at 0 is +1
  return tape_internal::Unary(a, std::abs(a.value()), s, 0);
}
inline TapeScalar copysign(const TapeScalar& a, const TapeScalar& b) {
  const double s = std::signbit(a.value()) == std::signbit(b.value()) ? 1.0 : -1.0;
  return tape_internal::Unary(a, std::copysign(a.value(), b.value()), s, 0);
}
inline TapeScalar log(const TapeScalar& a) {
  const double i = 1.0 / a.value();
  return tape_internal::Unary(a, std::log(a.value()), i, -i * i);
}
inline TapeScalar log10(const TapeScalar& a) {
  const double i = 1.0 / (a.value() * std::log(10.0));
  return tape_internal::Unary(a, std::log10(a.value()), i, -i / a.value());
}
inline TapeScalar log2(const TapeScalar& a) {
  const double i = 1.0 / (a.value() * std::log(2.0));
  return tape_internal::Unary(a, std::log2(a.value()), i, -i / a.value());
}
inline TapeScalar log1p(const TapeScalar& a) {
  const double i = 1.0 / (1.0 + a.value());
  return tape_internal::Unary(a, std::log1p(a.value()), i, -i * i);
}
inline TapeScalar exp(const TapeScalar& a) {
  const double e = std::exp(a.value());
  return tape_internal::Unary(a, e, e, e);
}
inline TapeScalar expm1(const TapeScalar& a) {
  const double e = std::exp(a.value());
  return tape_internal::Unary(a, std::expm1(a.value()), e, e);
}
inline TapeScalar exp2(const TapeScalar& a) {
  const double e = std::exp2(a.value()), l = std::log(2.0);
  return tape_internal::Unary(a, e, e * l, e * l * l);
}
inline TapeScalar sqrt(const TapeScalar& a) {
  const double s = std::sqrt(a.value());
  return tape_internal::Unary(a, s, 0.5 / s, -0.25 / (s * a.value()));
}
inline TapeScalar cbrt(const TapeScalar& a) {
  const double c = std::cbrt(a.value());
  const double d1 = 1.0 / (3.0 * c * c);
  return tape_internal::Unary(a, c, d1, -2.0 * d1 / (3.0 * a.value()));
}
inline TapeScalar cos(const TapeScalar& a) {
  return tape_internal::Unary(a, std::cos(a.value()), -std::sin(a.value()), -std::cos(a.value()));
}
inline TapeScalar sin(const TapeScalar& a) {
  return tape_internal::Unary(a, std::sin(a.value()), std::cos(a.value()), -std::sin(a.value()));
}
inline TapeScalar tan(const TapeScalar& a) {
  const double t = std::tan(a.value()), d1 = 1 + t * t;
  return tape_internal::Unary(a, t, d1, 2 * t * d1);
}
inline TapeScalar acos(const TapeScalar& a) {
  const double x = a.value(), r = 1.0 / std::sqrt(1 - x * x);
  return tape_internal::Unary(a, std::acos(x), -r, -x * r * r * r);
}
inline TapeScalar asin(const TapeScalar& a) {
  const double x = a.value(), r = 1.0 / std::sqrt(1 - x * x);
  return tape_internal::Unary(a, std::asin(x), r, x * r * r * r);
}
inline TapeScalar atan(const TapeScalar& a) {
  const double x = a.value(), i = 1.0 / (1 + x * x);
  return tape_internal::Unary(a, std::atan(x), i, -2 * x * i * i);
}
inline TapeScalar sinh(const TapeScalar& a) {
  return tape_internal::Unary(a, std::sinh(a.value()), std::cosh(a.value()), std::sinh(a.value()));
}
inline TapeScalar cosh(const TapeScalar& a) {
  return tape_internal::Unary(a, std::cosh(a.value()), std::sinh(a.value()), std::cosh(a.value()));
}
inline TapeScalar tanh(const TapeScalar& a) {
  const double t = std::tanh(a.value()), d1 = 1 - t * t;
  return tape_internal::Unary(a, t, d1, -2 * t * d1);
}
inline TapeScalar floor(const TapeScalar& a) { return TapeScalar(std::floor(a.value())); }
inline TapeScalar ceil(const TapeScalar& a) { return TapeScalar(std::ceil(a.value())); }
inline TapeScalar norm(const TapeScalar& a) { return a * a; }  // as ceres::norm: the square
inline TapeScalar erf(const TapeScalar& a) {
  const double x = a.value(), d1 = 2.0 / std::sqrt(M_PI) * std::exp(-x * x);
  return tape_internal::Unary(a, std::erf(x), d1, -2 * x * d1);
}
inline TapeScalar erfc(const TapeScalar& a) {
  const double x = a.value(), d1 = -2.0 / std::sqrt(M_PI) * std::exp(-x * x);
  return tape_internal::Unary(a, std::erfc(x), d1, -2 * x * d1);
}
inline TapeScalar atan2(const TapeScalar& y, const TapeScalar& x) {
  const double u = y.value(), v = x.value(), r2 = u * u + v * v, i2 = 1.0 / (r2 * r2);
  // ∂/∂y = x/r², ∂/∂x = −y/r²; second partials of atan2(y, x).
  return tape_internal::Binary(y, x, std::atan2(u, v), v / r2, -u / r2, -2 * u * v * i2, (u * u - v * v) * i2,
                               2 * u * v * i2);
}
inline TapeScalar hypot(const TapeScalar& x, const TapeScalar& y) {
  const double u = x.value(), v = y.value(), h = std::hypot(u, v), h3 = h * h * h;
  return tape_internal::Binary(x, y, h, u / h, v / h, v * v / h3, -u * v / h3, u * u / h3);
}
inline TapeScalar hypot(const TapeScalar& x, const TapeScalar& y, const TapeScalar& z) {
  return sqrt(x * x + y * y + z * z);
}
inline TapeScalar fma(const TapeScalar& x, const TapeScalar& y, const TapeScalar& z) { return x * y + z; }
inline TapeScalar fmax(const TapeScalar& a, const TapeScalar& b) { return a.value() >= b.value() || std::isnan(b.value()) ? a : b; }
inline TapeScalar fmin(const TapeScalar& a, const TapeScalar& b) { return a.value() <= b.value() || std::isnan(b.value()) ? a : b; }
inline TapeScalar fmax(const TapeScalar& a, double b) { return fmax(a, TapeScalar(b)); }
inline TapeScalar fmax(double a, const TapeScalar& b) { return fmax(TapeScalar(a), b); }
inline TapeScalar fmin(const TapeScalar& a, double b) { return fmin(a, TapeScalar(b)); }
inline TapeScalar fmin(double a, const TapeScalar& b) { return fmin(TapeScalar(a), b); }
inline TapeScalar fdim(const TapeScalar& a, const TapeScalar& b) { return a > b ? a - b : TapeScalar(0.0); }
inline TapeScalar fdim(const TapeScalar& a, double b) { return fdim(a, TapeScalar(b)); }
inline TapeScalar fdim(double a, const TapeScalar& b) { return fdim(TapeScalar(a), b); }
// pow(f, g) = exp(g log f) where f > 0, with the special cases of ceres::pow (f = 0, f < 0 with integer g).
inline TapeScalar pow(const TapeScalar& f, double g) {
  const double x = f.value();
  const double d1 = g * std::pow(x, g - 1.0), d2 = g * (g - 1.0) * std::pow(x, g - 2.0);
  return tape_internal::Unary(f, std::pow(x, g), d1, d2);
}
inline TapeScalar pow(double f, const TapeScalar& g) {
  if (f == 0 && g.value() > 0) return TapeScalar(0.0);
  const double v = std::pow(f, g.value()), l = std::log(f);
  return tape_internal::Unary(g, v, v * l, v * l * l);
}
inline TapeScalar pow(const TapeScalar& f, const TapeScalar& g) {
  if (g.index() < 0) return pow(f, g.value());
  if (f.index() < 0) return pow(f.value(), g);
  const double x = f.value(), p = g.value();
  if (x == 0 && p >= 1) return p > 1 ? TapeScalar(0.0) : f;
  const double v = std::pow(x, p), l = std::log(x);
  const double dx = p * std::pow(x, p - 1.0), dp = v * l;
  const double dxx = p * (p - 1.0) * std::pow(x, p - 2.0), dxp = std::pow(x, p - 1.0) * (1.0 + p * l),
               dpp = v * l * l;
  return tape_internal::Binary(f, g, v, dx, dp, dxx, dxp, dpp);
}
inline TapeScalar lerp(const TapeScalar& a, const TapeScalar& b, const TapeScalar& t) {
  return (TapeScalar(1.0) - t) * a + t * b;
}
inline TapeScalar midpoint(const TapeScalar& a, const TapeScalar& b) { return 0.5 * (a + b); }
// Bessel functions of the first kind (derivatives by the recurrences J0' = −J1, Jn' = (J(n−1) − J(n+1))/2).
TapeScalar BesselJ0(const TapeScalar& a);
TapeScalar BesselJ1(const TapeScalar& a);
TapeScalar BesselJn(int n, const TapeScalar& a);

inline bool isfinite(const TapeScalar& a) { return std::isfinite(a.value()); }
inline bool isinf(const TapeScalar& a) { return std::isinf(a.value()); }
inline bool isnan(const TapeScalar& a) { return std::isnan(a.value()); }
inline bool isnormal(const TapeScalar& a) { return std::isnormal(a.value()); }
inline bool signbit(const TapeScalar& a) { return std::signbit(a.value()); }
inline int fpclassify(const TapeScalar& a) { return std::fpclassify(a.value()); }
inline bool IsFinite(const TapeScalar& a) { return std::isfinite(a.value()); }
inline bool IsInfinite(const TapeScalar& a) { return std::isinf(a.value()); }
inline bool IsNaN(const TapeScalar& a) { return std::isnan(a.value()); }
inline bool IsNormal(const TapeScalar& a) { return std::isnormal(a.value()); }
template <class L, class R>
inline bool isless(const L& a, const R& b) { return a < b; }
template <class L, class R>
inline bool isgreater(const L& a, const R& b) { return a > b; }
template <class L, class R>
inline bool islessequal(const L& a, const R& b) { return a <= b; }
template <class L, class R>
inline bool isgreaterequal(const L& a, const R& b) { return a >= b; }
template <class L, class R>
inline bool islessgreater(const L& a, const R& b) { return a < b || a > b; }
template <class L, class R>
inline bool isunordered(const L& a, const R& b) { return isnan(a) || isnan(b); }

}  // namespace ad

namespace internal {
template <>
struct ScalarTraits<TapeScalar> {
  static TapeScalar Make(double c) { return TapeScalar(c); }
  static double Value(const TapeScalar& t) { return t.value(); }
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
  static ddn::TapeScalar signaling_NaN() noexcept {
    return ddn::TapeScalar(numeric_limits<double>::signaling_NaN());
  }
  static ddn::TapeScalar denorm_min() noexcept { return ddn::TapeScalar(numeric_limits<double>::denorm_min()); }
};
}  // namespace std

namespace Eigen {
template <>
struct NumTraits<ddn::TapeScalar> : NumTraits<double> {
  using Real = ddn::TapeScalar;
  using NonInteger = ddn::TapeScalar;
  using Nested = ddn::TapeScalar;
  using Literal = ddn::TapeScalar;
  enum { IsComplex = 0, IsInteger = 0, IsSigned = 1, RequireInitialization = 1, ReadCost = 2, AddCost = 8, MulCost = 8 };
};
}  // namespace Eigen
