// The `least_squares` node: weighted, ridge-regularised linear least squares with an optional bias,
//
//   (x, c) = argmin_{x, c}  ½ Σ_t w_t (a_tᵀx + c − b_t)² + (β/2)‖x‖²,
//
// A (T, C) holding the rows a_tᵀ (observations before features: the reference library's WeightedLeastSquaresFcn
// takes (C, T), ours is its transpose), b (T), optional weights w (T) (default 1), β ≥ 0 (parameter `beta`). The
// bias c is not regularised; with `bias` false it is fixed at 0 (the output is 0 and gets no gradient). Weights
// are meant to be ≥ 0; a negative one is accepted as long as the objective stays convex (the normal matrix below
// positive semi-definite), so that w_t = 0 is an interior point where dL/dw_t exists. An objective that is not
// bounded below (indefinite normal matrix) is refused (InvalidInput).
//
// Forward. With z = (x, c) and Ā = [A 1] (or A alone without bias) the normal equations are G z = r,
//   G = Āᵀ W Ā + β diag(1, …, 1, 0),   r = Āᵀ W b,
// formed by one symmetric rank-T update (Eigen's SYRK on √w-scaled rows) and solved by Cholesky. The factor
// is kept (factor_cache.h) for the backward pass. When G is ill-conditioned (reciprocal condition estimate
// below 1e-2) the solution is refined with the residual Āᵀ W (b − Ā z) − β x computed in extended precision,
// so that z is exact to rounding rather than to κ(G)·u: a smooth function of the inputs. When G is singular or
// numerically so (Cholesky fails or its reciprocal condition estimate is below 1e-12: β = 0 with rank-deficient A, or
// all weights 0 with a bias) the minimiser is not unique: the minimum-norm one is returned (complete orthogonal
// decomposition) and the status says non_unique; if G has a negative eigenvalue (negative weights) there is no
// minimiser: InvalidInput.
//
// Backward (Gould et al., TPAMI 2022, Prop. 4.3: dθ = −Bᵀ H⁻¹ v with H = G). With u = G⁻¹ (v_x, v_c) by the
// cached factor, residuals r_t = a_tᵀx + c − b_t and s_t = a_tᵀu_x + u_c,
//   dA_t = −w_t (s_t x + r_t u_x),   db_t = w_t s_t,   dw_t = −r_t s_t,
// one pass over A (a rank-2 update), right after the pass of the fingerprint that validates the cached factor. On the
// singular path u is the minimum-norm solution and the status says non_regular (docs/design.md §1).
//
// The declarative form (the objective above as a sum of one term per observation) gives the generic Ceres
// forward and implicit backward (`ddn eval --generic`); the tests hold the two paths against each other.
#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ddn/declarative.h"
#include "ddn/random.h"
#include "nodes/linalg/factor_cache.h"

namespace ddn::linalg {
namespace {

using ConstVectorMap = Eigen::Map<const Eigen::VectorXd>;

constexpr double kSingularRcond = 1e-12;
constexpr double kRefineRcond = 1e-2;  // below this reciprocal condition estimate, refine (RefineExtended)

// The declarative form, used by the generic path only: one term per observation t,
//   Term_t = ½ w_t (a_tᵀx + c − b_t)² (+ (β/2)‖x‖² in term 0).
class LeastSquaresForm : public DeclarativeNode<LeastSquaresForm> {
 public:
  static NodeSpec Spec() {
    return {"least_squares",
            "declarative form of least_squares",
            {},
            {{"A", {"T", "C"}, ""}, {"b", {"T"}, ""}, {"w", {"T"}, "", true, true}},
            {{"z", {"P"}, "(x, c)"}}};
  }
  LeastSquaresForm(double beta, bool bias) : beta_(beta), bias_(bias) {}

  static constexpr const char* kTermAxis = "T";
  template <typename T>
  T Term(const Args<T>& in, const T* z) const {
    const int64_t c = in.size(0);
    T r = bias_ ? z[c] - in[1][0] : -in[1][0];
    for (int64_t k = 0; k < c; ++k) r += in[0][k] * z[k];
    T f = Constant<T>(0.5) * r * r;
    if (in.has(2)) f = in[2][0] * f;
    if (in.term() == 0 && beta_ > 0) {
      T sq = Constant<T>(0.0);
      for (int64_t k = 0; k < c; ++k) sq += z[k] * z[k];
      f += Constant<T>(0.5 * beta_) * sq;
    }
    return f;
  }

 private:
  double beta_;
  bool bias_;
};

class LeastSquaresNode : public Node {
 public:
  static NodeSpec Spec() {
    return {"least_squares",
            "weighted ridge least squares (x, c) = argmin ½ Σ_t w_t (a_tᵀx + c − b_t)² + (β/2)‖x‖²",
            {{"beta", ParamType::kFloat, "1e-3", "ridge weight β ≥ 0 on ‖x‖² (the bias is not regularised)"},
             {"bias", ParamType::kBool, "true", "fit the bias c; false fixes c = 0 (output 0, no gradient)"}},
            {{"A", {"T", "C"}, "observations: row t is a_tᵀ"},
             {"b", {"T"}, "targets b_t"},
             {"w", {"T"}, "weights w_t, normally >= 0 (default 1)", true, true}},
            {{"x", {"C"}, "the fitted coefficients"}, {"bias", {}, "the fitted bias c (0 when bias=false)"}}};
  }
  explicit LeastSquaresNode(const Params& p)
      : Node(Spec()), beta_(p.RequireNonNegative("beta")), bias_(p.GetBool("bias")), form_(beta_, bias_) {}

  void Solve(const ProblemData& p, ProblemStatus* s) const override;
  void Backward(const ProblemData& p, ProblemStatus* s) const override;
  bool BackwardAssigns() const override { return true; }

  bool HasGenericPath() const override { return true; }
  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override;
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override;
  // The generic path's options (`--solver KEY=VALUE`, the conformance suite's scale sweep) are its form's.
  void SetSolverOption(const std::string& key, const std::string& value) override { form_.SetSolverOption(key, value); }
  std::vector<std::string> SolverOptions() const override { return form_.SolverOptions(); }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  int64_t Unknowns(const ProblemData& p) const { return p.Dim("C") + (bias_ ? 1 : 0); }
  // G (lower triangle) and r of the normal equations.
  void NormalEquations(const ProblemData& p, Eigen::MatrixXd* G, Eigen::VectorXd* r) const;
  uint64_t Key(const ProblemData& p) const;
  // Iterative refinement of z (the Cholesky solution) with the residual in extended precision (long double).
  void RefineExtended(const ProblemData& p, const Eigen::LLT<Eigen::MatrixXd, Eigen::Lower>& llt,
                      Eigen::VectorXd* z) const;
  // The inner declarative problem on z = (x, c): the same inputs, one output of size `Unknowns`.
  ProblemData FormProblem(const ProblemData& p, double* z, const double* v, const Shape* shape) const;

  double beta_;
  bool bias_;
  LeastSquaresForm form_;
  FactorCache cache_;
};

void LeastSquaresNode::NormalEquations(const ProblemData& p, Eigen::MatrixXd* G, Eigen::VectorXd* r) const {
  const int64_t T = p.Dim("T"), C = p.Dim("C"), n = Unknowns(p);
  const double* w = p.inputs[2];
  // A (T×C, row-major) is Aᵀ as a column-major C×T matrix: U = Aᵀ.
  const Eigen::Map<const Eigen::MatrixXd> U(p.inputs[0], C, T);
  const ConstVectorMap b(p.inputs[1], T);
  G->setZero(n, n);
  r->resize(n);
  if (!w) {
    G->topLeftCorner(C, C).selfadjointView<Eigen::Lower>().rankUpdate(U);
    r->head(C).noalias() = U * b;
    if (bias_) {
      G->row(C).head(C) = U.rowwise().sum().transpose();
      (*G)(C, C) = static_cast<double>(T);
      (*r)[C] = b.sum();
    }
  } else {
    const ConstVectorMap wv(w, T);
    thread_local Eigen::MatrixXd scaled;
    thread_local Eigen::VectorXd root;
    if (wv.minCoeff() >= 0) {
      root = wv.cwiseSqrt();
      scaled.noalias() = U * root.asDiagonal();
      G->topLeftCorner(C, C).selfadjointView<Eigen::Lower>().rankUpdate(scaled);
    } else {
      // A negative weight has no square root: the general product U W Uᵀ.
      scaled.noalias() = U * wv.asDiagonal();
      G->topLeftCorner(C, C).noalias() = scaled * U.transpose();
    }
    r->head(C).noalias() = U * wv.cwiseProduct(b);
    if (bias_) {
      G->row(C).head(C) = (U * wv).transpose();
      (*G)(C, C) = wv.sum();
      (*r)[C] = wv.dot(b);
    }
  }
  G->diagonal().head(C).array() += beta_;
}

void LeastSquaresNode::RefineExtended(const ProblemData& p, const Eigen::LLT<Eigen::MatrixXd, Eigen::Lower>& llt,
                                      Eigen::VectorXd* z) const {
  using Extended = long double;
  const int64_t T = p.Dim("T"), C = p.Dim("C"), n = Unknowns(p);
  const double* A = p.inputs[0];
  const double* b = p.inputs[1];
  const double* w = p.inputs[2];
  std::vector<Extended> zx(n), g(n);
  for (int64_t k = 0; k < n; ++k) zx[k] = (*z)[k];
  Eigen::VectorXd step(n);
  for (int iteration = 0; iteration < 3; ++iteration) {
    // g = Āᵀ W (b − Ā z) − β (x, 0), the negative gradient of the objective at z.
    std::fill(g.begin(), g.end(), Extended(0));
    for (int64_t t = 0; t < T; ++t) {
      const double* a = A + t * C;
      Extended e = b[t] - (bias_ ? zx[C] : Extended(0));
      for (int64_t k = 0; k < C; ++k) e -= Extended(a[k]) * zx[k];
      if (w) e *= w[t];
      for (int64_t k = 0; k < C; ++k) g[k] += Extended(a[k]) * e;
      if (bias_) g[C] += e;
    }
    for (int64_t k = 0; k < C; ++k) g[k] -= Extended(beta_) * zx[k];
    for (int64_t k = 0; k < n; ++k) step[k] = static_cast<double>(g[k]);
    llt.solveInPlace(step);
    double change = 0, size = 0;
    for (int64_t k = 0; k < n; ++k) {
      zx[k] += step[k];
      change = std::max(change, std::abs(step[k]));
      size = std::max(size, std::abs(static_cast<double>(zx[k])));
    }
    if (change <= 1e-17 * size) break;
  }
  for (int64_t k = 0; k < n; ++k) (*z)[k] = static_cast<double>(zx[k]);
}

uint64_t LeastSquaresNode::Key(const ProblemData& p) const {
  Fingerprint f;
  f.Add(p.inputs[0], p.InputSize(0)).Add(p.inputs[1], p.InputSize(1));
  if (p.inputs[2]) f.Add(p.inputs[2], p.InputSize(2));
  f.Add(p.outputs[0], p.OutputSize(0)).Add(p.outputs[1], 1);
  return f.value();
}

void LeastSquaresNode::Solve(const ProblemData& p, ProblemStatus* s) const {
  const int64_t C = p.Dim("C"), n = Unknowns(p);
  thread_local Eigen::MatrixXd G;
  thread_local Eigen::VectorXd r, z;
  NormalEquations(p, &G, &r);
  thread_local Eigen::LLT<Eigen::MatrixXd, Eigen::Lower> llt;
  llt.compute(G);
  const bool regular = llt.info() == Eigen::Success && llt.rcond() > kSingularRcond;
  if (regular) {
    z = llt.solve(r);
    // An ill-conditioned G (κ above ~1e2) blurs z by κ(G)·u in double: refine against the residual of the
    // normal equations computed from A, b, w in extended precision (the product Āᵀ W (b − Ā z) never forms G),
    // so the output is z* to rounding, a smooth function of the inputs (finite differences see no noise).
    if (llt.rcond() < kRefineRcond) RefineExtended(p, llt, &z);
  } else {
    // Singular: the minimum-norm minimiser, if G is positive semi-definite.
    Eigen::MatrixXd full = G.selfadjointView<Eigen::Lower>();
    const Eigen::VectorXd eig =
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(full, Eigen::EigenvaluesOnly).eigenvalues();
    if (eig[0] < -1e-12 * std::max(std::abs(eig[n - 1]), 1e-300)) {
      throw InvalidInput(
          "node 'least_squares': the weights make the objective unbounded below (the normal matrix has "
          "the eigenvalue " +
          FormatDouble(eig[0]) + " < 0); use weights w >= 0");
    }
    Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod;
    cod.setThreshold(1e-12);
    cod.compute(full);
    z = cod.solve(r);
    s->Set(kNonUnique, "the normal matrix is singular (rank " + std::to_string(cod.rank()) + " of " +
                           std::to_string(n) + "): the minimum-norm minimiser is returned");
  }
  std::copy(z.data(), z.data() + C, p.outputs[0]);
  p.outputs[1][0] = bias_ ? z[C] : 0.0;
  // Scaled residual of the normal equations: ‖Gz − r‖∞ / (‖G‖∞‖z‖∞ + ‖r‖∞).
  const Eigen::VectorXd res = G.selfadjointView<Eigen::Lower>() * z - r;
  const double scale = G.cwiseAbs().maxCoeff() * z.cwiseAbs().maxCoeff() + r.cwiseAbs().maxCoeff();
  s->residual = scale > 0 ? res.cwiseAbs().maxCoeff() / scale : 0.0;
  s->iterations = 0;
  if (regular) cache_.Store(p.index, Key(p), llt.matrixLLT().data(), n * n);
}

void LeastSquaresNode::Backward(const ProblemData& p, ProblemStatus* s) const {
  const int64_t T = p.Dim("T"), C = p.Dim("C"), n = Unknowns(p);
  thread_local std::vector<double> factor;
  thread_local Eigen::VectorXd u;
  u.resize(n);
  std::copy(p.grad_outputs[0], p.grad_outputs[0] + C, u.data());
  if (bias_) u[C] = p.grad_outputs[1][0];
  if (cache_.Lookup(p.index, Key(p), &factor)) {
    const Eigen::Map<const Eigen::MatrixXd> L(factor.data(), n, n);
    L.triangularView<Eigen::Lower>().solveInPlace(u);
    L.triangularView<Eigen::Lower>().transpose().solveInPlace(u);
  } else {
    thread_local Eigen::MatrixXd G;
    thread_local Eigen::VectorXd r;
    NormalEquations(p, &G, &r);
    Eigen::LLT<Eigen::MatrixXd, Eigen::Lower> llt(G);
    if (llt.info() == Eigen::Success && llt.rcond() > kSingularRcond) {
      llt.solveInPlace(u);
    } else {
      Eigen::MatrixXd full = G.selfadjointView<Eigen::Lower>();
      Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod;
      cod.setThreshold(1e-12);
      cod.compute(full);
      u = cod.solve(Eigen::VectorXd(u));
      s->Set(kNonRegular, "singular normal matrix: minimum-norm least-squares gradient");
    }
  }
  // One pass over the rows a_t (in cache after the fingerprint): r_t, s_t, then dA_t, db_t, dw_t.
  const double* A = p.inputs[0];
  const double* b = p.inputs[1];
  const double* w = p.inputs[2];
  const double* x = p.outputs[0];
  const double c = bias_ ? p.outputs[1][0] : 0.0, uc = bias_ ? u[C] : 0.0;
  const double* ux = u.data();
  double* dA = p.grad_inputs[0];
  double* db = p.grad_inputs[1];
  double* dw = w ? p.grad_inputs[2] : nullptr;
  for (int64_t t = 0; t < T; ++t) {
    const double* a = A + t * C;
    double r = 0, s_t = 0;
#pragma omp simd reduction(+ : r, s_t)
    for (int64_t k = 0; k < C; ++k) {
      r += a[k] * x[k];
      s_t += a[k] * ux[k];
    }
    r += c - b[t];
    s_t += uc;
    const double wt = w ? w[t] : 1.0;
    if (dw) dw[t] = -r * s_t;
    if (db) db[t] = wt * s_t;
    if (dA) {
      const double alpha = -wt * s_t, beta = -wt * r;
      double* d = dA + t * C;
#pragma omp simd
      for (int64_t k = 0; k < C; ++k) d[k] = alpha * x[k] + beta * ux[k];
    }
  }
}

ProblemData LeastSquaresNode::FormProblem(const ProblemData& p, double* z, const double* v, const Shape* shape) const {
  ProblemData q = p;
  q.outputs = {z};
  q.output_shapes = {*shape};
  q.grad_outputs = {v};
  return q;
}

void LeastSquaresNode::GenericSolve(const ProblemData& p, ProblemStatus* s) const {
  const int64_t C = p.Dim("C");
  const Shape shape{Unknowns(p)};
  std::vector<double> z(shape[0]);
  form_.GenericSolve(FormProblem(p, z.data(), nullptr, &shape), s);
  std::copy(z.begin(), z.begin() + C, p.outputs[0]);
  p.outputs[1][0] = bias_ ? z[C] : 0.0;
}

void LeastSquaresNode::GenericBackward(const ProblemData& p, ProblemStatus* s) const {
  const int64_t C = p.Dim("C");
  const Shape shape{Unknowns(p)};
  std::vector<double> z(p.outputs[0], p.outputs[0] + C), v(p.grad_outputs[0], p.grad_outputs[0] + C);
  if (bias_) {
    z.push_back(p.outputs[1][0]);
    v.push_back(p.grad_outputs[1][0]);
  }
  form_.GenericBackward(FormProblem(p, z.data(), v.data(), &shape), s);
}

std::vector<CheckCase> LeastSquaresNode::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  auto gaussian = [&](Shape shape) {
    Tensor t(shape);
    for (auto& v : t.values()) v = rng.Normal();
    return t;
  };
  auto weights = [&](Shape shape) {
    Tensor t(shape);
    for (auto& v : t.values()) v = rng.Uniform(0.5, 1.5);
    return t;
  };
  std::vector<CheckCase> cases;
  cases.push_back({"random", {{"A", gaussian({3, 7, 3})}, {"b", gaussian({3, 7})}, {"w", weights({3, 7})}}});
  cases.push_back({"unweighted", {{"A", gaussian({2, 6, 4})}, {"b", gaussian({2, 6})}}});
  // Weights at the boundary w_t = 0: the observation does not move the fit, but dw_t ≠ 0.
  CheckCase zero{"zero_weights", {{"A", gaussian({2, 6, 3})}, {"b", gaussian({2, 6})}, {"w", weights({2, 6})}}};
  zero.inputs["w"][0] = 0.0;
  zero.inputs["w"][3] = 0.0;
  zero.inputs["w"][7] = 0.0;
  cases.push_back(zero);
  // Nearly collinear features: A's columns 0 and 1 differ by 1e-2 noise, so G has an eigenvalue ~1e-4·T
  // (plus β): a near-singular Hessian with large but finite derivatives.
  CheckCase collinear{"nearly_collinear", {{"A", gaussian({2, 8, 3})}, {"b", gaussian({2, 8})}}};
  Tensor& A = collinear.inputs["A"];
  for (int64_t r = 0; r < 16; ++r) A[r * 3 + 1] = A[r * 3] + 1e-2 * rng.Normal();
  cases.push_back(collinear);
  // Fewer observations than features: G is regular through β only (β > 0).
  if (beta_ > 0) cases.push_back({"more_features", {{"A", gaussian({2, 3, 5})}, {"b", gaussian({2, 3})}}});
  return cases;
}

}  // namespace
DDN_REGISTER_NODE(LeastSquaresNode);
}  // namespace ddn::linalg
