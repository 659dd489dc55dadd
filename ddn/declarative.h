// ddn/declarative.h: write a declarative node as an objective; get the solver and the gradient.
//
// A declarative node computes y(x) ∈ argmin_y f(x, y) subject to h(x, y) = 0 and g(x, y) ≤ 0. With
// DeclarativeNode you write f (and h, g) once, as templates over the scalar type (ddn/scalar.h), and
// inherit
//
//   GenericSolve     a Ceres forward solve: L-BFGS (ceres::GradientProblemSolver) on f, or on the
//                    augmented Lagrangian  f + λᵀh + ρ/2‖h‖² + 1/(2ρ) Σ_k (max(0, μ_k + ρ g_k)² − μ_k²)
//                    when constrained (Nocedal & Wright §17.4), followed by a Newton polish on the KKT
//                    conditions of the identified active set with exact second derivatives, which drives
//                    the optimality residual to machine precision (gradients need it: docs/design.md §1);
//   GenericBackward  the implicit backward of docs/design.md §1 / ddn/implicit.h: H, B, A, C by automatic
//                    differentiation (ceres::Jet for first derivatives, Jet<Jet> for second), term by term
//                    when the objective is a sum of terms, then one KKT solve per problem.
//
// Solve and Backward default to these; a node with a faster specialised solver or a closed-form gradient
// overrides Solve/Backward and the generic ones stay callable (tests compare the two).
//
// Writing a node (the README has a complete, compiled example):
//
//   class Mean : public ddn::DeclarativeNode<Mean> {
//    public:
//     static ddn::NodeSpec Spec() { return {"mean", "y = argmin Σ ½(y − x_i)²", {},
//                                           {{"x", {"N"}, "points"}}, {{"y", {}, "their mean"}}}; }
//     explicit Mean(const ddn::Params&) {}
//     static constexpr const char* kTermAxis = "N";      // f = Σ_i Term_i: one term per row of x
//     template <typename T>
//     T Term(const ddn::Args<T>& in, const T* y) const {  // in[0] points at x_i
//       const T r = y[0] - in[0][0];
//       return ddn::Constant<T>(0.5) * r * r;
//     }
//   };
//   DDN_REGISTER_NODE(Mean);
//
// What a node may define (all optional but Spec, the constructor and Objective or Term):
//
//   template <T> T Objective(const Args<T>& in, const T* y) const;  the whole f(x, y); or
//   static constexpr const char* kTermAxis = "N";                  f = Σ_t Term_t(x, y): one term per
//   template <T> T Term(const Args<T>& in, const T* y) const;      index t of the axis "N". Inputs (and the
//                                                                  output) whose first axis is "N" are
//                                                                  sliced: in[i] points at row t.
//   int NumEqualities(const ProblemData&) const;                   h(x, y) = 0, whole inputs
//   template <T> void Equalities(const Args<T>&, const T* y, T* h) const;
//   int NumInequalities(const ProblemData&) const;                 g(x, y) ≤ 0, whole inputs
//   template <T> void Inequalities(const Args<T>&, const T* y, T* g) const;
//   static constexpr bool kLinearConstraints = true;               skip the constraints' 2nd derivatives
//   void InitialGuess(const ProblemData&, double* y) const;        start of the generic solve (default 0)
//   ceres::Manifold* MakeManifold(const ProblemData&) const;       when a Ceres manifold expresses the
//                                                                  equalities (e.g. ceres::SphereManifold):
//                                                                  L-BFGS then runs on the manifold from an
//                                                                  InitialGuess on it, and the equalities
//                                                                  are used only to polish and differentiate
//
// The generic engine handles nodes with a single output y. Inputs marked non-differentiable are passed
// to the objective as constants and get no gradient.
//
// Active set (inequalities). After the solve, g_k is active when g_k ≥ −τ with
// τ = 1e-9·(1 + ‖y‖∞): the Newton polish puts active constraints at |g_k| ~ 1e-16, so τ separates them
// from inactive ones by many orders of magnitude while staying far above the solver's accuracy. An
// active constraint with multiplier |λ_k| ≤ 1e-9·(1 + ‖∇f‖∞) is weakly active: the status says
// kDegenerate and the gradient is that of the active set as identified.
//
// This header includes Ceres: include it from .cc files only.
#pragma once

#include <ceres/gradient_problem.h>
#include <ceres/gradient_problem_solver.h>
#include <ceres/jet.h>
#include <ceres/manifold.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ddn/error.h"
#include "ddn/implicit.h"
#include "ddn/node.h"
#include "ddn/params.h"
#include "ddn/scalar.h"

namespace ddn {

// The inputs of one problem (or of one term) as the objective sees them.
template <typename T>
class Args {
 public:
  // Input i (NodeSpec order): the problem's values, or the term's row of them when sliced.
  const T* operator[](int i) const { return ptr_[i]; }
  // Number of values in[i] points at.
  int64_t size(int i) const { return size_[i]; }
  // False for an omitted optional input (then in[i] is nullptr).
  bool has(int i) const { return ptr_[i] != nullptr; }
  // The value of a shape symbol, e.g. Dim("D").
  int64_t Dim(const std::string& symbol) const { return problem_->Dim(symbol); }
  // The term's index along the term axis (−1 when evaluating the whole objective or constraints).
  int64_t term() const { return term_; }
  const ProblemData& problem() const { return *problem_; }

  // Engine use.
  std::vector<const T*> ptr_;
  std::vector<int64_t> size_;
  const ProblemData* problem_ = nullptr;
  int64_t term_ = -1;
};

// Options of the generic engine, per node (DeclarativeNode::generic_options()).
struct GenericSolverOptions {
  int max_lbfgs_iterations = 2000;      // per (inner) L-BFGS run
  int max_outer_iterations = 60;        // augmented Lagrangian outer iterations
  int max_newton_iterations = 30;       // Newton/KKT polish iterations
  double feasibility_tolerance = 1e-10; // augmented Lagrangian stops at this constraint violation
  double converged_residual = 1e-12;    // scaled KKT residual at which the solve counts as exact
  double failure_residual = 1e-7;       // above this after polishing: NumericalFailure
  double active_tolerance = 1e-9;       // τ / (1 + ‖y‖∞), see the header comment
  double rcond = 1e-10;                 // singularity threshold of H and the KKT matrix
};

namespace internal {

template <class D, class = void>
struct HasTermAxis : std::false_type {};
template <class D>
struct HasTermAxis<D, std::void_t<decltype(D::kTermAxis)>> : std::true_type {};

template <class D, class = void>
struct HasLinearConstraints : std::false_type {};
template <class D>
struct HasLinearConstraints<D, std::void_t<decltype(D::kLinearConstraints)>>
    : std::integral_constant<bool, D::kLinearConstraints> {};

using J1 = ceres::Jet<double, 4>;
using J2 = ceres::Jet<J1, 4>;
constexpr int kChunk = 4;

// Where one variable of the combined vector z = (y, x) lives: `input` = −1 for y, else the input index;
// `index` is the flat index within that array; `global` is its position in z (y first, then x).
struct VarRef {
  int input;
  int64_t index;
  int global;
};

// Per-problem layout of the variables and the terms.
struct Layout {
  int m = 0;                       // size of y
  int n = 0;                       // size of x (differentiable inputs present, concatenated)
  std::vector<int> x_offset;       // per input: offset in x, or −1
  std::vector<int64_t> row_size;   // per input: size of one term's slice, or −1 (whole)
  int64_t y_row = -1;              // size of y's slice per term, or −1 (whole)
  int64_t num_terms = 1;
  int p = 0, q = 0;                // equalities, inequalities
};

// The scalar-typed copy of one problem's variables.
template <typename T>
struct Vars {
  std::vector<std::vector<T>> in;
  std::vector<T> y;
};

template <typename T>
inline void SetValue(T* t, double v) {
  *t = Constant<T>(v);
}

}  // namespace internal

template <class Derived>
class DeclarativeNode : public Node {
 public:
  DeclarativeNode() : Node(Derived::Spec()) {}

  void Solve(const ProblemData& p, ProblemStatus* s) const override { GenericSolve(p, s); }
  bool HasGenericPath() const override { return true; }
  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override;
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override;
  double Objective(const ProblemData& p) const override;

  // Defaults the node may hide.
  int NumEqualities(const ProblemData&) const { return 0; }
  int NumInequalities(const ProblemData&) const { return 0; }
  template <typename T>
  void Equalities(const Args<T>&, const T*, T*) const {}
  template <typename T>
  void Inequalities(const Args<T>&, const T*, T*) const {}
  void InitialGuess(const ProblemData& p, double* y) const { std::fill(y, y + p.OutputSize(0), 0.0); }
  ceres::Manifold* MakeManifold(const ProblemData&) const { return nullptr; }

  const GenericSolverOptions& generic_options() const { return generic_options_; }
  GenericSolverOptions* mutable_generic_options() { return &generic_options_; }

  // ---- Engine internals, public for tests ------------------------------------------------------
  internal::Layout MakeLayout(const ProblemData& p) const;

  // f, its gradient in y (m) and, if `H` is given, the Hessian blocks: H (m×m) and, if `B` is given,
  // B (m×n) of f alone (no constraints).
  double ObjectiveDerivatives(const ProblemData& p, const internal::Layout& L, const double* y,
                              Eigen::VectorXd* grad, Eigen::MatrixXd* H, Eigen::MatrixXd* B) const;
  // c = (h, g) (p + q values) and their Jacobians in y (Ay) and, if given, in x (Ax).
  void ConstraintDerivatives(const ProblemData& p, const internal::Layout& L, const double* y, Eigen::VectorXd* c,
                             Eigen::MatrixXd* Ay, Eigen::MatrixXd* Ax) const;
  // Adds −Σ_i ν_i ∇²c_i to H (and B) for the constraints listed in `which`.
  void AddConstraintCurvature(const ProblemData& p, const internal::Layout& L, const double* y,
                              const std::vector<int>& which, const Eigen::VectorXd& nu, Eigen::MatrixXd* H,
                              Eigen::MatrixXd* B) const;

 private:
  const Derived& derived() const { return static_cast<const Derived&>(*this); }

  template <typename T>
  void Load(const ProblemData& p, const double* y, internal::Vars<T>* v) const;
  template <typename T>
  void BindWhole(const ProblemData& p, const internal::Vars<T>& v, Args<T>* args) const;
  template <typename T>
  T EvalTerm(const ProblemData& p, const internal::Layout& L, const internal::Vars<T>& v, int64_t t,
             Args<T>* args) const;
  template <typename T>
  void EvalConstraints(const ProblemData& p, const internal::Layout& L, const internal::Vars<T>& v, T* c) const;
  template <typename T>
  T* Ref(internal::Vars<T>* v, const internal::VarRef& r) const {
    return r.input < 0 ? &v->y[r.index] : &v->in[r.input][r.index];
  }
  void TermVars(const ProblemData& p, const internal::Layout& L, int64_t t, bool with_x,
                std::vector<internal::VarRef>* vars) const;
  void AllVars(const ProblemData& p, const internal::Layout& L, bool with_x, std::vector<internal::VarRef>* vars) const;

  // Solves the KKT conditions of the working set W by Newton's method from y; returns the scaled residual.
  double NewtonPolish(const ProblemData& p, const internal::Layout& L, std::vector<int>* working, double* y,
                      Eigen::VectorXd* nu, int* iterations, bool* singular) const;
  double ScaledResidual(const internal::Layout& L, const Eigen::VectorXd& r1, const Eigen::VectorXd& r2,
                        const Eigen::VectorXd& gf, const double* y) const;
  // Identifies the active set at y and its multipliers (L = f − νᵀc_W).
  void ActiveSet(const ProblemData& p, const internal::Layout& L, const double* y, std::vector<int>* working,
                 Eigen::VectorXd* nu, ProblemStatus* s) const;

  GenericSolverOptions generic_options_;
};

// A Euclidean projection y = argmin_y ½‖y − x‖² subject to the Derived node's constraints: the objective
// every projection node shares, written once. Input 0 is x, of shape (D); y has x's shape. The objective
// is a sum of one term per coordinate, so its second derivatives cost O(D); the default start is x.
template <class Derived>
class EuclideanProjectionNode : public DeclarativeNode<Derived> {
 public:
  static constexpr const char* kTermAxis = "D";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    const T r = y[0] - in[0][0];
    return Constant<T>(0.5) * r * r;
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    std::copy(p.inputs[0], p.inputs[0] + p.InputSize(0), y);
  }
};

// ================================================================================================
// Implementation
// ================================================================================================

template <class Derived>
internal::Layout DeclarativeNode<Derived>::MakeLayout(const ProblemData& p) const {
  const NodeSpec& spec = this->spec();
  if (spec.outputs.size() != 1) {
    throw InvalidInput("node '" + spec.name + "': the generic engine handles exactly one output");
  }
  internal::Layout L;
  L.m = static_cast<int>(p.OutputSize(0));
  L.x_offset.assign(spec.inputs.size(), -1);
  L.row_size.assign(spec.inputs.size(), -1);
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    if (p.inputs[i] && spec.inputs[i].differentiable) {
      L.x_offset[i] = L.n;
      L.n += static_cast<int>(p.InputSize(static_cast<int>(i)));
    }
  }
  if constexpr (internal::HasTermAxis<Derived>::value) {
    const std::string axis = Derived::kTermAxis;
    L.num_terms = p.Dim(axis);
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      if (p.inputs[i] && !spec.inputs[i].dims.empty() && spec.inputs[i].dims[0] == axis) {
        L.row_size[i] = p.InputSize(static_cast<int>(i)) / L.num_terms;
      }
    }
    if (!spec.outputs[0].dims.empty() && spec.outputs[0].dims[0] == axis) L.y_row = L.m / L.num_terms;
  }
  L.p = derived().NumEqualities(p);
  L.q = derived().NumInequalities(p);
  return L;
}

template <class Derived>
template <typename T>
void DeclarativeNode<Derived>::Load(const ProblemData& p, const double* y, internal::Vars<T>* v) const {
  const size_t ni = p.inputs.size();
  v->in.resize(ni);
  for (size_t i = 0; i < ni; ++i) {
    if (!p.inputs[i]) {
      v->in[i].clear();
      continue;
    }
    const int64_t size = p.InputSize(static_cast<int>(i));
    v->in[i].resize(size);
    for (int64_t k = 0; k < size; ++k) internal::SetValue(&v->in[i][k], p.inputs[i][k]);
  }
  const int64_t m = p.OutputSize(0);
  v->y.resize(m);
  for (int64_t k = 0; k < m; ++k) internal::SetValue(&v->y[k], y[k]);
}

template <class Derived>
template <typename T>
void DeclarativeNode<Derived>::BindWhole(const ProblemData& p, const internal::Vars<T>& v, Args<T>* args) const {
  const size_t ni = p.inputs.size();
  args->ptr_.resize(ni);
  args->size_.resize(ni);
  args->problem_ = &p;
  args->term_ = -1;
  for (size_t i = 0; i < ni; ++i) {
    args->ptr_[i] = v.in[i].empty() ? nullptr : v.in[i].data();
    args->size_[i] = static_cast<int64_t>(v.in[i].size());
  }
}

template <class Derived>
template <typename T>
T DeclarativeNode<Derived>::EvalTerm(const ProblemData& p, const internal::Layout& L, const internal::Vars<T>& v,
                                     int64_t t, Args<T>* args) const {
  if constexpr (internal::HasTermAxis<Derived>::value) {
    const size_t ni = p.inputs.size();
    args->ptr_.resize(ni);
    args->size_.resize(ni);
    args->problem_ = &p;
    args->term_ = t;
    for (size_t i = 0; i < ni; ++i) {
      if (v.in[i].empty()) {
        args->ptr_[i] = nullptr;
        args->size_[i] = 0;
      } else if (L.row_size[i] >= 0) {
        args->ptr_[i] = v.in[i].data() + t * L.row_size[i];
        args->size_[i] = L.row_size[i];
      } else {
        args->ptr_[i] = v.in[i].data();
        args->size_[i] = static_cast<int64_t>(v.in[i].size());
      }
    }
    const T* y = v.y.data() + (L.y_row >= 0 ? t * L.y_row : 0);
    return derived().Term(*args, y);
  } else {
    BindWhole(p, v, args);
    return derived().Objective(*args, v.y.data());
  }
}

template <class Derived>
template <typename T>
void DeclarativeNode<Derived>::EvalConstraints(const ProblemData& p, const internal::Layout& L,
                                               const internal::Vars<T>& v, T* c) const {
  Args<T> args;
  BindWhole(p, v, &args);
  for (int k = 0; k < L.p + L.q; ++k) c[k] = Constant<T>(0.0);
  if (L.p > 0) derived().Equalities(args, v.y.data(), c);
  if (L.q > 0) derived().Inequalities(args, v.y.data(), c + L.p);
}

template <class Derived>
void DeclarativeNode<Derived>::TermVars(const ProblemData& p, const internal::Layout& L, int64_t t, bool with_x,
                                        std::vector<internal::VarRef>* vars) const {
  vars->clear();
  const int64_t y0 = L.y_row >= 0 ? t * L.y_row : 0, ylen = L.y_row >= 0 ? L.y_row : L.m;
  for (int64_t k = 0; k < ylen; ++k) vars->push_back({-1, y0 + k, static_cast<int>(y0 + k)});
  if (!with_x) return;
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    if (L.x_offset[i] < 0) continue;
    const int64_t r0 = L.row_size[i] >= 0 ? t * L.row_size[i] : 0;
    const int64_t len = L.row_size[i] >= 0 ? L.row_size[i] : p.InputSize(static_cast<int>(i));
    for (int64_t k = 0; k < len; ++k) {
      vars->push_back({static_cast<int>(i), r0 + k, static_cast<int>(L.m + L.x_offset[i] + r0 + k)});
    }
  }
}

template <class Derived>
void DeclarativeNode<Derived>::AllVars(const ProblemData& p, const internal::Layout& L, bool with_x,
                                       std::vector<internal::VarRef>* vars) const {
  vars->clear();
  for (int k = 0; k < L.m; ++k) vars->push_back({-1, k, k});
  if (!with_x) return;
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    if (L.x_offset[i] < 0) continue;
    for (int64_t k = 0; k < p.InputSize(static_cast<int>(i)); ++k) {
      vars->push_back({static_cast<int>(i), k, static_cast<int>(L.m + L.x_offset[i] + k)});
    }
  }
}

template <class Derived>
double DeclarativeNode<Derived>::ObjectiveDerivatives(const ProblemData& p, const internal::Layout& L,
                                                      const double* y, Eigen::VectorXd* grad, Eigen::MatrixXd* H,
                                                      Eigen::MatrixXd* B) const {
  using internal::J1;
  using internal::J2;
  using internal::kChunk;
  const int m = L.m;
  double f = 0;
  if (grad) grad->setZero(m);
  if (H) H->setZero(m, m);
  if (B) B->setZero(m, L.n);
  std::vector<internal::VarRef> vars;
  if (!H) {
    // Values and first derivatives in y only.
    internal::Vars<J1> v;
    Load(p, y, &v);
    Args<J1> args;
    for (int64_t t = 0; t < L.num_terms; ++t) {
      TermVars(p, L, t, false, &vars);
      const int d = static_cast<int>(vars.size());
      if (d == 0) {
        f += Value(EvalTerm(p, L, v, t, &args));
        continue;
      }
      for (int c0 = 0; c0 < d; c0 += kChunk) {
        const int cn = std::min(kChunk, d - c0);
        for (int k = 0; k < cn; ++k) Ref(&v, vars[c0 + k])->v[k] = 1.0;
        const J1 r = EvalTerm(p, L, v, t, &args);
        for (int k = 0; k < cn; ++k) {
          Ref(&v, vars[c0 + k])->v[k] = 0.0;
          if (grad) (*grad)[vars[c0 + k].global] += r.v[k];
        }
        if (c0 == 0) f += r.a;
      }
    }
    return f;
  }
  // Second derivatives: outer seeds run over the term's y variables (rows), inner seeds over all of its
  // variables (columns). One evaluation yields a 4×4 block of mixed partials.
  internal::Vars<J2> v;
  Load(p, y, &v);
  Args<J2> args;
  for (int64_t t = 0; t < L.num_terms; ++t) {
    TermVars(p, L, t, B != nullptr, &vars);
    const int d = static_cast<int>(vars.size());
    int rows = 0;
    while (rows < d && vars[rows].input < 0) ++rows;
    if (rows == 0) {
      f += Value(EvalTerm(p, L, v, t, &args));
      continue;
    }
    bool first = true;
    for (int r0 = 0; r0 < rows; r0 += kChunk) {
      const int rn = std::min(kChunk, rows - r0);
      for (int k = 0; k < rn; ++k) Ref(&v, vars[r0 + k])->v[k] = J1(1.0);
      for (int c0 = 0; c0 < d; c0 += kChunk) {
        const int cn = std::min(kChunk, d - c0);
        for (int k = 0; k < cn; ++k) Ref(&v, vars[c0 + k])->a.v[k] = 1.0;
        const J2 res = EvalTerm(p, L, v, t, &args);
        for (int k = 0; k < cn; ++k) Ref(&v, vars[c0 + k])->a.v[k] = 0.0;
        if (first) f += res.a.a;
        first = false;
        if (c0 == 0 && grad)
          for (int a = 0; a < rn; ++a) (*grad)[vars[r0 + a].global] += res.v[a].a;
        for (int a = 0; a < rn; ++a) {
          const int row = vars[r0 + a].global;
          for (int b = 0; b < cn; ++b) {
            const int col = vars[c0 + b].global;
            const double h = res.v[a].v[b];
            if (col < m) {
              (*H)(row, col) += h;
            } else {
              (*B)(row, col - m) += h;
            }
          }
        }
      }
      for (int k = 0; k < rn; ++k) Ref(&v, vars[r0 + k])->v[k] = J1(0.0);
    }
  }
  return f;
}

template <class Derived>
void DeclarativeNode<Derived>::ConstraintDerivatives(const ProblemData& p, const internal::Layout& L,
                                                     const double* y, Eigen::VectorXd* c, Eigen::MatrixXd* Ay,
                                                     Eigen::MatrixXd* Ax) const {
  using internal::J1;
  using internal::kChunk;
  const int nc = L.p + L.q;
  c->setZero(nc);
  if (Ay) Ay->setZero(nc, L.m);
  if (Ax) Ax->setZero(nc, L.n);
  if (nc == 0) return;
  if (!Ay && !Ax) {
    internal::Vars<double> v;
    Load(p, y, &v);
    EvalConstraints(p, L, v, c->data());
    return;
  }
  std::vector<internal::VarRef> vars;
  AllVars(p, L, Ax != nullptr, &vars);
  internal::Vars<J1> v;
  Load(p, y, &v);
  std::vector<J1> out(nc);
  const int d = static_cast<int>(vars.size());
  for (int c0 = 0; c0 < std::max(d, 1); c0 += kChunk) {
    const int cn = std::min(kChunk, d - c0);
    for (int k = 0; k < cn; ++k) Ref(&v, vars[c0 + k])->v[k] = 1.0;
    EvalConstraints(p, L, v, out.data());
    for (int k = 0; k < cn; ++k) Ref(&v, vars[c0 + k])->v[k] = 0.0;
    for (int i = 0; i < nc; ++i) {
      if (c0 == 0) (*c)[i] = out[i].a;
      for (int k = 0; k < cn; ++k) {
        const int g = vars[c0 + k].global;
        if (g < L.m) {
          if (Ay) (*Ay)(i, g) = out[i].v[k];
        } else if (Ax) {
          (*Ax)(i, g - L.m) = out[i].v[k];
        }
      }
    }
  }
}

template <class Derived>
void DeclarativeNode<Derived>::AddConstraintCurvature(const ProblemData& p, const internal::Layout& L,
                                                      const double* y, const std::vector<int>& which,
                                                      const Eigen::VectorXd& nu, Eigen::MatrixXd* H,
                                                      Eigen::MatrixXd* B) const {
  using internal::J1;
  using internal::J2;
  using internal::kChunk;
  if (internal::HasLinearConstraints<Derived>::value || which.empty()) return;
  const int nc = L.p + L.q;
  std::vector<internal::VarRef> vars;
  AllVars(p, L, B != nullptr, &vars);
  internal::Vars<J2> v;
  Load(p, y, &v);
  std::vector<J2> out(nc);
  const int d = static_cast<int>(vars.size());
  const int rows = L.m;
  for (int r0 = 0; r0 < rows; r0 += kChunk) {
    const int rn = std::min(kChunk, rows - r0);
    for (int k = 0; k < rn; ++k) Ref(&v, vars[r0 + k])->v[k] = J1(1.0);
    for (int c0 = 0; c0 < d; c0 += kChunk) {
      const int cn = std::min(kChunk, d - c0);
      for (int k = 0; k < cn; ++k) Ref(&v, vars[c0 + k])->a.v[k] = 1.0;
      EvalConstraints(p, L, v, out.data());
      for (int k = 0; k < cn; ++k) Ref(&v, vars[c0 + k])->a.v[k] = 0.0;
      for (size_t w = 0; w < which.size(); ++w) {
        const J2& ci = out[which[w]];
        for (int a = 0; a < rn; ++a) {
          const int row = vars[r0 + a].global;
          for (int b = 0; b < cn; ++b) {
            const int col = vars[c0 + b].global;
            const double h = -nu[static_cast<Eigen::Index>(w)] * ci.v[a].v[b];
            if (col < L.m) {
              (*H)(row, col) += h;
            } else if (B) {
              (*B)(row, col - L.m) += h;
            }
          }
        }
      }
    }
    for (int k = 0; k < rn; ++k) Ref(&v, vars[r0 + k])->v[k] = J1(0.0);
  }
}

template <class Derived>
double DeclarativeNode<Derived>::Objective(const ProblemData& p) const {
  const internal::Layout L = MakeLayout(p);
  internal::Vars<double> v;
  Load(p, p.outputs[0], &v);
  Args<double> args;
  double f = 0;
  for (int64_t t = 0; t < L.num_terms; ++t) f += EvalTerm(p, L, v, t, &args);
  return f;
}

template <class Derived>
double DeclarativeNode<Derived>::ScaledResidual(const internal::Layout& L, const Eigen::VectorXd& r1,
                                                const Eigen::VectorXd& r2, const Eigen::VectorXd& gf,
                                                const double* y) const {
  double ymax = 0;
  for (int k = 0; k < L.m; ++k) ymax = std::max(ymax, std::abs(y[k]));
  const double g = r1.size() ? r1.cwiseAbs().maxCoeff() / (1.0 + (gf.size() ? gf.cwiseAbs().maxCoeff() : 0.0)) : 0;
  const double c = r2.size() ? r2.cwiseAbs().maxCoeff() / (1.0 + ymax) : 0;
  return std::max(g, c);
}

template <class Derived>
double DeclarativeNode<Derived>::NewtonPolish(const ProblemData& p, const internal::Layout& L,
                                              std::vector<int>* working, double* y, Eigen::VectorXd* nu,
                                              int* iterations, bool* singular) const {
  const GenericSolverOptions& o = generic_options_;
  const int m = L.m;
  Eigen::VectorXd gf, c;
  Eigen::MatrixXd H, Ay;
  auto residuals = [&](const double* yy, const Eigen::VectorXd& nn, Eigen::VectorXd* r1, Eigen::VectorXd* r2,
                       Eigen::MatrixXd* A, bool want_h) {
    ObjectiveDerivatives(p, L, yy, &gf, want_h ? &H : nullptr, nullptr);
    ConstraintDerivatives(p, L, yy, &c, &Ay, nullptr);
    const int w = static_cast<int>(working->size());
    A->resize(w, m);
    r2->resize(w);
    for (int i = 0; i < w; ++i) {
      A->row(i) = Ay.row((*working)[i]);
      (*r2)[i] = c[(*working)[i]];
    }
    *r1 = gf - A->transpose() * nn;
  };
  Eigen::VectorXd r1, r2;
  Eigen::MatrixXd A;
  const int w = static_cast<int>(working->size());
  // Multipliers by least squares: Aᵀν = ∇f.
  residuals(y, Eigen::VectorXd::Zero(w), &r1, &r2, &A, false);
  if (w > 0) {
    *nu = A.transpose().completeOrthogonalDecomposition().solve(gf);
  } else {
    nu->resize(0);
  }
  residuals(y, *nu, &r1, &r2, &A, true);
  double res = ScaledResidual(L, r1, r2, gf, y);
  *singular = false;
  std::vector<double> trial(m);
  for (int it = 0; it < o.max_newton_iterations && res > 1e-16; ++it) {
    AddConstraintCurvature(p, L, y, *working, *nu, &H, nullptr);
    Eigen::MatrixXd K = Eigen::MatrixXd::Zero(m + w, m + w);
    K.topLeftCorner(m, m) = H;
    if (w > 0) {
      K.topRightCorner(m, w) = -A.transpose();
      K.bottomLeftCorner(w, m) = A;
    }
    Eigen::VectorXd rhs(m + w);
    rhs.head(m) = -r1;
    if (w > 0) rhs.tail(w) = -r2;
    Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd> cod;
    cod.setThreshold(o.rcond);
    cod.compute(K);
    if (cod.rank() < m + w) *singular = true;
    const Eigen::VectorXd step = cod.solve(rhs);
    // Accept the full step, or halve it until the residual drops.
    bool accepted = false;
    for (double t = 1.0; t > 1e-3; t *= 0.5) {
      for (int k = 0; k < m; ++k) trial[k] = y[k] + t * step[k];
      Eigen::VectorXd nu_t = *nu;
      if (w > 0) nu_t += t * step.tail(w);
      Eigen::VectorXd r1t, r2t;
      Eigen::MatrixXd At;
      residuals(trial.data(), nu_t, &r1t, &r2t, &At, true);
      const double res_t = ScaledResidual(L, r1t, r2t, gf, trial.data());
      if (res_t < res) {
        std::copy(trial.begin(), trial.end(), y);
        *nu = nu_t;
        r1 = r1t;
        r2 = r2t;
        A = At;
        res = res_t;
        accepted = true;
        break;
      }
    }
    ++*iterations;
    if (!accepted) break;
  }
  return res;
}

template <class Derived>
void DeclarativeNode<Derived>::ActiveSet(const ProblemData& p, const internal::Layout& L, const double* y,
                                         std::vector<int>* working, Eigen::VectorXd* nu, ProblemStatus* s) const {
  working->clear();
  for (int i = 0; i < L.p; ++i) working->push_back(i);
  if (L.q == 0) return;
  Eigen::VectorXd c;
  ConstraintDerivatives(p, L, y, &c, nullptr, nullptr);
  double ymax = 0;
  for (int k = 0; k < L.m; ++k) ymax = std::max(ymax, std::abs(y[k]));
  const double tau = generic_options_.active_tolerance * (1.0 + ymax);
  for (int k = 0; k < L.q; ++k) {
    const double g = c[L.p + k];
    if (g > tau * 1e3) {
      throw NumericalFailure("node '" + name() + "': the solution violates inequality " + std::to_string(k) +
                             " (g = " + FormatDouble(g) + ")");
    }
    if (g >= -tau) working->push_back(L.p + k);
  }
}

template <class Derived>
void DeclarativeNode<Derived>::GenericSolve(const ProblemData& p, ProblemStatus* s) const {
  const internal::Layout L = MakeLayout(p);
  const GenericSolverOptions& o = generic_options_;
  const int m = L.m;
  double* y = p.outputs[0];
  derived().InitialGuess(p, y);

  // The function L-BFGS minimises: f, or the augmented Lagrangian.
  struct Function : public ceres::FirstOrderFunction {
    const DeclarativeNode* node;
    const ProblemData* problem;
    const internal::Layout* layout;
    Eigen::VectorXd lambda, mu;
    double rho = 10.0;
    bool equalities_on_manifold = false;  // the manifold keeps h = 0: no penalty for them
    bool Evaluate(const double* yy, double* cost, double* gradient) const override {
      Eigen::VectorXd g;
      *cost = node->ObjectiveDerivatives(*problem, *layout, yy, gradient ? &g : nullptr, nullptr, nullptr);
      const int ncc = layout->p + layout->q;
      if (ncc > 0) {
        Eigen::VectorXd c;
        Eigen::MatrixXd Ay;
        node->ConstraintDerivatives(*problem, *layout, yy, &c, gradient ? &Ay : nullptr, nullptr);
        Eigen::VectorXd weight = Eigen::VectorXd::Zero(ncc);
        for (int i = 0; i < layout->p && !equalities_on_manifold; ++i) {
          *cost += lambda[i] * c[i] + 0.5 * rho * c[i] * c[i];
          weight[i] = lambda[i] + rho * c[i];
        }
        for (int k = 0; k < layout->q; ++k) {
          const double shifted = std::max(0.0, mu[k] + rho * c[layout->p + k]);
          *cost += (shifted * shifted - mu[k] * mu[k]) / (2 * rho);
          weight[layout->p + k] = shifted;
        }
        if (gradient) g += Ay.transpose() * weight;
      }
      if (gradient) std::copy(g.data(), g.data() + layout->m, gradient);
      return std::isfinite(*cost);
    }
    int NumParameters() const override { return layout->m; }
  };
  auto* fn = new Function;
  fn->node = this;
  fn->problem = &p;
  fn->layout = &L;
  fn->lambda = Eigen::VectorXd::Zero(L.p);
  fn->mu = Eigen::VectorXd::Zero(L.q);
  ceres::Manifold* manifold = derived().MakeManifold(p);
  fn->equalities_on_manifold = manifold != nullptr;
  // GradientProblem takes ownership of the function and the manifold.
  ceres::GradientProblem problem = manifold ? ceres::GradientProblem(fn, manifold) : ceres::GradientProblem(fn);
  ceres::GradientProblemSolver::Options options;
  options.max_num_iterations = o.max_lbfgs_iterations;
  options.function_tolerance = 1e-16;
  options.gradient_tolerance = 1e-14;
  options.parameter_tolerance = 1e-16;
  options.logging_type = ceres::SILENT;
  ceres::GradientProblemSolver::Summary summary;
  int iterations = 0;
  double violation = 0;
  const bool penalised = L.q > 0 || (L.p > 0 && !manifold);
  for (int outer = 0; outer < (penalised ? o.max_outer_iterations : 1); ++outer) {
    ceres::Solve(options, problem, y, &summary);
    iterations += static_cast<int>(summary.iterations.size());
    if (!std::isfinite(summary.final_cost)) {
      throw NumericalFailure("node '" + name() + "': the Ceres solve diverged (" + summary.message + ")");
    }
    if (!penalised) break;
    Eigen::VectorXd c;
    ConstraintDerivatives(p, L, y, &c, nullptr, nullptr);
    double new_violation = 0;
    for (int i = 0; i < L.p && !manifold; ++i) new_violation = std::max(new_violation, std::abs(c[i]));
    for (int k = 0; k < L.q; ++k) new_violation = std::max(new_violation, c[L.p + k]);
    for (int i = 0; i < L.p && !manifold; ++i) fn->lambda[i] += fn->rho * c[i];
    for (int k = 0; k < L.q; ++k) fn->mu[k] = std::max(0.0, fn->mu[k] + fn->rho * c[L.p + k]);
    if (new_violation <= o.feasibility_tolerance) {
      violation = new_violation;
      break;
    }
    if (outer > 0 && new_violation > 0.25 * violation) fn->rho = std::min(fn->rho * 10.0, 1e10);
    violation = new_violation;
  }

  if (penalised && violation > 1e-6) {
    throw NumericalFailure("node '" + name() + "': the constraints could not be satisfied (max violation " +
                           FormatDouble(violation) + " after " + std::to_string(iterations) +
                           " iterations): the problem looks infeasible");
  }

  // Newton polish on the identified active set; drop constraints with wrong-signed multipliers.
  std::vector<int> working;
  Eigen::VectorXd nu;
  for (int i = 0; i < L.p; ++i) working.push_back(i);
  if (L.q > 0) {
    Eigen::VectorXd c;
    ConstraintDerivatives(p, L, y, &c, nullptr, nullptr);
    double ymax = 0;
    for (int k = 0; k < m; ++k) ymax = std::max(ymax, std::abs(y[k]));
    const double tau = std::max(1e3 * o.feasibility_tolerance, 1e-6) * (1.0 + ymax);
    for (int k = 0; k < L.q; ++k)
      if (c[L.p + k] >= -tau || fn->mu[k] > 0) working.push_back(L.p + k);
  }
  double residual = 0;
  bool singular = false;
  std::vector<double> start(y, y + m);
  for (int round = 0; round < 2 * L.q + 2; ++round) {
    residual = NewtonPolish(p, L, &working, y, &nu, &iterations, &singular);
    if (L.q == 0) break;
    // Inequalities in W with λ = −ν < 0 are not binding: drop the most negative one and polish again.
    Eigen::VectorXd gf;
    ObjectiveDerivatives(p, L, y, &gf, nullptr, nullptr);
    const double tol = o.active_tolerance * (1.0 + gf.cwiseAbs().maxCoeff());
    int worst = -1;
    double worst_lambda = -tol;
    for (size_t i = 0; i < working.size(); ++i) {
      if (working[i] < L.p) continue;
      const double lambda = -nu[static_cast<Eigen::Index>(i)];
      if (lambda < worst_lambda) {
        worst_lambda = lambda;
        worst = static_cast<int>(i);
      }
    }
    // Constraints outside W that the polish pushed past their bound: add the most violated.
    Eigen::VectorXd c;
    ConstraintDerivatives(p, L, y, &c, nullptr, nullptr);
    int violated = -1;
    double worst_g = 0;
    double ymax = 0;
    for (int k = 0; k < m; ++k) ymax = std::max(ymax, std::abs(y[k]));
    for (int k = 0; k < L.q; ++k) {
      const int id = L.p + k;
      if (std::find(working.begin(), working.end(), id) != working.end()) continue;
      if (c[id] > std::max(worst_g, o.active_tolerance * (1.0 + ymax))) {
        worst_g = c[id];
        violated = id;
      }
    }
    if (worst < 0 && violated < 0) break;
    if (worst >= 0) working.erase(working.begin() + worst);
    if (violated >= 0) working.push_back(violated);
    std::sort(working.begin(), working.end());
  }
  s->iterations = iterations;
  s->residual = residual;
  if (!(residual <= o.failure_residual)) {
    throw NumericalFailure("node '" + name() + "': the generic solve did not converge (scaled KKT residual " +
                           FormatDouble(residual) + " after " + std::to_string(iterations) + " iterations)");
  }
  if (singular) s->Set(kNonUnique, "singular Hessian at the solution: the minimiser may not be unique");
}

template <class Derived>
void DeclarativeNode<Derived>::GenericBackward(const ProblemData& p, ProblemStatus* s) const {
  const internal::Layout L = MakeLayout(p);
  const double* y = p.outputs[0];
  std::vector<int> working;
  Eigen::VectorXd nu;
  ActiveSet(p, L, y, &working, &nu, s);
  ImplicitSystem sys;
  Eigen::VectorXd gf;
  ObjectiveDerivatives(p, L, y, &gf, &sys.H, &sys.B);
  if (!working.empty()) {
    Eigen::VectorXd c;
    Eigen::MatrixXd Ay, Ax;
    ConstraintDerivatives(p, L, y, &c, &Ay, &Ax);
    // Multipliers: Aᵀν = ∇f on the working set; drop inequalities whose λ = −ν is clearly negative
    // (the solution does not press on them), flag near-zero ones as degenerate.
    const double tol = generic_options_.active_tolerance * (1.0 + gf.cwiseAbs().maxCoeff());
    for (int round = 0; round <= L.q; ++round) {
      Eigen::MatrixXd A(working.size(), L.m);
      for (size_t i = 0; i < working.size(); ++i) A.row(i) = Ay.row(working[i]);
      nu = A.transpose().completeOrthogonalDecomposition().solve(gf);
      int worst = -1;
      double worst_lambda = -tol;
      for (size_t i = 0; i < working.size(); ++i) {
        if (working[i] < L.p) continue;
        if (-nu[i] < worst_lambda) {
          worst_lambda = -nu[i];
          worst = static_cast<int>(i);
        }
      }
      if (worst < 0) break;
      working.erase(working.begin() + worst);
    }
    for (size_t i = 0; i < working.size(); ++i) {
      if (working[i] >= L.p && std::abs(nu[i]) <= tol) {
        s->Set(kDegenerate, "weakly active inequality (zero multiplier)");
      }
    }
    sys.A.resize(working.size(), L.m);
    sys.C.resize(working.size(), L.n);
    for (size_t i = 0; i < working.size(); ++i) {
      sys.A.row(i) = Ay.row(working[i]);
      sys.C.row(i) = Ax.row(working[i]);
    }
    AddConstraintCurvature(p, L, y, working, nu, &sys.H, &sys.B);
  } else {
    sys.A.resize(0, L.m);
    sys.C.resize(0, L.n);
  }
  const Eigen::Map<const Eigen::VectorXd> v(p.grad_outputs[0], L.m);
  ImplicitOptions io;
  io.rcond = generic_options_.rcond;
  const Eigen::VectorXd dx = ImplicitVjp(sys, v, s, io);
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    if (L.x_offset[i] < 0 || !p.grad_inputs[i]) continue;
    const int64_t size = p.InputSize(static_cast<int>(i));
    for (int64_t k = 0; k < size; ++k) p.grad_inputs[i][k] += dx[L.x_offset[i] + k];
  }
}

}  // namespace ddn
