// nodes/projection/user_shape.h: projection onto a shape you define by one scalar constraint.
//
// Write a constraint c(y; θ) once, as a template over the scalar type (ddn/scalar.h), and get the node
//
//   y = argmin_y ½‖y − x‖²   subject to   c(y; θ) = 0   (a curve or surface, kEquality = true)
//                                    or   c(y; θ) ≤ 0   (a region, kEquality = false)
//
// with the generic forward (Ceres augmented Lagrangian + Newton/KKT polish, ddn/declarative.h) and the
// generic implicit backward (docs/design.md §1) for free: gradients with respect to x and to any extra input
// θ you declare (semi-axes, exponents, centres: anything the constraint reads from `in`).
//
// A shape is a small class:
//
//   struct Superellipse {
//     static constexpr const char* kName = "project_superellipse";      // node name
//     static constexpr const char* kSummary = "projection onto |y1|^p + |y2|^p = 1";
//     static constexpr const char* kDim = "2";       // y's size: a number, or a symbol such as "D"
//     static constexpr bool kEquality = true;        // c = 0 (true) or c ≤ 0 (false)
//     static constexpr bool kConvex = false;         // false: answers are flagged kNotCertified
//     static std::vector<ddn::ParamSpec> Params() { return {{"p", ParamType::kFloat, "4", "exponent p > 1"}}; }
//     static std::vector<ddn::TensorSpec> ExtraInputs() { return {}; }   // θ inputs after x (optional)
//     explicit Superellipse(const ddn::Params& params);                  // read and check parameters
//     template <typename T>
//     T Constraint(const ddn::Args<T>& in, const T* y) const;            // in[0] = x, in[1..] = θ
//     // Optional: a start for the solve (default: x). For non-convex shapes a good start decides which
//     // local minimiser is found.
//     void InitialGuess(const ddn::ProblemData& p, double* y) const;
//     // Optional: extra input checks (throw ddn::InvalidInput) and gradient-check inputs.
//     void Validate(const ddn::ProblemData& p) const;
//     std::vector<ddn::CheckCase> CheckCases(uint64_t seed) const;
//   };
//   DDN_REGISTER_SHAPE(Superellipse);   // in a .cc file: registers node "project_superellipse"
//
// The constraint must be written in the scalar-generic dialect (Constant<T>(c), unqualified math calls,
// no bare doubles mixed with T; ddn::AbsPow(t, p) of ddn/scalar.h for |t|^p) and must be twice
// differentiable near the answer; its gradient ∇_y c must not vanish there (else the KKT matrix is singular and
// the gradient is the minimum-norm one, flagged kNonRegular).
//
// This header includes ddn/declarative.h (and so Ceres): include it from .cc files only.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "ddn/declarative.h"

namespace ddn {
namespace projection {

namespace internal {
template <class S, class = void>
struct HasShapeInitialGuess : std::false_type {};
template <class S>
struct HasShapeInitialGuess<S, std::void_t<decltype(std::declval<const S&>().InitialGuess(
                                   std::declval<const ProblemData&>(), std::declval<double*>()))>> : std::true_type {};
template <class S, class = void>
struct HasShapeValidate : std::false_type {};
template <class S>
struct HasShapeValidate<S, std::void_t<decltype(std::declval<const S&>().Validate(std::declval<const ProblemData&>()))>>
    : std::true_type {};
template <class S, class = void>
struct HasShapeCheckCases : std::false_type {};
template <class S>
struct HasShapeCheckCases<S, std::void_t<decltype(std::declval<const S&>().CheckCases(uint64_t{}))>> : std::true_type {
};
}  // namespace internal

template <class Shape>
class ShapeProjectionNode : public DeclarativeNode<ShapeProjectionNode<Shape>> {
 public:
  static NodeSpec Spec() {
    NodeSpec spec;
    spec.name = Shape::kName;
    spec.summary = Shape::kSummary;
    spec.params = Shape::Params();
    spec.inputs = {{"x", {Shape::kDim}, "the points to project"}};
    for (const TensorSpec& extra : Shape::ExtraInputs()) spec.inputs.push_back(extra);
    spec.outputs = {{"y", {Shape::kDim}, "the nearest point of the shape (a local minimiser if non-convex)"}};
    return spec;
  }
  explicit ShapeProjectionNode(const Params& p) : shape_(p) {}
  const Shape& shape() const { return shape_; }

  void Validate(const ProblemData& p) const override {
    if constexpr (internal::HasShapeValidate<Shape>::value) shape_.Validate(p);
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    if constexpr (internal::HasShapeCheckCases<Shape>::value) {
      return shape_.CheckCases(seed);
    } else {
      return Node::CheckCases(seed);
    }
  }
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    this->GenericSolve(p, s);
    if (!Shape::kConvex) s->Set(kNotCertified, "non-convex shape: a local minimiser from the initial guess");
  }
  // The generic path (`--generic`) says so too.
  bool IsConvex(const ProblemData&) const { return Shape::kConvex; }

  template <typename T>
  T Objective(const Args<T>& in, const T* y) const {
    T f = Constant<T>(0.0);
    for (int64_t i = 0; i < in.size(0); ++i) {
      const T r = y[i] - in[0][i];
      f += r * r;
    }
    return Constant<T>(0.5) * f;
  }
  int NumEqualities(const ProblemData&) const { return Shape::kEquality ? 1 : 0; }
  int NumInequalities(const ProblemData&) const { return Shape::kEquality ? 0 : 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    h[0] = shape_.Constraint(in, y);
  }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* y, T* g) const {
    g[0] = shape_.Constraint(in, y);
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    if constexpr (internal::HasShapeInitialGuess<Shape>::value) {
      shape_.InitialGuess(p, y);
    } else {
      std::copy(p.inputs[0], p.inputs[0] + p.InputSize(0), y);
    }
  }

 private:
  Shape shape_;
};

}  // namespace projection
}  // namespace ddn

// Registers the projection node of a shape class (see above). Use at namespace scope in a .cc file.
#define DDN_REGISTER_SHAPE(Shape)                                              \
  using Shape##ProjectionNode = ::ddn::projection::ShapeProjectionNode<Shape>; \
  DDN_REGISTER_NODE(Shape##ProjectionNode)
