// The reference library's small example nodes (ddn/pytorch/sample_nodes.py and tridiagsolve.py of Gould et al.'s
// DDN code), written as ddn declarative nodes: each is its objective and constraints and nothing more, solved and
// differentiated by the generic engine (ddn/declarative.h), except tridiag_solve, which also has the reference's
// specialised solve (the Thomas algorithm) and closed-form gradient. The tests (reference_samples_test.cc) hold
// each against the reference's closed-form solutions and analytic gradients, finite differences and its answers
// (tests/reference/samples_cases.json).
//
//   unconstrained_polynomial   y = argmin_y x y⁴ + 2x² y³ − 12 y²              UnconstPolynomial (x > 0)
//   linear_on_unit_circle      y = argmin (1, x)ᵀy  s.t. ‖y‖² = 1               LinFcnOnUnitCircle
//   constant_linear_on_circle  y = argmin (1, 1)ᵀy  s.t. ‖y‖² = x²              ConstLinFcnOnParameterizedCircle
//   linear_on_circle           y = argmin (1, x₁)ᵀy s.t. ‖y‖² = x₂²             LinFcnOnParameterizedCircle
//   quadratic_on_sphere        y = argmin ½yᵀy − xᵀy s.t. ‖y‖² = 1             QuadFcnOnSphere
//   quadratic_on_ball          y = argmin ½yᵀy − xᵀy s.t. ‖y‖² ≤ 1             QuadFcnOnBall
//   tridiag_solve              x = T⁻¹d, T tridiagonal (b main, a lower, c upper diagonal), declaratively
//                              x = argmin ½‖T x − d‖²                           tridiagsolve / TriDiagSolveFcn
//
// The reference's GlobalPseudoHuberPool2d is engine_examples.cc's pseudo_huber_mean (its m×m input flattened).
// The sample nodes' inputs are scalars or short vectors per problem, as in the reference (x of shape (B, 1) there
// is (B) here).
#include <cmath>
#include <string>

#include <ceres/sphere_manifold.h>
#include <Eigen/Dense>

#include "ddn/declarative.h"
#include "ddn/random.h"

namespace ddn::examples {
namespace {

// ---- unconstrained_polynomial ----------------------------------------------------------------------------------
// f = x y⁴ + 2x² y³ − 12 y² (Gould et al. 2016, "On differentiating parameterized argmin and argmax problems").
// Stationary points y = 0 and y = (−3x² ± √(9x⁴ + 96x)) / (4x); for x > 0 the global minimum is the one of lower f,
// which the generic solve starts from (the reference's solve returns it in closed form).
class UnconstrainedPolynomial : public DeclarativeNode<UnconstrainedPolynomial> {
 public:
  static NodeSpec Spec() {
    return {"unconstrained_polynomial",
            "y = argmin_y x y⁴ + 2x² y³ − 12 y², x > 0 (the reference's UnconstPolynomial; generic engine)",
            {},
            {{"x", {}, "the parameter x > 0"}},
            {{"y", {}, "the global minimiser"}}};
  }
  explicit UnconstrainedPolynomial(const Params&) {}
  template <typename T>
  T Objective(const Args<T>& in, const T* y) const {
    const T x = in[0][0];
    return (x * y[0] * y[0] + Constant<T>(2.0) * x * x * y[0] - Constant<T>(12.0)) * y[0] * y[0];
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    const double x = p.inputs[0][0];
    const double delta = std::sqrt(9 * x * x * x * x + 96 * x);
    const double a = (-3 * x * x - delta) / (4 * x), b = (-3 * x * x + delta) / (4 * x);
    auto f = [x](double t) { return (x * t * t + 2 * x * x * t - 12) * t * t; };
    y[0] = f(a) <= f(b) ? a : b;
  }
  void Validate(const ProblemData& p) const override {
    if (!(p.inputs[0][0] > 0)) {
      throw InvalidInput(
          "node 'unconstrained_polynomial': input 'x' must be > 0 (the objective is unbounded below or "
          "its minimum degenerate otherwise), got " +
          FormatDouble(p.inputs[0][0]));
    }
  }
  std::vector<CheckCase> CheckCases(uint64_t) const override {
    return {{"positive", {{"x", Tensor({4}, {0.25, 1.0, 2.0, 0.7})}}}};
  }
};
DDN_REGISTER_NODE(UnconstrainedPolynomial);

// ---- the circle examples ---------------------------------------------------------------------------------------
class LinearOnUnitCircle : public DeclarativeNode<LinearOnUnitCircle> {
 public:
  static NodeSpec Spec() {
    return {"linear_on_unit_circle",
            "y = argmin (1, x)ᵀy s.t. ‖y‖² = 1, so y = −(1, x)/√(1 + x²) (LinFcnOnUnitCircle; generic engine, on the "
            "circle as a Ceres manifold)",
            {},
            {{"x", {}, "the slope x"}},
            {{"y", {"2"}, "the minimiser on the unit circle"}}};
  }
  explicit LinearOnUnitCircle(const Params&) {}
  template <typename T>
  T Objective(const Args<T>& in, const T* y) const {
    return y[0] + in[0][0] * y[1];
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>&, const T* y, T* h) const {
    h[0] = y[0] * y[0] + y[1] * y[1] - Constant<T>(1.0);
  }
  ceres::Manifold* MakeManifold(const ProblemData&) const { return new ceres::SphereManifold<ceres::DYNAMIC>(2); }
  void InitialGuess(const ProblemData&, double* y) const {
    y[0] = 0.0;  // a quarter turn from the minimiser when x = 0
    y[1] = 1.0;
  }
};
DDN_REGISTER_NODE(LinearOnUnitCircle);

class ConstantLinearOnCircle : public DeclarativeNode<ConstantLinearOnCircle> {
 public:
  static NodeSpec Spec() {
    return {"constant_linear_on_circle",
            "y = argmin (1, 1)ᵀy s.t. ‖y‖² = x², so y = −|x|(1, 1)/√2 (ConstLinFcnOnParameterizedCircle; generic "
            "engine, augmented Lagrangian)",
            {},
            {{"x", {}, "the radius x ≠ 0 (its sign does not matter)"}},
            {{"y", {"2"}, "the minimiser on the circle of radius |x|"}}};
  }
  explicit ConstantLinearOnCircle(const Params&) {}
  template <typename T>
  T Objective(const Args<T>&, const T* y) const {
    return y[0] + y[1];
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    h[0] = y[0] * y[0] + y[1] * y[1] - in[0][0] * in[0][0];
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    y[0] = -std::abs(p.inputs[0][0]);
    y[1] = 0.0;
  }
  void Validate(const ProblemData& p) const override {
    if (p.inputs[0][0] == 0) {
      throw InvalidInput(
          "node 'constant_linear_on_circle': input 'x' is 0: the circle is a point, where the "
          "constraint's gradient vanishes");
    }
  }
  std::vector<CheckCase> CheckCases(uint64_t) const override {
    return {{"both_signs", {{"x", Tensor({4}, {0.5, -1.3, 2.0, -0.3})}}}};
  }
};
DDN_REGISTER_NODE(ConstantLinearOnCircle);

class LinearOnCircle : public DeclarativeNode<LinearOnCircle> {
 public:
  static NodeSpec Spec() {
    return {"linear_on_circle",
            "y = argmin (1, x₁)ᵀy s.t. ‖y‖² = x₂², so y = −|x₂|(1, x₁)/√(1 + x₁²) (LinFcnOnParameterizedCircle; "
            "generic engine, augmented Lagrangian)",
            {},
            {{"x", {"2"}, "the slope x₁ and the radius x₂ ≠ 0"}},
            {{"y", {"2"}, "the minimiser on the circle of radius |x₂|"}}};
  }
  explicit LinearOnCircle(const Params&) {}
  template <typename T>
  T Objective(const Args<T>& in, const T* y) const {
    return y[0] + in[0][0] * y[1];
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    h[0] = y[0] * y[0] + y[1] * y[1] - in[0][1] * in[0][1];
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    y[0] = -std::abs(p.inputs[0][1]);
    y[1] = 0.0;
  }
  void Validate(const ProblemData& p) const override {
    if (p.inputs[0][1] == 0) {
      throw InvalidInput(
          "node 'linear_on_circle': the radius x[1] is 0: the circle is a point, where the "
          "constraint's gradient vanishes");
    }
  }
  std::vector<CheckCase> CheckCases(uint64_t) const override {
    return {{"random", {{"x", Tensor({3, 2}, {0.3, 1.0, -1.2, -0.7, 2.0, 1.5})}}}};
  }
};
DDN_REGISTER_NODE(LinearOnCircle);

// ---- quadratic on the sphere and in the ball ---------------------------------------------------------------------
// ½yᵀy − xᵀy = ½‖y − x‖² − ½‖x‖²: the Euclidean projections of engine_examples.cc with the reference's objective.
class QuadraticOnSphere : public DeclarativeNode<QuadraticOnSphere> {
 public:
  static NodeSpec Spec() {
    return {
        "quadratic_on_sphere",
        "y = argmin ½yᵀy − xᵀy s.t. ‖y‖² = 1, so y = x/‖x‖ (QuadFcnOnSphere; generic engine on the sphere manifold)",
        {},
        {{"x", {"D"}, "the point x ≠ 0"}},
        {{"y", {"D"}, "x/‖x‖"}}};
  }
  explicit QuadraticOnSphere(const Params&) {}
  static constexpr const char* kTermAxis = "D";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    return Constant<T>(0.5) * y[0] * y[0] - in[0][0] * y[0];
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    T s = Constant<T>(-1.0);
    for (int64_t k = 0; k < in.size(0); ++k) s += y[k] * y[k];
    h[0] = s;
  }
  ceres::Manifold* MakeManifold(const ProblemData& p) const {
    return new ceres::SphereManifold<ceres::DYNAMIC>(static_cast<int>(p.InputSize(0)));
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    // A unit vector away from x's direction (the first axis, or the second if x points along the first).
    const int64_t d = p.InputSize(0);
    std::fill(y, y + d, 0.0);
    double rest = 0;
    for (int64_t k = 1; k < d; ++k) rest += p.inputs[0][k] * p.inputs[0][k];
    y[d > 1 && rest == 0 ? 1 : 0] = 1.0;
  }
  void Validate(const ProblemData& p) const override {
    for (int64_t k = 0; k < p.InputSize(0); ++k)
      if (p.inputs[0][k] != 0) return;
    throw InvalidInput("node 'quadratic_on_sphere': input 'x' is 0: every point of the sphere is a minimiser");
  }
};
DDN_REGISTER_NODE(QuadraticOnSphere);

class QuadraticOnBall : public DeclarativeNode<QuadraticOnBall> {
 public:
  static NodeSpec Spec() {
    return {"quadratic_on_ball",
            "y = argmin ½yᵀy − xᵀy s.t. ‖y‖² ≤ 1: x inside the ball, x/‖x‖ outside (QuadFcnOnBall; generic engine)",
            {},
            {{"x", {"D"}, "the point x"}},
            {{"y", {"D"}, "the nearest point of the unit ball"}}};
  }
  explicit QuadraticOnBall(const Params&) {}
  static constexpr const char* kTermAxis = "D";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    return Constant<T>(0.5) * y[0] * y[0] - in[0][0] * y[0];
  }
  int NumInequalities(const ProblemData&) const { return 1; }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    T s = Constant<T>(-1.0);
    for (int64_t k = 0; k < in.size(0); ++k) s += y[k] * y[k];
    g[0] = s;
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    std::vector<CheckCase> cases = Node::CheckCases(seed);
    cases.push_back({"inside_and_outside", {{"x", Tensor({2, 3}, {0.1, -0.4, 0.3, 1.5, 0.2, -2.0})}}});
    return cases;
  }
};
DDN_REGISTER_NODE(QuadraticOnBall);

// ---- tridiag_solve -------------------------------------------------------------------------------------------------
// T x = d for T with main diagonal b (N), lower diagonal a (N − 1, T_{i+1,i} = a_i) and upper diagonal c (N − 1,
// T_{i,i+1} = c_i), d (N, K): K right-hand sides. Declaratively x = argmin ½‖T x − d‖² (H = TᵀT ⊗ I), which the
// generic engine solves and differentiates. The specialised path is the reference's: the Thomas algorithm
// (Gaussian elimination without pivoting, stable for diagonally dominant or positive definite T), and the
// closed-form backward w = T⁻ᵀ v (the same algorithm on Tᵀ: a and c swapped), db_i = −Σ_k w_ik x_ik,
// da_i = −Σ_k w_{i+1,k} x_ik, dc_i = −Σ_k w_ik x_{i+1,k}, dd = w. A zero pivot (T singular, or Thomas' elimination
// breaking down) falls back to a dense LU with partial pivoting; a singular T is a NumericalFailure.
class TridiagSolve : public DeclarativeNode<TridiagSolve> {
 public:
  static NodeSpec Spec() {
    return {"tridiag_solve",
            "x = T⁻¹ d for tridiagonal T (main diagonal b, lower a, upper c): the reference's tridiagsolve; Thomas "
            "algorithm, generic path x = argmin ½‖Tx − d‖²",
            {},
            {{"b", {"N"}, "main diagonal b_1 … b_N"},
             {"a", {"M"}, "lower diagonal a_2 … a_N (M = N − 1)"},
             {"c", {"M"}, "upper diagonal c_1 … c_{N−1} (M = N − 1)"},
             {"d", {"N", "K"}, "K right-hand sides"}},
            {{"x", {"N", "K"}, "the solutions"}}};
  }
  explicit TridiagSolve(const Params&) {}

  template <typename T>
  T Objective(const Args<T>& in, const T* x) const {
    const int64_t n = in.Dim("N"), k = in.Dim("K");
    T f = Constant<T>(0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        T r = in[0][i] * x[i * k + j] - in[3][i * k + j];
        if (i > 0) r += in[1][i - 1] * x[(i - 1) * k + j];
        if (i + 1 < n) r += in[2][i] * x[(i + 1) * k + j];
        f += Constant<T>(0.5) * r * r;
      }
    }
    return f;
  }

  void Validate(const ProblemData& p) const override {
    if (p.Dim("M") != p.Dim("N") - 1) {
      throw InvalidInput("node 'tridiag_solve': the off-diagonals a and c must have N − 1 = " +
                         std::to_string(p.Dim("N") - 1) + " entries, got " + std::to_string(p.Dim("M")));
    }
  }
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    ThomasOrDense(p, p.inputs[1], p.inputs[2], p.inputs[3], p.outputs[0]);
    s->residual = Residual(p);
    s->iterations = 0;
  }
  void Backward(const ProblemData& p, ProblemStatus*) const override {
    const int64_t n = p.Dim("N"), k = p.Dim("K");
    std::vector<double> w(n * k);
    // Tᵀ has a and c swapped.
    ThomasOrDense(p, p.inputs[2], p.inputs[1], p.grad_outputs[0], w.data());
    const double* x = p.outputs[0];
    double *db = p.grad_inputs[0], *da = p.grad_inputs[1], *dc = p.grad_inputs[2], *dd = p.grad_inputs[3];
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const double wi = w[i * k + j];
        if (db) db[i] -= wi * x[i * k + j];
        if (da && i + 1 < n) da[i] -= w[(i + 1) * k + j] * x[i * k + j];
        if (dc && i + 1 < n) dc[i] -= wi * x[(i + 1) * k + j];
        if (dd) dd[i * k + j] += wi;
      }
    }
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    Rng rng(seed);
    auto make = [&](int64_t b, int64_t n, int64_t k, double diag) {
      Tensor main({b, n}), lower({b, n - 1}), upper({b, n - 1}), d({b, n, k});
      for (auto& v : main.values()) v = diag + 0.1 * rng.Uniform(0.0, 1.0);
      for (auto& v : lower.values()) v = -rng.Uniform(0.0, 1.0);
      for (auto& v : upper.values()) v = -rng.Uniform(0.0, 1.0);
      for (auto& v : d.values()) v = rng.Uniform(0.0, 1.0);
      return std::map<std::string, Tensor>{{"b", main}, {"a", lower}, {"c", upper}, {"d", d}};
    };
    // As the reference's tests: b = 2 + U(0, 0.1), a, c = −U(0, 1) (diagonally dominant or nearly so); and a
    // matrix far from dominant (|b| = 0.6 < |a| + |c| possible), where Thomas' elimination has no guarantee.
    return {{"dominant", make(2, 6, 3, 2.0)}, {"not_dominant", make(2, 5, 2, 0.6)}};
  }

 private:
  // Solves T' x = rhs for T' with main diagonal b = p.inputs[0], lower `lower`, upper `upper`.
  static void ThomasOrDense(const ProblemData& p, const double* lower, const double* upper, const double* rhs,
                            double* x) {
    const int64_t n = p.Dim("N"), k = p.Dim("K");
    const double* b = p.inputs[0];
    std::vector<double> cp(n);
    std::copy(rhs, rhs + n * k, x);
    bool ok = true;
    double pivot = b[0];
    for (int64_t i = 0; i < n && ok; ++i) {
      if (i > 0) pivot = b[i] - lower[i - 1] * cp[i - 1];
      if (!(std::abs(pivot) > 1e-14 * (std::abs(b[i]) + (i > 0 ? std::abs(lower[i - 1]) : 0.0)))) {
        ok = false;
        break;
      }
      if (i + 1 < n) cp[i] = upper[i] / pivot;
      for (int64_t j = 0; j < k; ++j) {
        double v = x[i * k + j];
        if (i > 0) v -= lower[i - 1] * x[(i - 1) * k + j];
        x[i * k + j] = v / pivot;
      }
    }
    if (ok) {
      for (int64_t i = n - 2; i >= 0; --i)
        for (int64_t j = 0; j < k; ++j) x[i * k + j] -= cp[i] * x[(i + 1) * k + j];
      return;
    }
    // Thomas broke down: a dense LU with partial pivoting.
    Eigen::MatrixXd T = Eigen::MatrixXd::Zero(n, n);
    for (int64_t i = 0; i < n; ++i) {
      T(i, i) = b[i];
      if (i + 1 < n) {
        T(i + 1, i) = lower[i];
        T(i, i + 1) = upper[i];
      }
    }
    const Eigen::PartialPivLU<Eigen::MatrixXd> lu(T);
    const double rcond = lu.rcond();
    if (!(rcond > 1e-14)) {
      throw NumericalFailure("node 'tridiag_solve': the tridiagonal matrix is singular (reciprocal condition " +
                             FormatDouble(rcond) + ")");
    }
    using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<RowMatrix> X(x, n, k);
    X = lu.solve(Eigen::Map<const RowMatrix>(rhs, n, k));
  }
  // ‖T x − d‖∞ / (‖T‖∞‖x‖∞ + ‖d‖∞).
  static double Residual(const ProblemData& p) {
    const int64_t n = p.Dim("N"), k = p.Dim("K");
    const double *b = p.inputs[0], *a = p.inputs[1], *c = p.inputs[2], *d = p.inputs[3], *x = p.outputs[0];
    double r = 0, tn = 0, xn = 0, dn = 0;
    for (int64_t i = 0; i < n; ++i) {
      tn = std::max(tn, std::abs(b[i]) + (i > 0 ? std::abs(a[i - 1]) : 0.0) + (i + 1 < n ? std::abs(c[i]) : 0.0));
      for (int64_t j = 0; j < k; ++j) {
        double v = b[i] * x[i * k + j] - d[i * k + j];
        if (i > 0) v += a[i - 1] * x[(i - 1) * k + j];
        if (i + 1 < n) v += c[i] * x[(i + 1) * k + j];
        r = std::max(r, std::abs(v));
        xn = std::max(xn, std::abs(x[i * k + j]));
        dn = std::max(dn, std::abs(d[i * k + j]));
      }
    }
    const double scale = tn * xn + dn;
    return scale > 0 ? r / scale : 0.0;
  }
};
DDN_REGISTER_NODE(TridiagSolve);

}  // namespace
}  // namespace ddn::examples
