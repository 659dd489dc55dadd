// An example of a user-defined shape (user_shape.h): the superellipse (Lamé curve)
//
//   |y₁/a₁|^p + |y₂/a₂|^p = 1,     p ≥ 2,
//
// with the semi-axes a = (a₁, a₂) an optional differentiable input (default (1, 1)) and the exponent p a
// parameter. p = 2 is the ellipse, p = 4 (the default) a "squircle", p → ∞ the box. The node
// `project_superellipse` maps x (B, 2) → y (B, 2); everything but the constraint and the initial guess
// comes from the generic engine. The curve is not convex, so answers carry kNotCertified; the initial
// guess is the nearest of 256 points spread along the curve, which puts Newton in the global minimiser's
// basin except for near-ties between two arcs.
#include <cmath>

#include "ddn/random.h"
#include "nodes/projection/user_shape.h"

namespace ddn {
namespace projection {

struct Superellipse {
  static constexpr const char* kName = "project_superellipse";
  static constexpr const char* kSummary =
      "Euclidean projection onto the superellipse |y1/a1|^p + |y2/a2|^p = 1 (a user-defined shape)";
  static constexpr const char* kDim = "2";
  static constexpr bool kEquality = true;
  static constexpr bool kConvex = false;
  static std::vector<ParamSpec> Params() {
    return {{"p", ParamType::kFloat, "4", "exponent p >= 2 (2: ellipse, 4: squircle, large: box)"}};
  }
  static std::vector<TensorSpec> ExtraInputs() {
    return {{"a", {"2"}, "semi-axes a > 0 (default (1, 1)); differentiable", true, true}};
  }
  explicit Superellipse(const ddn::Params& params) : p_(params.RequirePositive("p")) {
    if (!(p_ >= 2)) {
      throw InvalidInput("node 'project_superellipse': parameter 'p' must be >= 2, got " + FormatDouble(p_));
    }
  }

  template <typename T>
  T Constraint(const Args<T>& in, const T* y) const {
    T c = Constant<T>(-1.0);
    for (int i = 0; i < 2; ++i) c += AbsPow(in.has(1) ? y[i] / in[1][i] : y[i], p_);
    return c;
  }

  void InitialGuess(const ProblemData& p, double* y) const {
    const double* x = p.inputs[0];
    const double a1 = p.inputs[1] ? p.inputs[1][0] : 1.0, a2 = p.inputs[1] ? p.inputs[1][1] : 1.0;
    double best = INFINITY;
    for (int k = 0; k < 256; ++k) {
      const double theta = 2 * M_PI * (k + 0.5) / 256;
      const double c = std::cos(theta), s = std::sin(theta);
      const double u = a1 * std::copysign(std::pow(std::abs(c), 2 / p_), c);
      const double v = a2 * std::copysign(std::pow(std::abs(s), 2 / p_), s);
      const double dist = (u - x[0]) * (u - x[0]) + (v - x[1]) * (v - x[1]);
      if (dist < best) {
        best = dist;
        y[0] = u;
        y[1] = v;
      }
    }
  }

  void Validate(const ProblemData& p) const {
    if (!p.inputs[1]) return;
    for (int i = 0; i < 2; ++i) {
      if (!(p.inputs[1][i] > 0)) {
        throw InvalidInput("node 'project_superellipse': semi-axes 'a' must be > 0, got a[" + std::to_string(i) +
                           "] = " + FormatDouble(p.inputs[1][i]));
      }
    }
  }

  // Points outside, inside (away from the diagonals, where two arcs tie) and with learned semi-axes.
  std::vector<CheckCase> CheckCases(uint64_t seed) const {
    Rng rng(seed);
    CheckCase plain{"random", {}}, axes{"semi_axes", {}};
    Tensor x({4, 2});
    for (int64_t b = 0; b < 4; ++b) {
      const double t = rng.Uniform(0.1, 0.6) + b * M_PI / 2, r = rng.Uniform(0.3, 2.5);
      x.problem(b)[0] = r * std::cos(t);
      x.problem(b)[1] = r * std::sin(t);
    }
    plain.inputs["x"] = x;
    axes.inputs["x"] = x;
    // On the axes (y_i = 0 at the answer: the |t|^p curvature at 0).
    CheckCase on_axes{"on_axes", {}};
    on_axes.inputs["x"] = Tensor({3, 2}, {2.0, 0.0, 0.0, -0.4, 0.0, 1.5});
    axes.inputs["a"] = Tensor({4, 2}, {1.5, 0.7, 0.8, 1.2, 2.0, 1.0, 1.0, 1.0});
    return {plain, axes, on_axes};
  }

  double p_;
};
DDN_REGISTER_SHAPE(Superellipse);

}  // namespace projection
}  // namespace ddn
