// ddn/declarative.h: write a declarative node as an objective; get the solver and the gradient.
//
// A declarative node computes y(x) ∈ argmin_y f(x, y) subject to h(x, y) = 0 and g(x, y) ≤ 0. With
// DeclarativeNode you write f (and h, g) once, as templates over the scalar type (ddn/scalar.h), and inherit
//
//   GenericSolve     the generic engine's forward solve (ddn/generic_solver.h): Newton–KKT with exact second
//                    derivatives, globalised by an augmented Lagrangian, a second-order check that escapes
//                    saddles and maxima, sparse linear algebra; the answer to machine precision (gradients
//                    need it: docs/design.md §1) with flags that say how to read it;
//   GenericBackward  the implicit backward of docs/design.md §1 at that answer.
//
// This header is the adapter between your templates and the compiled solver: it evaluates them as a
// ddn::DerivativeOracle. Objectives written as a sum of terms are differentiated term by term with Ceres Jets
// (cost O(terms), the Hessian assembled sparsely from the terms' blocks); whole functions — Objective without
// terms, Equalities, Inequalities — are recorded once on a tape and differentiated in reverse (ddn/tape.h:
// gradients in O(cost), exact sparse Hessians by edge pushing).
//
// Solve and Backward default to the generic ones; a node with a faster specialised solver or a closed-form
// gradient overrides Solve/Backward and the generic ones stay callable (tests compare the two).
//
// Writing a node (the README's "Write your own node" has a complete, compiled example):
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
// What a node may define (Spec, the constructor and one of Objective / kTermAxis + Term are required):
//
//   template <T> T Objective(const Args<T>& in, const T* y) const;  the whole f(x, y); or
//   static constexpr const char* kTermAxis = "N";                  f = Σ_t Term_t(x, y): one term per
//   template <T> T Term(const Args<T>& in, const T* y) const;      index t of the axis "N". Inputs (and the
//                                                                  output) whose first axis is "N" are
//                                                                  sliced: in[i] points at row t.
//   int NumEqualities(const ProblemData&) const;                   h(x, y) = 0 (both or neither), whole
//   template <T> void Equalities(const Args<T>&, const T* y, T* h) const;      inputs, h has NumEqualities
//   int NumInequalities(const ProblemData&) const;                 g(x, y) ≤ 0 (both or neither)
//   template <T> void Inequalities(const Args<T>&, const T* y, T* g) const;
//   static constexpr bool kLinearConstraints = true;               h and g are affine in y for fixed x (they may
//                                                                  depend on x in any way, e.g. a·y = b with a
//                                                                  an input): the forward solve skips their y-y
//                                                                  curvature. Gradients are always exact.
//   void InitialGuess(const ProblemData&, double* y) const;        start of the generic solve (default 0)
//   bool IsConvex(const ProblemData&) const;                       false for a problem that may have several local
//                                                                  minima: the generic solve's answers then carry
//                                                                  kNotCertified (without it, only a solve that had
//                                                                  to leave a saddle or maximum says so)
//   ceres::Manifold* MakeManifold(const ProblemData&) const;       a Ceres manifold on which the equalities
//                                                                  hold (e.g. ceres::SphereManifold, which needs
//                                                                  D ≥ 2): L-BFGS runs on it from an
//                                                                  InitialGuess on it before Newton–KKT
//   std::vector<CheckCase> CheckCases(uint64_t seed) const override;   awkward inputs for `ddn check`
//
// A hook spelt wrong, or half of a pair (Equalities without NumEqualities, ...), is a compile error, not a
// constraint silently dropped. Inputs marked non-differentiable are constants for the objective and get no
// gradient. The generic engine handles nodes with a single output y.
//
// Solver options (GenericSolverOptions, ddn/generic_solver.h): generic_options(), mutable_generic_options() in
// a node's constructor, or `ddn eval/check/bench --solver KEY=VALUE`.
//
// This header includes Ceres: include it from .cc files only.
#pragma once

#include <ceres/jet.h>
#include <ceres/manifold.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ddn/error.h"
#include "ddn/generic_solver.h"
#include "ddn/generic_unrolled.h"
#include "ddn/node.h"
#include "ddn/params.h"
#include "ddn/scalar.h"
#include "ddn/tape.h"

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

namespace internal {

// ---- which hooks a node defines (detected on the node, whatever base class declares them) ----------------
template <class D, class = void>
struct HasTermAxis : std::false_type {};
template <class D>
struct HasTermAxis<D, std::void_t<decltype(D::kTermAxis)>> : std::true_type {};

template <class D, class = void>
struct HasTerm : std::false_type {};
template <class D>
struct HasTerm<D, std::void_t<decltype(std::declval<const D&>().template Term<double>(
                      std::declval<const Args<double>&>(), std::declval<const double*>()))>> : std::true_type {};

template <class D, class = void>
struct HasObjective : std::false_type {};
template <class D>
struct HasObjective<D, std::void_t<decltype(std::declval<const D&>().template Objective<double>(
                           std::declval<const Args<double>&>(), std::declval<const double*>()))>> : std::true_type {};

template <class D, class = void>
struct HasNumEqualities : std::false_type {};
template <class D>
struct HasNumEqualities<
    D, std::void_t<decltype(std::declval<const D&>().NumEqualities(std::declval<const ProblemData&>()))>>
    : std::true_type {};

template <class D, class = void>
struct HasEqualities : std::false_type {};
template <class D>
struct HasEqualities<D,
                     std::void_t<decltype(std::declval<const D&>().template Equalities<double>(
                         std::declval<const Args<double>&>(), std::declval<const double*>(), std::declval<double*>()))>>
    : std::true_type {};

template <class D, class = void>
struct HasNumInequalities : std::false_type {};
template <class D>
struct HasNumInequalities<
    D, std::void_t<decltype(std::declval<const D&>().NumInequalities(std::declval<const ProblemData&>()))>>
    : std::true_type {};

template <class D, class = void>
struct HasInequalities : std::false_type {};
template <class D>
struct HasInequalities<
    D, std::void_t<decltype(std::declval<const D&>().template Inequalities<double>(
           std::declval<const Args<double>&>(), std::declval<const double*>(), std::declval<double*>()))>>
    : std::true_type {};

template <class D, class = void>
struct HasIsConvex : std::false_type {};
template <class D>
struct HasIsConvex<D, std::void_t<decltype(std::declval<const D&>().IsConvex(std::declval<const ProblemData&>()))>>
    : std::true_type {};

template <class D, class = void>
struct DeclaresLinearConstraints : std::false_type {};
template <class D>
struct DeclaresLinearConstraints<D, std::void_t<decltype(D::kLinearConstraints)>> : std::true_type {};

template <class D, class = void>
struct HasLinearConstraints : std::false_type {};
template <class D>
struct HasLinearConstraints<D, std::void_t<decltype(D::kLinearConstraints)>>
    : std::integral_constant<bool, D::kLinearConstraints> {};

// Forward-mode Jets for the terms: width kChunk (4 partial derivatives per evaluation), or 1 for terms of one
// variable; second derivatives by nested Jets (outer: the term's y variables, inner: the columns).
constexpr int kChunk = 4;

// Per-problem layout of the variables and the terms.
struct Layout {
  int m = 0;                      // size of y
  int n = 0;                      // size of x (differentiable inputs present, concatenated)
  std::vector<int> x_offset;      // per input: offset in x, or −1
  std::vector<int64_t> row_size;  // per input: size of one term's slice, or −1 (whole)
  int64_t y_row = -1;             // size of y's slice per term, or −1 (whole)
  int64_t num_terms = 1;
  int p = 0, q = 0;  // equalities, inequalities
};

// The scalar-typed values one term (or the whole objective) reads: sliced inputs' rows, whole inputs, y.
template <typename T>
struct TermVars {
  std::vector<std::vector<T>> row;    // per sliced input: the current term's row
  std::vector<std::vector<T>> whole;  // per whole input: all of it
  std::vector<T> y;                   // all of y
  Args<T> args;
};

// Where one differentiated variable of a term lives, and its index in z = (y, x).
struct VarSlot {
  int input;      // −1 for y
  int64_t index;  // within the term's row (sliced input), the whole input, or y
  int global;     // position in z: y first (0..m−1), then x (m + offset)
};

}  // namespace internal

template <class Derived>
class DeclarativeNode;

// ---- the oracle: a problem of a DeclarativeNode as the solver sees it --------------------------------------
namespace internal {

template <class Derived>
class NodeOracle final : public DerivativeOracle {
 public:
  NodeOracle(const Derived& node, const ProblemData& p) : node_(node), p_(p) { MakeLayout(); }

  const Layout& layout() const { return L_; }
  int num_variables() const override { return L_.m; }
  int num_parameters() const override { return L_.n; }
  int num_equalities() const override { return L_.p; }
  int num_inequalities() const override { return L_.q; }
  bool ConstraintsAffineInY() const override { return HasLinearConstraints<Derived>::value; }
  ceres::Manifold* NewManifold() const override { return node_.MakeManifold(p_); }
  std::string Name() const override { return "node '" + node_.name() + "'"; }

  double Value(const double* y) const override {
    if constexpr (HasTermAxis<Derived>::value) {
      TermVars<double> v;
      Prepare(y, &v, /*copy=*/false);
      double f = 0;
      for (int64_t t = 0; t < L_.num_terms; ++t) f += EvalTerm(t, &v, /*copy=*/false);
      return f;
    } else {
      TermVars<double> v;
      Prepare(y, &v, false);
      BindWhole(&v, false);
      return node_.template Objective<double>(v.args, v.y.data());
    }
  }

  double Derivatives(const double* y, double* grad, std::vector<SparseEntry>* H, std::vector<SparseEntry>* B,
                     double* magnitude) const override {
    if constexpr (HasTermAxis<Derived>::value) {
      return TermDerivatives(y, grad, H, B, magnitude);
    } else {
      return WholeDerivatives(y, grad, H, B, magnitude);
    }
  }

  void Constraints(const double* y, double* c) const override {
    TermVars<double> v;
    Prepare(y, &v, false);
    BindWhole(&v, false);
    EvalConstraints(v, c);
  }

  void ConstraintJacobian(const double* y, double* c, std::vector<SparseEntry>* jac_y,
                          std::vector<SparseEntry>* jac_x) const override {
    RecordConstraints(y, jac_x != nullptr);
    for (int i = 0; i < L_.p + L_.q; ++i) c[i] = constraint_out_[i].value();
    rows_.clear();
    tape_.JacobianRows(constraint_out_, &rows_);
    for (const SparseEntry& e : rows_) {
      if (e.col < L_.m) {
        jac_y->push_back(e);
      } else if (jac_x) {
        jac_x->push_back({e.row, e.col - L_.m, e.value});
      }
    }
  }

  void ConstraintCurvature(const double* y, const double* w, std::vector<SparseEntry>* H,
                           std::vector<SparseEntry>* B) const override {
    RecordConstraints(y, B != nullptr);
    weights_.assign(w, w + L_.p + L_.q);
    rows_.clear();
    tape_.Hessian(constraint_out_, weights_, &rows_);
    SplitHessian(rows_, H, B);
  }

 private:
  void MakeLayout() {
    const NodeSpec& spec = node_.spec();
    if (spec.outputs.size() != 1) {
      throw InvalidInput("node '" + spec.name + "': the generic engine handles exactly one output");
    }
    L_.m = static_cast<int>(p_.OutputSize(0));
    L_.x_offset.assign(spec.inputs.size(), -1);
    L_.row_size.assign(spec.inputs.size(), -1);
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      if (p_.inputs[i] && spec.inputs[i].differentiable) {
        L_.x_offset[i] = L_.n;
        L_.n += static_cast<int>(p_.InputSize(static_cast<int>(i)));
      }
    }
    if constexpr (HasTermAxis<Derived>::value) {
      const std::string axis = Derived::kTermAxis;
      L_.num_terms = p_.Dim(axis);
      for (size_t i = 0; i < spec.inputs.size(); ++i) {
        if (p_.inputs[i] && !spec.inputs[i].dims.empty() && spec.inputs[i].dims[0] == axis) {
          L_.row_size[i] = p_.InputSize(static_cast<int>(i)) / L_.num_terms;
        }
      }
      if (!spec.outputs[0].dims.empty() && spec.outputs[0].dims[0] == axis) L_.y_row = L_.m / L_.num_terms;
    }
    if constexpr (HasNumEqualities<Derived>::value) L_.p = node_.NumEqualities(p_);
    if constexpr (HasNumInequalities<Derived>::value) L_.q = node_.NumInequalities(p_);
    if (L_.p < 0 || L_.q < 0) throw InvalidInput("node '" + spec.name + "': negative number of constraints");
  }

  // Converts y and the whole (unsliced) inputs to T; sliced rows are filled per term. With copy = false
  // (T = double) inputs are read in place.
  template <typename T>
  void Prepare(const double* y, TermVars<T>* v, bool copy) const {
    const size_t ni = p_.inputs.size();
    v->row.resize(ni);
    v->whole.resize(ni);
    v->args.ptr_.assign(ni, nullptr);
    v->args.size_.assign(ni, 0);
    v->args.problem_ = &p_;
    v->args.term_ = -1;
    for (size_t i = 0; i < ni; ++i) {
      if (!p_.inputs[i]) continue;
      if (L_.row_size[i] >= 0) {
        if (copy) v->row[i].resize(L_.row_size[i]);
      } else if (copy) {
        const int64_t size = p_.InputSize(static_cast<int>(i));
        v->whole[i].resize(size);
        for (int64_t k = 0; k < size; ++k) v->whole[i][k] = Constant<T>(p_.inputs[i][k]);
      }
    }
    v->y.resize(L_.m);
    for (int k = 0; k < L_.m; ++k) v->y[k] = Constant<T>(y[k]);
  }

  // Points the arguments at the whole inputs (no slicing).
  template <typename T>
  void BindWhole(TermVars<T>* v, bool copy) const {
    for (size_t i = 0; i < p_.inputs.size(); ++i) {
      if (!p_.inputs[i]) continue;
      v->args.size_[i] = p_.InputSize(static_cast<int>(i));
      if constexpr (std::is_same_v<T, double>) {
        if (!copy) {
          v->args.ptr_[i] = p_.inputs[i];
          continue;
        }
      }
      if (v->whole[i].empty()) {
        v->whole[i].resize(v->args.size_[i]);
        for (int64_t k = 0; k < v->args.size_[i]; ++k) v->whole[i][k] = Constant<T>(p_.inputs[i][k]);
      }
      v->args.ptr_[i] = v->whole[i].data();
    }
  }

  // Binds term t (sliced inputs' rows converted to T) and evaluates it.
  template <typename T>
  T EvalTerm(int64_t t, TermVars<T>* v, bool copy) const {
    BindTerm(t, v, copy);
    const T* y = v->y.data() + (L_.y_row >= 0 ? t * L_.y_row : 0);
    return node_.template Term<T>(v->args, y);
  }

  template <typename T>
  void BindTerm(int64_t t, TermVars<T>* v, bool copy) const {
    v->args.term_ = t;
    for (size_t i = 0; i < p_.inputs.size(); ++i) {
      if (!p_.inputs[i]) continue;
      const int64_t rs = L_.row_size[i];
      if (rs >= 0) {
        v->args.size_[i] = rs;
        const double* src = p_.inputs[i] + t * rs;
        if constexpr (std::is_same_v<T, double>) {
          if (!copy) {
            v->args.ptr_[i] = src;
            continue;
          }
        }
        for (int64_t k = 0; k < rs; ++k) v->row[i][k] = Constant<T>(src[k]);
        v->args.ptr_[i] = v->row[i].data();
      } else {
        v->args.size_[i] = p_.InputSize(static_cast<int>(i));
        if constexpr (std::is_same_v<T, double>) {
          if (!copy) {
            v->args.ptr_[i] = p_.inputs[i];
            continue;
          }
        }
        v->args.ptr_[i] = v->whole[i].data();
      }
    }
  }

  // The variables term t depends on: its y (slice or all of y), then, if with_x, its rows of the
  // differentiable inputs (or all of a whole input).
  void TermSlots(int64_t t, bool with_x, std::vector<VarSlot>* slots) const {
    slots->clear();
    const int64_t y0 = L_.y_row >= 0 ? t * L_.y_row : 0, ylen = L_.y_row >= 0 ? L_.y_row : L_.m;
    for (int64_t k = 0; k < ylen; ++k) slots->push_back({-1, y0 + k, static_cast<int>(y0 + k)});
    if (!with_x) return;
    for (size_t i = 0; i < p_.inputs.size(); ++i) {
      if (L_.x_offset[i] < 0) continue;
      if (L_.row_size[i] >= 0) {
        const int64_t rs = L_.row_size[i];
        for (int64_t k = 0; k < rs; ++k) {
          slots->push_back({static_cast<int>(i), k, static_cast<int>(L_.m + L_.x_offset[i] + t * rs + k)});
        }
      } else {
        for (int64_t k = 0; k < p_.InputSize(static_cast<int>(i)); ++k) {
          slots->push_back({static_cast<int>(i), k, static_cast<int>(L_.m + L_.x_offset[i] + k)});
        }
      }
    }
  }

  template <typename T>
  T* Slot(TermVars<T>* v, const VarSlot& s) const {
    if (s.input < 0) return &v->y[s.index];
    return L_.row_size[s.input] >= 0 ? &v->row[s.input][s.index] : &v->whole[s.input][s.index];
  }

  // f = Σ_t Term_t with forward-mode Jets: one J2 evaluation gives a 4×4 block of a term's second
  // derivatives (rows: the term's y, columns: its y and, for B, its x).
  double TermDerivatives(const double* y, double* grad, std::vector<SparseEntry>* H, std::vector<SparseEntry>* B,
                         double* magnitude) const {
    std::fill(grad, grad + L_.m, 0.0);
    // Every term has the same number of y variables (rows) and of variables (d): the Jet widths follow them
    // (a one-variable term is differentiated by Jets of width 1, not 4).
    std::vector<VarSlot> slots;
    TermSlots(0, B != nullptr, &slots);
    const int d = static_cast<int>(slots.size());
    int rows = 0;
    while (rows < d && slots[rows].input < 0) ++rows;
    if (!H) {
      // A gradient: the second-order types are as cheap as Jets for a few variables and need no slot lookups.
      if (rows <= 1) return TermSecondOrder<1, 0>(y, grad, nullptr, nullptr, magnitude);
      if (rows <= kChunk) return TermSecondOrder<kChunk, 0>(y, grad, nullptr, nullptr, magnitude);
      return TermGradient<kChunk>(y, grad, magnitude);
    }
    // Variables whose second derivatives are needed: the y ones (forward) and the x ones too (backward).
    const int needed = B ? d : rows;
    // With B, a term of one y variable carries no x–x second derivatives (SecondOrder<N, 1>).
    if (needed <= 1) return TermSecondOrder<1>(y, grad, H, B, magnitude);
    if (needed <= 2) {
      return B && rows == 1 ? TermSecondOrder<2, 1>(y, grad, H, B, magnitude)
                            : TermSecondOrder<2>(y, grad, H, B, magnitude);
    }
    if (needed <= kChunk) {
      return B && rows == 1 ? TermSecondOrder<kChunk, 1>(y, grad, H, B, magnitude)
                            : TermSecondOrder<kChunk>(y, grad, H, B, magnitude);
    }
    return TermHessian<kChunk, kChunk>(y, grad, H, B, magnitude);
  }

  // Terms of at most N variables: one evaluation with ad::SecondOrder<N> gives the value, the gradient and all
  // second derivatives of the term.
  // R < N: only the second derivatives in the rows of the first R variables (the term's y, when it has R);
  // R = 0: a gradient (H = B = nullptr).
  template <int N, int R = N>
  double TermSecondOrder(const double* y, double* grad, std::vector<SparseEntry>* H, std::vector<SparseEntry>* B,
                         double* magnitude) const {
    using S = ad::SecondOrder<N, R>;
    constexpr bool kSecond = R > 0;
    TermVars<S> v;
    Prepare(y, &v, true);
    BindTerm(0, &v, true);
    const TermPlan plan = Plan(B != nullptr);
    // (d ≤ N by the dispatch in TermDerivatives; the min tells the compiler so.)
    const int d = std::min(static_cast<int>(plan.slots.size()), N), rows = std::min(plan.rows, d);
    if (kSecond && rows > R) throw std::logic_error("TermSecondOrder: more y variables than second-derivative rows");
    // Variable k of the term lives in the same storage for every term (a sliced input's row buffer, a whole
    // input, y when it is not sliced): seeded once, in place, and only the values change from term to term (a
    // copy of a whole scalar per variable and term costs more than the term's arithmetic). y sliced along the
    // terms is seeded per term.
    const bool y_sliced = L_.y_row >= 0;
    for (int k = 0; k < d; ++k) {
      if (k < rows && y_sliced) continue;
      Slot(&v, plan.slots[k])->Seed(k);
    }
    TermSums<N> out;
    out.rows = rows;
    out.d = d;
    for (int k = 0; k < rows; ++k) out.row[k] = plan.slots[k].global;
    for (int k = rows; k < d; ++k) {
      out.col0[k] = plan.slots[k].global - L_.m;
      out.col_step[k] = static_cast<int>(plan.stride[k]);
    }
    out.want_h = kSecond && H != nullptr;
    out.want_b = kSecond && B != nullptr;
    out.want_mag = magnitude != nullptr;
    // Entries are written through pointers into space sized for every term (trimmed at the end): a push_back
    // per entry is a call per term.
    const size_t b0 = B ? B->size() : 0, h0 = H ? H->size() : 0;
    if (B) {
      B->resize(b0 + static_cast<size_t>(L_.num_terms) * rows * (d - rows));
      out.b_out = B->data() + b0;
    }
    double f = 0;
    if (!y_sliced) {
      // Every term reads the same y variables (all of y, at most N of them): their gradient, magnitudes and
      // second derivatives are summed in the term loop and written once.
      f = SumTermsSharedY(plan, &v, &out);
      for (int a = 0; a < rows; ++a) {
        grad[out.row[a]] += out.g[a];
        if (magnitude) magnitude[out.row[a]] += out.mag[a];
      }
      if (H && out.want_h) {
        // Rows are y variables in increasing order, so (row[a], row[b]) with b ≤ a is in the lower triangle.
        for (int a = 0; a < rows; ++a)
          for (int b = 0; b <= a; ++b)
            if (out.h[a * (a + 1) / 2 + b] != 0) H->push_back({out.row[a], out.row[b], out.h[a * (a + 1) / 2 + b]});
      }
    } else {
      if (H && out.want_h) {
        H->resize(h0 + static_cast<size_t>(L_.num_terms) * rows * (rows + 1) / 2);
        out.h_out = H->data() + h0;
      }
      f = SumTermsSlicedY(plan, &v, grad, magnitude, &out);
      if (H && out.want_h) H->resize(static_cast<size_t>(out.h_out - H->data()));
    }
    if (B) B->resize(static_cast<size_t>(out.b_out - B->data()));
    return f;
  }

  // The variables of every term, as those of term 0 plus a per-term stride of their index in z = (y, x).
  struct TermPlan {
    std::vector<VarSlot> slots;  // term 0's: its y variables first (`rows` of them), then its x variables
    std::vector<int64_t> stride;
    int rows = 0;
    std::vector<std::pair<int, int64_t>> sliced;  // (input, row size) of the inputs sliced along the term axis
  };
  TermPlan Plan(bool with_x) const {
    TermPlan plan;
    TermSlots(0, with_x, &plan.slots);
    for (const VarSlot& s : plan.slots) {
      if (s.input < 0) {
        ++plan.rows;
        plan.stride.push_back(L_.y_row >= 0 ? L_.y_row : 0);
      } else {
        plan.stride.push_back(L_.row_size[s.input] >= 0 ? L_.row_size[s.input] : 0);
      }
    }
    for (size_t i = 0; i < p_.inputs.size(); ++i) {
      if (p_.inputs[i] && L_.row_size[i] >= 0) plan.sliced.emplace_back(static_cast<int>(i), L_.row_size[i]);
    }
    return plan;
  }

  // What the term loops of TermSecondOrder accumulate and where they write. Rows are the term's y variables
  // (row[a]: their index in y, when y is shared by every term), columns after them its x variables (index in x
  // col0 + t·col_step for term t).
  template <int N>
  struct TermSums {
    int rows = 0, d = 0;
    int row[N] = {}, col0[N] = {}, col_step[N] = {};
    bool want_h = false, want_b = false, want_mag = false;
    double g[N] = {}, mag[N] = {}, h[N * (N + 1) / 2] = {};
    SparseEntry* h_out = nullptr;  // y sliced: the y–y entries, one term after the other
    SparseEntry* b_out = nullptr;  // the y–x entries
  };

  // The sliced inputs' values of term t into their (seeded) storage.
  template <typename S>
  DDN_AD_INLINE void SetTermValues(const TermPlan& plan, int64_t t, TermVars<S>* v) const {
    for (const auto& [input, size] : plan.sliced) {
      const double* src = p_.inputs[input] + t * size;
      S* dst = v->row[input].data();
      for (int64_t k = 0; k < size; ++k) dst[k].set_value(src[k]);
    }
  }

  // A second copy of the variables' storage (sliced rows, whole inputs; seeds included) with the arguments
  // pointing into it, so that two terms can be evaluated side by side.
  template <typename S>
  TermVars<S> SecondCopy(const TermVars<S>& v) const {
    TermVars<S> w = v;
    for (size_t i = 0; i < w.args.ptr_.size(); ++i) {
      if (!v.args.ptr_[i]) continue;
      if (!v.row[i].empty() && v.args.ptr_[i] == v.row[i].data()) w.args.ptr_[i] = w.row[i].data();
      if (!v.whole[i].empty() && v.args.ptr_[i] == v.whole[i].data()) w.args.ptr_[i] = w.whole[i].data();
    }
    return w;
  }

  // The loops over the terms. Flattened: the node's Term and everything it calls are inlined into the loop, so
  // that loop-invariant work (constants, the dispatch on a node's options) leaves the loop. Two terms per
  // iteration, each in its own copy of the variables: a term is a chain of dependent operations (square roots
  // and divisions among them) and two independent chains side by side keep the processor busy while each waits.
  // Sums are taken in term order, as one term per iteration would.
  template <typename S, int N>
  DDN_AD_FLATTEN double SumTermsSharedY(const TermPlan& plan, TermVars<S>* v, TermSums<N>* out) const {
    // Local sums (registers, not memory that the entries written below might alias).
    double f = 0, g_sum[N] = {}, mag_sum[N] = {}, h_sum[N * (N + 1) / 2] = {};
    const int rows = std::min(out->rows, N), d = std::min(out->d, N);  // (≤ N: the compiler is told so)
    const bool want_h = out->want_h, want_b = out->want_b, want_mag = out->want_mag;
    SparseEntry* b_out = out->b_out;
    auto add = [&](const S& res, int64_t t) DDN_AD_INLINE_LAMBDA {
      f += res.value();
      for (int a = 0; a < rows; ++a) {
        const double g = res.gradient(a);
        g_sum[a] += g;
        if (want_mag) mag_sum[a] += std::abs(g);
      }
      if constexpr (S::kSecond) {
        if (want_h) {
          for (int a = 0; a < rows; ++a)
            for (int b = 0; b <= a; ++b) h_sum[a * (a + 1) / 2 + b] += res.hessian(a, b);
        }
        if (want_b) {
          for (int a = 0; a < rows; ++a) {
            for (int b = rows; b < d; ++b) {
              const double h = res.hessian(a, b);
              if (h != 0) *b_out++ = {out->row[a], out->col0[b] + static_cast<int>(t) * out->col_step[b], h};
            }
          }
        }
      }
    };
    TermVars<S> w = SecondCopy(*v);
    const S* y = v->y.data();
    int64_t t = 0;
    for (; t + 1 < L_.num_terms; t += 2) {
      v->args.term_ = t;
      w.args.term_ = t + 1;
      SetTermValues(plan, t, v);
      SetTermValues(plan, t + 1, &w);
      const S r0 = node_.template Term<S>(v->args, y);
      const S r1 = node_.template Term<S>(w.args, y);
      add(r0, t);
      add(r1, t + 1);
    }
    if (t < L_.num_terms) {
      v->args.term_ = t;
      SetTermValues(plan, t, v);
      add(node_.template Term<S>(v->args, y), t);
    }
    for (int a = 0; a < N; ++a) {
      out->g[a] = g_sum[a];
      out->mag[a] = mag_sum[a];
    }
    for (int k = 0; k < N * (N + 1) / 2; ++k) out->h[k] = h_sum[k];
    out->b_out = b_out;
    return f;
  }

  template <typename S, int N>
  DDN_AD_FLATTEN double SumTermsSlicedY(const TermPlan& plan, TermVars<S>* v, double* grad, double* magnitude,
                                        TermSums<N>* out) const {
    double f = 0;
    const int rows = std::min(out->rows, N), d = std::min(out->d, N);  // (≤ N: the compiler is told so)
    const bool want_h = out->want_h, want_b = out->want_b, want_mag = out->want_mag;
    SparseEntry* h_out = out->h_out;
    SparseEntry* b_out = out->b_out;
    auto add = [&](const S& res, int64_t t, int y0) DDN_AD_INLINE_LAMBDA {
      f += res.value();
      for (int a = 0; a < rows; ++a) {
        const int row = y0 + a;
        const double g = res.gradient(a);
        grad[row] += g;
        if (want_mag) magnitude[row] += std::abs(g);
        if constexpr (S::kSecond) {
          if (want_h) {
            for (int b = 0; b <= a; ++b) {
              const double h = res.hessian(a, b);
              if (h != 0) *h_out++ = {row, y0 + b, h};
            }
          }
          if (want_b) {
            for (int b = rows; b < d; ++b) {
              const double h = res.hessian(a, b);
              if (h != 0) *b_out++ = {row, out->col0[b] + static_cast<int>(t) * out->col_step[b], h};
            }
          }
        }
      }
    };
    // (Both copies read y from v: each term seeds its own slice of it.)
    TermVars<S> w = SecondCopy(*v);
    S* y = v->y.data();
    int64_t t = 0;
    for (; t + 1 < L_.num_terms; t += 2) {
      v->args.term_ = t;
      w.args.term_ = t + 1;
      SetTermValues(plan, t, v);
      SetTermValues(plan, t + 1, &w);
      const int y0 = static_cast<int>(t * L_.y_row), y1 = static_cast<int>((t + 1) * L_.y_row);
      for (int k = 0; k < rows; ++k) {
        y[y0 + k].Seed(k);
        y[y1 + k].Seed(k);
      }
      const S r0 = node_.template Term<S>(v->args, y + y0);
      const S r1 = node_.template Term<S>(w.args, y + y1);
      for (int k = 0; k < rows; ++k) {
        y[y0 + k].Unseed(k);
        y[y1 + k].Unseed(k);
      }
      add(r0, t, y0);
      add(r1, t + 1, y1);
    }
    if (t < L_.num_terms) {
      v->args.term_ = t;
      SetTermValues(plan, t, v);
      const int y0 = static_cast<int>(t * L_.y_row);
      for (int k = 0; k < rows; ++k) y[y0 + k].Seed(k);
      const S r0 = node_.template Term<S>(v->args, y + y0);
      for (int k = 0; k < rows; ++k) y[y0 + k].Unseed(k);
      add(r0, t, y0);
    }
    out->h_out = h_out;
    out->b_out = b_out;
    return f;
  }

  // f and ∇f (first-order Jets of width K).
  template <int K>
  double TermGradient(const double* y, double* grad, double* magnitude) const {
    using JK = ceres::Jet<double, K>;
    TermVars<JK> v;
    Prepare(y, &v, true);
    std::vector<VarSlot> slots;
    double f = 0;
    for (int64_t t = 0; t < L_.num_terms; ++t) {
      TermSlots(t, false, &slots);
      const int d = static_cast<int>(slots.size());
      BindTerm(t, &v, true);
      const JK* yt = v.y.data() + (L_.y_row >= 0 ? t * L_.y_row : 0);
      for (int c0 = 0; c0 < std::max(d, 1); c0 += K) {
        const int cn = std::min(K, d - c0);
        for (int k = 0; k < cn; ++k) Slot(&v, slots[c0 + k])->v[k] = 1.0;
        const JK r = node_.template Term<JK>(v.args, yt);
        for (int k = 0; k < cn; ++k) {
          Slot(&v, slots[c0 + k])->v[k] = 0.0;
          grad[slots[c0 + k].global] += r.v[k];
          if (magnitude) magnitude[slots[c0 + k].global] += std::abs(r.v[k]);
        }
        if (c0 == 0) f += r.a;
      }
    }
    return f;
  }

  // f, ∇f, the y-y second derivatives (lower triangle) and, if B, the y-x ones: nested Jets, KR outer (rows: the
  // term's y variables) by KC inner (columns: its y variables up to the diagonal, then its x variables).
  template <int KR, int KC>
  double TermHessian(const double* y, double* grad, std::vector<SparseEntry>* H, std::vector<SparseEntry>* B,
                     double* magnitude) const {
    using JI = ceres::Jet<double, KC>;
    using JO = ceres::Jet<JI, KR>;
    TermVars<JO> v;
    Prepare(y, &v, true);
    std::vector<VarSlot> slots;
    // When every term touches all of a small y, sum the y-y block densely and emit it once.
    const bool dense_h = L_.y_row < 0 && L_.m <= 64;
    std::vector<double> hsum(dense_h ? static_cast<size_t>(L_.m) * L_.m : 0, 0.0);
    double f = 0;
    for (int64_t t = 0; t < L_.num_terms; ++t) {
      TermSlots(t, B != nullptr, &slots);
      const int d = static_cast<int>(slots.size());
      int rows = 0;
      while (rows < d && slots[rows].input < 0) ++rows;
      BindTerm(t, &v, true);
      const JO* yt = v.y.data() + (L_.y_row >= 0 ? t * L_.y_row : 0);
      if (rows == 0) {
        f += ddn::Value(node_.template Term<JO>(v.args, yt));
        continue;
      }
      bool first = true;
      for (int r0 = 0; r0 < rows; r0 += KR) {
        const int rn = std::min(KR, rows - r0);
        for (int k = 0; k < rn; ++k) Slot(&v, slots[r0 + k])->v[k] = JI(1.0);
        // Columns: the y variables up to this row chunk (lower triangle), then the x variables (for B).
        for (int c0 = 0; c0 < d; c0 += KC) {
          const int cn = std::min(KC, d - c0);
          if (c0 >= r0 + rn && c0 + cn <= rows) continue;  // y columns entirely above the diagonal
          if (c0 >= rows && !B) break;
          for (int k = 0; k < cn; ++k) Slot(&v, slots[c0 + k])->a.v[k] = 1.0;
          const JO res = node_.template Term<JO>(v.args, yt);
          for (int k = 0; k < cn; ++k) Slot(&v, slots[c0 + k])->a.v[k] = 0.0;
          if (first) f += res.a.a;
          first = false;
          if (c0 == 0) {
            for (int a = 0; a < rn; ++a) {
              grad[slots[r0 + a].global] += res.v[a].a;
              if (magnitude) magnitude[slots[r0 + a].global] += std::abs(res.v[a].a);
            }
          }
          for (int a = 0; a < rn; ++a) {
            const int row = slots[r0 + a].global;
            for (int b = 0; b < cn; ++b) {
              const int col = slots[c0 + b].global;
              const double h = res.v[a].v[b];
              if (h == 0) continue;
              if (col < L_.m) {
                if (row < col) continue;
                if (dense_h) {
                  hsum[static_cast<size_t>(row) * L_.m + col] += h;
                } else {
                  H->push_back({row, col, h});
                }
              } else if (B) {
                B->push_back({row, col - L_.m, h});
              }
            }
          }
        }
        for (int k = 0; k < rn; ++k) Slot(&v, slots[r0 + k])->v[k] = JI(0.0);
      }
    }
    if (dense_h) {
      for (int r = 0; r < L_.m; ++r)
        for (int c = 0; c <= r; ++c)
          if (hsum[static_cast<size_t>(r) * L_.m + c] != 0)
            H->push_back({r, c, hsum[static_cast<size_t>(r) * L_.m + c]});
    }
    return f;
  }

  // A whole objective: recorded on the tape, differentiated in reverse.
  double WholeDerivatives(const double* y, double* grad, std::vector<SparseEntry>* H, std::vector<SparseEntry>* B,
                          double* magnitude) const {
    const bool with_x = B != nullptr;
    TermVars<TapeScalar> v;
    objective_tape_.Begin();
    Variables(y, with_x, &v);
    TapeScalar f;
    try {
      f = node_.template Objective<TapeScalar>(v.args, v.y.data());
    } catch (...) {
      objective_tape_.End();
      throw;
    }
    objective_tape_.End();
    const std::vector<TapeScalar> out{f};
    const std::vector<double> one{1.0};
    std::vector<double> g(objective_tape_.num_variables(), 0.0);
    if (H) {
      rows_.clear();
      objective_tape_.Hessian(out, one, &rows_, g.data());
      SplitHessian(rows_, H, B);
    } else {
      objective_tape_.Gradient(out, one, g.data());
    }
    std::copy(g.begin(), g.begin() + L_.m, grad);
    if (magnitude) {
      std::vector<double> a(objective_tape_.num_variables(), 0.0);
      objective_tape_.AbsoluteGradient(out, one, a.data());
      for (int k = 0; k < L_.m; ++k) magnitude[k] += a[k];
    }
    return f.value();
  }

  // Tape variables y (0..m−1) and, if with_x, the differentiable inputs (m + offset); other inputs constant.
  void Variables(const double* y, bool with_x, TermVars<TapeScalar>* v) const {
    Tape& tape = *Tape::Active();
    const size_t ni = p_.inputs.size();
    v->y.resize(L_.m);
    for (int k = 0; k < L_.m; ++k) v->y[k] = tape.Variable(y[k]);
    v->whole.assign(ni, {});
    v->args.ptr_.assign(ni, nullptr);
    v->args.size_.assign(ni, 0);
    v->args.problem_ = &p_;
    v->args.term_ = -1;
    for (size_t i = 0; i < ni; ++i) {
      if (!p_.inputs[i]) continue;
      const int64_t size = p_.InputSize(static_cast<int>(i));
      v->whole[i].resize(size);
      const bool variable = with_x && L_.x_offset[i] >= 0;
      for (int64_t k = 0; k < size; ++k) {
        v->whole[i][k] = variable ? tape.Variable(p_.inputs[i][k]) : TapeScalar(p_.inputs[i][k]);
      }
      v->args.ptr_[i] = v->whole[i].data();
      v->args.size_[i] = size;
    }
  }

  // Records h and g at y (with x as variables if with_x), unless that recording is the current one.
  void RecordConstraints(const double* y, bool with_x) const {
    if (recorded_ && recorded_with_x_ == with_x && std::memcmp(recorded_y_.data(), y, sizeof(double) * L_.m) == 0) {
      return;
    }
    TermVars<TapeScalar> v;
    tape_.Begin();
    constraint_out_.assign(L_.p + L_.q, TapeScalar(0.0));
    try {
      Variables(y, with_x, &v);
      EvalConstraints(v, constraint_out_.data());
    } catch (...) {
      tape_.End();
      recorded_ = false;
      throw;
    }
    tape_.End();
    recorded_ = true;
    recorded_with_x_ = with_x;
    recorded_y_.assign(y, y + L_.m);
  }

  template <typename T>
  void EvalConstraints(const TermVars<T>& v, T* c) const {
    for (int k = 0; k < L_.p + L_.q; ++k) c[k] = Constant<T>(0.0);
    if constexpr (HasEqualities<Derived>::value) {
      if (L_.p > 0) node_.template Equalities<T>(v.args, v.y.data(), c);
    }
    if constexpr (HasInequalities<Derived>::value) {
      if (L_.q > 0) node_.template Inequalities<T>(v.args, v.y.data(), c + L_.p);
    }
  }

  // Tape Hessian entries over (y, x), lower triangle → the y-y block (lower) and the y-x block.
  void SplitHessian(const std::vector<SparseEntry>& lower, std::vector<SparseEntry>* H,
                    std::vector<SparseEntry>* B) const {
    for (const SparseEntry& e : lower) {
      if (e.row < L_.m) {
        H->push_back(e);  // row ≥ col, both y
      } else if (e.col < L_.m) {
        if (B) B->push_back({e.col, e.row - L_.m, e.value});
      }
    }
  }

  const Derived& node_;
  const ProblemData& p_;
  Layout L_;
  mutable Tape tape_, objective_tape_;
  mutable std::vector<TapeScalar> constraint_out_;
  mutable std::vector<SparseEntry> rows_;
  mutable std::vector<double> weights_;
  mutable std::vector<double> recorded_y_;
  mutable bool recorded_ = false, recorded_with_x_ = false;
};

}  // namespace internal

template <class Derived>
class DeclarativeNode : public Node {
 public:
  DeclarativeNode() : Node(Derived::Spec()) { CheckHooks(); }

  void Solve(const ProblemData& p, ProblemStatus* s) const override { GenericSolve(p, s); }
  bool HasGenericPath() const override { return true; }
  // A node whose backward is the generic one differentiates a replay of the engine's Newton (unconstrained) or
  // Newton–KKT (constrained) iterations on request (generic_unrolled.h); one with its own Backward says so itself.
  bool HasIterativeForward() const override {
    return std::is_same_v<decltype(&Derived::Backward), void (Node::*)(const ProblemData&, ProblemStatus*) const>;
  }
  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override {
    const internal::NodeOracle<Derived> oracle(derived(), p);
    double* y = p.outputs[0];
    derived().InitialGuess(p, y);
    SolveGeneric(oracle, generic_options_, y, s);
    if constexpr (internal::HasIsConvex<Derived>::value) {
      if (!derived().IsConvex(p)) {
        s->Set(kNotCertified, "a local minimum of a non-convex problem (the generic solve has no global certificate)");
      }
    }
  }
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override {
    const internal::NodeOracle<Derived> oracle(derived(), p);
    const internal::Layout& L = oracle.layout();
    if (p.gradient_mode.implicit()) {
      // One differentiable input whose gradient is wanted: the solver accumulates into it directly (x is that
      // input); otherwise into the concatenated x, then each wanted part is added to its input's gradient.
      for (size_t i = 0; i < p.inputs.size(); ++i) {
        if (L.x_offset[i] == 0 && i < p.grad_inputs.size() && p.grad_inputs[i] &&
            p.InputSize(static_cast<int>(i)) == L.n) {
          GenericVjp(oracle, generic_options_, p.outputs[0], p.grad_outputs[0], p.grad_inputs[i], s);
          return;
        }
      }
    }
    std::vector<double> dx(L.n, 0.0);
    if (p.gradient_mode.implicit()) {
      GenericVjp(oracle, generic_options_, p.outputs[0], p.grad_outputs[0], dx.data(), s);
    } else {  // unrolled / truncated:K: through a replay of Newton(-KKT) from InitialGuess (generic_unrolled.h)
      std::vector<double> y0(L.m);
      derived().InitialGuess(p, y0.data());
      GenericBackwardInMode(oracle, generic_options_, p.gradient_mode, y0.data(), p.outputs[0], p.grad_outputs[0],
                            dx.data(), s);
    }
    for (size_t i = 0; i < p.inputs.size(); ++i) {
      if (L.x_offset[i] < 0 || !p.grad_inputs[i]) continue;
      const int64_t size = p.InputSize(static_cast<int>(i));
      for (int64_t k = 0; k < size; ++k) p.grad_inputs[i][k] += dx[L.x_offset[i] + k];
    }
  }
  // f at the answer in p.outputs[0].
  double ObjectiveValue(const ProblemData& p) const override {
    const internal::NodeOracle<Derived> oracle(derived(), p);
    return oracle.Value(p.outputs[0]);
  }
  void SetSolverOption(const std::string& key, const std::string& value) override {
    generic_options_.SetOption(key, value);
  }
  std::vector<std::string> SolverOptions() const override { return generic_options_.Describe(); }

  // Defaults the node may hide.
  void InitialGuess(const ProblemData& p, double* y) const { std::fill(y, y + p.OutputSize(0), 0.0); }
  ceres::Manifold* MakeManifold(const ProblemData&) const { return nullptr; }

  const GenericSolverOptions& generic_options() const { return generic_options_; }
  GenericSolverOptions* mutable_generic_options() { return &generic_options_; }

 private:
  const Derived& derived() const { return static_cast<const Derived&>(*this); }

  // The hooks a node defines must make sense together: checked when the node's constructor is compiled.
  static void CheckHooks() {
    using namespace internal;
    static_assert(HasTermAxis<Derived>::value || HasObjective<Derived>::value,
                  "a DeclarativeNode needs `template <typename T> T Objective(const ddn::Args<T>&, const T*) const` "
                  "or `static constexpr const char* kTermAxis` with `template <typename T> T Term(const "
                  "ddn::Args<T>&, const T*) const`");
    static_assert(!HasTermAxis<Derived>::value || HasTerm<Derived>::value,
                  "kTermAxis is declared but `template <typename T> T Term(const ddn::Args<T>&, const T*) const` is "
                  "missing or has the wrong signature");
    static_assert(!(HasTermAxis<Derived>::value && HasObjective<Derived>::value),
                  "define either Objective or kTermAxis + Term, not both");
    static_assert(HasEqualities<Derived>::value == HasNumEqualities<Derived>::value,
                  "Equalities and NumEqualities go together: `int NumEqualities(const ddn::ProblemData&) const` and "
                  "`template <typename T> void Equalities(const ddn::Args<T>&, const T* y, T* h) const` (one is "
                  "missing, misspelt or has the wrong signature)");
    static_assert(HasInequalities<Derived>::value == HasNumInequalities<Derived>::value,
                  "Inequalities and NumInequalities go together: `int NumInequalities(const ddn::ProblemData&) const` "
                  "and `template <typename T> void Inequalities(const ddn::Args<T>&, const T* y, T* g) const` (one "
                  "is missing, misspelt or has the wrong signature)");
    static_assert(
        !DeclaresLinearConstraints<Derived>::value || HasEqualities<Derived>::value || HasInequalities<Derived>::value,
        "kLinearConstraints is declared but the node has no constraints");
  }

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
  void InitialGuess(const ProblemData& p, double* y) const { std::copy(p.inputs[0], p.inputs[0] + p.InputSize(0), y); }
};

}  // namespace ddn
