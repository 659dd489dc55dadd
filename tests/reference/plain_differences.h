// tests/reference/plain_differences.h: the plain central-difference check that PyTorch's gradcheck makes (and
// the Python bridge's test runs on every node): one step h = 1e-6 per input entry, no extrapolation, against the
// node's backward, |fd − g| ≤ 1e-7 + 1e-6 |fd|. It only passes if the forward is a smooth function of its inputs
// to ~1e-13: a solver whose answer is blurred by rounding (κ·u on an ill-conditioned problem) fails it even with
// an exact backward. Used by the tests of nodes whose forward takes care of that (least_squares, pnp).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"

namespace ddn::testing {

// Checks every entry of every differentiable input of every check case of `node`; returns the largest
// |fd − g| / (1e-7 + 1e-6 |fd|) (≤ 1 passes) and reports failures through GoogleTest.
inline double ExpectPlainDifferencesMatch(const Node& node, uint64_t seed = 1) {
  Rng rng(seed);
  double worst = 0;
  for (const CheckCase& c : node.CheckCases(seed)) {
    const TensorMap inputs(c.inputs.begin(), c.inputs.end());
    ForwardResult base = Forward(node, inputs);
    TensorMap v;
    for (const auto& [name, y] : base.outputs) {
      Tensor t(y.shape());
      for (auto& e : t.values()) e = rng.Normal();
      v.emplace(name, t);
    }
    const TensorMap grads = Backward(node, inputs, base.outputs, v, &base.status);
    auto loss = [&](const TensorMap& in) {
      const ForwardResult r = Forward(node, in);
      double l = 0;
      for (const auto& [name, y] : r.outputs)
        for (int64_t i = 0; i < y.size(); ++i) l += v.at(name)[i] * y[i];
      return l;
    };
    for (const auto& [name, g] : grads) {
      for (int64_t i = 0; i < g.size(); ++i) {
        TensorMap plus = inputs, minus = inputs;
        const double h = 1e-6;
        plus.at(name)[i] += h;
        minus.at(name)[i] -= h;
        const double fd = (loss(plus) - loss(minus)) / (2 * h);
        const double ratio = std::abs(fd - g[i]) / (1e-7 + 1e-6 * std::abs(fd));
        worst = std::max(worst, ratio);
        EXPECT_LE(ratio, 1.0) << c.name << ": d/d" << name << "[" << i << "] finite difference " << fd << ", backward "
                              << g[i];
      }
    }
  }
  return worst;
}

}  // namespace ddn::testing
