// ddn/graph/test_node.h: a tiny declarative node for the graph's tests (not part of the library).
//
// y(x) = argmin_y Σ_i φ(y − x_i), φ(z) = α²(√(1 + (z/α)²) − 1) (pseudo-Huber), x (B, N) → y (B):
// robust pooling in miniature, solved by safeguarded Newton and differentiated in closed form by the
// implicit function theorem, dy/dx_i = φ''(y − x_i) / Σ_j φ''(y − x_j) (DDN paper, §4.1 with H = Σ φ'',
// B_i = −φ''(y − x_i)). It lets the graph be tested before the real `robust_pool` node exists.
#pragma once

#include <algorithm>
#include <cmath>

#include "ddn/node.h"

namespace ddn::graph::testing {

class TestPseudoHuberPool : public Node {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "graph_test_pseudo_huber_pool";
    s.summary = "test only: pseudo-Huber mean of x";
    s.params = {{"alpha", "float", "1", "pseudo-Huber scale", {}}};
    s.inputs = {{"x", {"N"}, "points", true, false}};
    s.outputs = {{"y", {}, "robust mean", true, false}};
    return s;
  }
  explicit TestPseudoHuberPool(const Params& p) : Node(Spec()), alpha_(p.RequirePositive("alpha")) {}

  void Solve(const ProblemData& p, ProblemStatus* status) const override {
    const double* x = p.inputs[0];
    const int64_t n = p.InputSize(0);
    double lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
    double y = 0;
    for (int64_t i = 0; i < n; ++i) y += x[i] / n;
    for (int it = 0; it < 200; ++it) {
      double g = 0, h = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double z = (y - x[i]) / alpha_, r = std::sqrt(1 + z * z);
        g += alpha_ * z / r;
        h += 1 / (r * r * r);
      }
      (g > 0 ? hi : lo) = y;
      double next = y - g / h;
      if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
      const double step = std::abs(next - y);
      y = next;
      status->iterations = it + 1;
      if (step <= 1e-15 * (1 + std::abs(y))) break;
    }
    p.outputs[0][0] = y;
  }

  void Backward(const ProblemData& p, ProblemStatus*) const override {
    const double* x = p.inputs[0];
    const int64_t n = p.InputSize(0);
    const double y = p.outputs[0][0], v = p.grad_outputs[0][0];
    double h = 0;
    for (int64_t i = 0; i < n; ++i) h += Curvature(y - x[i]);
    for (int64_t i = 0; i < n; ++i) p.grad_inputs[0][i] += v * Curvature(y - x[i]) / h;
  }

 private:
  double Curvature(double d) const {
    const double z = d / alpha_, r = std::sqrt(1 + z * z);
    return 1 / (r * r * r);
  }
  double alpha_;
};

}  // namespace ddn::graph::testing
