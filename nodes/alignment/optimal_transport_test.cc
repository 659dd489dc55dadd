// Tests of the optimal_transport node: the reference library's answers (tests/reference/optimal_transport.json),
// marginals at machine precision over a range of γ, stability for large γ·M, gradients against finite
// differences at random and awkward points, and bad input.
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/alignment/sinkhorn.h"
#include "tests/compare.h"

namespace ddn::alignment {
namespace {

using Json = nlohmann::json;

Tensor FromJson(const Json& j) {
  Shape shape;
  const Json* level = &j;
  while (level->is_array()) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->empty()) break;
    level = &(*level)[0];
  }
  std::vector<double> values;
  std::function<void(const Json&)> flatten = [&](const Json& x) {
    if (x.is_array()) {
      for (const auto& e : x) flatten(e);
    } else {
      values.push_back(x.get<double>());
    }
  };
  flatten(j);
  return Tensor(shape, values);
}

double RelativeError(const Tensor& got, const Tensor& want) {
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-300);
}

Tensor Gaussian(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Tensor t(shape);
  for (auto& v : t.values()) v = scale * rng.Normal();
  return t;
}

Tensor Positive(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  Tensor t(shape);
  for (auto& v : t.values()) v = rng.Uniform(0.5, 1.5);
  return t;
}

// max over problems of the marginal error of P against the normalised r, c (uniform when absent).
double MarginalError(const Tensor& P, const Tensor* r, const Tensor* c) {
  const int64_t B = P.dim(0), H = P.dim(1), W = P.dim(2);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    double rs = 0, cs = 0;
    for (int64_t i = 0; i < H; ++i) rs += r ? r->problem(b)[i] : 1.0;
    for (int64_t j = 0; j < W; ++j) cs += c ? c->problem(b)[j] : 1.0;
    std::vector<double> col(W, 0.0);
    for (int64_t i = 0; i < H; ++i) {
      double row = 0;
      for (int64_t j = 0; j < W; ++j) {
        const double p = P.problem(b)[i * W + j];
        EXPECT_GE(p, 0.0);  // entries below the smallest double underflow to 0
        row += p;
        col[j] += p;
      }
      worst = std::max(worst, std::abs(row - (r ? r->problem(b)[i] : 1.0) / rs));
    }
    for (int64_t j = 0; j < W; ++j) worst = std::max(worst, std::abs(col[j] - (c ? c->problem(b)[j] : 1.0) / cs));
  }
  return worst;
}

TEST(OptimalTransport, IsRegisteredWithTheSpecOfTheIssue) {
  const NodeSpec& spec = GetNodeSpec("optimal_transport");
  ASSERT_EQ(spec.inputs.size(), 3u);
  EXPECT_EQ(spec.inputs[0].name, "M");
  EXPECT_EQ(spec.inputs[0].dims, (std::vector<std::string>{"H", "W"}));
  EXPECT_FALSE(spec.inputs[0].optional);
  EXPECT_EQ(spec.inputs[1].name, "r");
  EXPECT_EQ(spec.inputs[1].dims, (std::vector<std::string>{"H"}));
  EXPECT_TRUE(spec.inputs[1].optional && spec.inputs[1].differentiable);
  EXPECT_EQ(spec.inputs[2].name, "c");
  EXPECT_EQ(spec.inputs[2].dims, (std::vector<std::string>{"W"}));
  EXPECT_TRUE(spec.inputs[2].optional && spec.inputs[2].differentiable);
  ASSERT_EQ(spec.outputs.size(), 1u);
  EXPECT_EQ(spec.outputs[0].name, "P");
  ASSERT_EQ(spec.params.size(), 2u);
  EXPECT_EQ(spec.params[0].name, "gamma");
  EXPECT_EQ(spec.params[0].default_value, "1");
  EXPECT_EQ(spec.params[1].name, "unrolled_max_sweeps");  // the unrolled gradient modes only
}

// The reference library run to convergence (marginals within 1e-12): plans and gradients for M, r and c.
TEST(OptimalTransport, AgreesWithTheReferenceLibrary) {
  std::ifstream in(DDN_OT_REFERENCE);
  ASSERT_TRUE(in.good()) << DDN_OT_REFERENCE;
  const Json fixture = Json::parse(in);
  int cases = 0, large_gamma_m = 0;
  for (const Json& c : fixture.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto node = MakeNode("optimal_transport", {{"gamma", FormatDouble(c.at("params").at("gamma").get<double>())}});
    TensorMap inputs;
    for (const auto& [name, value] : c.at("inputs").items()) inputs[name] = FromJson(value);
    ForwardResult fwd = Forward(*node, inputs);
    const Tensor want_p = FromJson(c.at("want").at("outputs").at("P"));
    EXPECT_LE(MaxAbsDiff(fwd.outputs.at("P"), want_p), 2e-12);
    for (const auto& s : fwd.status) EXPECT_LE(s.residual, 1e-14);
    const TensorMap grads =
        Backward(*node, inputs, fwd.outputs, {{"P", FromJson(c.at("grad_outputs").at("P"))}}, &fwd.status);
    for (const auto& [name, value] : c.at("want").at("grad_inputs").items()) {
      SCOPED_TRACE(name);
      EXPECT_LE(RelativeError(grads.at(name), FromJson(value)), 1e-8);
    }
    if (c.value("reference_fails_on_input", false)) ++large_gamma_m;
    ++cases;
  }
  EXPECT_GE(cases, 15);
  EXPECT_GE(large_gamma_m, 3);  // cases the reference's plain-domain iteration cannot solve as given
}

// Marginals near machine precision over sizes, marginals and γ from 0.1 to 10³, including the benchmark's
// (128 × 128, γ = 10).
TEST(OptimalTransport, MarginalsReachMachinePrecision) {
  struct Size {
    int64_t h, w;
  };
  uint64_t seed = 1;
  for (const Size& size : {Size{5, 7}, Size{32, 48}, Size{60, 20}, Size{128, 128}}) {
    for (double gamma : {0.1, 1.0, 10.0, 100.0, 1000.0}) {
      for (bool marginals : {false, true}) {
        SCOPED_TRACE("H=" + std::to_string(size.h) + " W=" + std::to_string(size.w) + " gamma=" + FormatDouble(gamma) +
                     (marginals ? " with r, c" : ""));
        auto node = MakeNode("optimal_transport", {{"gamma", FormatDouble(gamma)}});
        TensorMap inputs{{"M", Gaussian({2, size.h, size.w}, ++seed)}};
        if (marginals) {
          inputs["r"] = Positive({2, size.h}, ++seed);
          inputs["c"] = Positive({2, size.w}, ++seed);
        }
        const ForwardResult fwd = Forward(*node, inputs);
        // Up to γ·range(M) ~ 10³ the rounding floor of the row and column sums (1e-15 here, summed in order by
        // this test). At γ = 1000 (γ·range ~ 8·10³) with uniform marginals the nearly degenerate assignment
        // stops the solver above it, within its acceptable_tolerance (measured with these draws: 7.7e-12 at
        // 32 × 48, 1.3e-12 at 60 × 20, 2.2e-11 at 128 × 128; 3e-16 with random marginals).
        const double bound = gamma <= 100 || marginals ? 1e-15 : SinkhornOptions().acceptable_tolerance;
        EXPECT_LE(MarginalError(fwd.outputs.at("P"), marginals ? &inputs.at("r") : nullptr,
                                marginals ? &inputs.at("c") : nullptr),
                  bound);
      }
    }
  }
}

// Large γ·M: offsets that make exp(−γM) underflow (or overflow) change nothing, P(M + a1ᵀ + 1bᵀ) = P(M).
TEST(OptimalTransport, IsStableForLargeGammaTimesCost) {
  const Tensor m0 = Gaussian({2, 6, 5}, 7);
  for (double gamma : {1.0, 10.0, 100.0}) {
    for (double offset : {1e3, 1e4}) {
      SCOPED_TRACE("gamma=" + FormatDouble(gamma) + " offset=" + FormatDouble(offset));
      Tensor m = m0;
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t i = 0; i < 6; ++i)
          for (int64_t j = 0; j < 5; ++j) m.problem(b)[i * 5 + j] += offset * (0.3 * i - 0.7 * j + 1.1);
      auto node = MakeNode("optimal_transport", {{"gamma", FormatDouble(gamma)}});
      const TensorMap r{{"r", Positive({2, 6}, 3)}};
      const ForwardResult shifted = Forward(*node, {{"M", m}, {"r", r.at("r")}});
      const ForwardResult plain = Forward(*node, {{"M", m0}, {"r", r.at("r")}});
      // exp(−γ(M + offsets)) cannot even be formed here: γ·offset reaches 10⁶.
      EXPECT_LE(MaxAbsDiff(shifted.outputs.at("P"), plain.outputs.at("P")),
                1e-12 * std::max(1.0, gamma * offset * 1e-4));
      EXPECT_LE(MarginalError(shifted.outputs.at("P"), &r.at("r"), nullptr), 1e-15);
    }
  }
}

// The gradient checker of `ddn check` on the node's random and awkward cases, at several γ.
TEST(OptimalTransport, GradientsMatchFiniteDifferences) {
  for (const char* gamma : {"0.3", "1", "20"}) {
    SCOPED_TRACE(std::string("gamma=") + gamma);
    auto node = MakeNode("optimal_transport", {{"gamma", gamma}});
    CheckOptions options;
    options.seed = 5;
    const CheckReport report = CheckGradients(*node, options);
    EXPECT_TRUE(report.passed) << report.ToString();
    EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
    std::set<std::string> seen;
    for (const auto& e : report.entries) seen.insert(e.case_name + "/" + e.input);
    for (const char* want : {"random/M", "marginals/r", "marginals/c", "ties/M", "tiny_marginals/r", "tiny_marginals/c",
                             "row_column_offsets/M"})
      EXPECT_TRUE(seen.count(want)) << want;
  }
}

// Finite differences with absolute steps at large γ·M (exponents in the thousands), every input.
TEST(OptimalTransport, GradientsAtLargeGammaTimesCost) {
  const double gamma = 20.0;
  auto node = MakeNode("optimal_transport", {{"gamma", FormatDouble(gamma)}});
  Tensor m = Gaussian({1, 4, 3}, 11, 0.2);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) m[i * 3 + j] += 50.0 * i + 80.0 * j;  // γ·M up to 9000
  const TensorMap inputs{{"M", m}, {"r", Positive({1, 4}, 12)}, {"c", Positive({1, 3}, 13)}};
  const Tensor v = Gaussian({1, 4, 3}, 14);
  ForwardResult fwd = Forward(*node, inputs);
  const TensorMap grads = Backward(*node, inputs, fwd.outputs, {{"P", v}}, &fwd.status);
  auto phi = [&](const TensorMap& in) {
    const Tensor p = Forward(*node, in).outputs.at("P");
    double s = 0;
    for (int64_t k = 0; k < p.size(); ++k) s += v[k] * p[k];
    return s;
  };
  for (const char* name : {"M", "r", "c"}) {
    SCOPED_TRACE(name);
    const Tensor& x = inputs.at(name);
    Tensor fd(x.shape());
    const double h = std::string(name) == "M" ? 1e-3 / gamma : 1e-4;
    for (int64_t k = 0; k < x.size(); ++k) {
      double values[4];
      int n = 0;
      for (int step : {2, 1, -1, -2}) {
        TensorMap shifted = inputs;
        shifted.at(name)[k] += step * h;
        values[n++] = phi(shifted);
      }
      fd[k] = CentralDifference(values[0], values[1], values[2], values[3], h);
    }
    EXPECT_LE(RelativeError(grads.at(name), fd), 1e-7);
  }
}

// The backward uses only P: it agrees with the generic implicit formula Dy = −H⁻¹B + H⁻¹Aᵀ(AH⁻¹Aᵀ)⁻¹AH⁻¹B
// (design notes §1) assembled densely for one small problem.
TEST(OptimalTransport, BackwardMatchesTheDenseImplicitFunctionTheorem) {
  const int64_t H = 3, W = 4;
  const double gamma = 2.5;
  const Tensor m = Gaussian({1, H, W}, 21);
  std::vector<double> r(H, 1.0 / H), c(W, 1.0 / W), P(H * W);
  SolveTransport(m.data(), r.data(), c.data(), H, W, gamma, SinkhornOptions(), P.data());
  // Variables P (HW), constraints: rows (H) and the first W − 1 columns (the last is implied).
  const int64_t n = H * W, p = H + W - 1;
  Eigen::MatrixXd Hm = Eigen::MatrixXd::Zero(n, n), A = Eigen::MatrixXd::Zero(p, n);
  for (int64_t k = 0; k < n; ++k) Hm(k, k) = 1.0 / (gamma * P[k]);
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j) {
      A(i, i * W + j) = 1;
      if (j < W - 1) A(H + j, i * W + j) = 1;
    }
  // f = ⟨P, M⟩ + (1/γ) Σ P log P + const: D²_PM f = I, so B = I and Dy = −H⁻¹ + H⁻¹Aᵀ(AH⁻¹Aᵀ)⁻¹AH⁻¹.
  const Eigen::MatrixXd Hi = Hm.inverse();
  const Eigen::MatrixXd J = -Hi + Hi * A.transpose() * (A * Hi * A.transpose()).inverse() * A * Hi;
  const Tensor v = Gaussian({1, H, W}, 22);
  std::vector<double> dm(n);
  TransportVjp(P.data(), H, W, gamma, v.data(), dm.data(), nullptr, nullptr, nullptr);
  const Eigen::VectorXd want = J.transpose() * Eigen::Map<const Eigen::VectorXd>(v.data(), n);
  for (int64_t k = 0; k < n; ++k) EXPECT_NEAR(dm[k], want[k], 1e-12 * (1 + want.cwiseAbs().maxCoeff()));
}

TEST(OptimalTransport, SingleRowOrColumnIsFixedByTheMarginals) {
  auto node = MakeNode("optimal_transport", {{"gamma", "3"}});
  const TensorMap inputs{{"M", Gaussian({2, 1, 4}, 31)}, {"c", Positive({2, 4}, 32)}};
  ForwardResult fwd = Forward(*node, inputs);
  for (int64_t b = 0; b < 2; ++b) {
    double cs = 0;
    for (int64_t j = 0; j < 4; ++j) cs += inputs.at("c").problem(b)[j];
    for (int64_t j = 0; j < 4; ++j)
      EXPECT_NEAR(fwd.outputs.at("P").problem(b)[j], inputs.at("c").problem(b)[j] / cs, 1e-16);
  }
  const TensorMap g = Backward(*node, inputs, fwd.outputs, {{"P", Gaussian({2, 1, 4}, 33)}}, &fwd.status);
  for (double v : g.at("M").values()) EXPECT_NEAR(v, 0.0, 1e-15);
}

TEST(OptimalTransport, BadInputIsRejectedInOneLine) {
  auto expect_invalid = [](auto&& call, const std::vector<std::string>& parts) {
    try {
      call();
      ADD_FAILURE() << "no InvalidInput";
    } catch (const InvalidInput& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      for (const auto& part : parts) EXPECT_NE(what.find(part), std::string::npos) << part << " not in " << what;
    }
  };
  expect_invalid([] { MakeNode("optimal_transport", {{"gamma", "0"}}); }, {"gamma"});
  expect_invalid([] { MakeNode("optimal_transport", {{"gamma", "-2"}}); }, {"gamma"});
  expect_invalid([] { MakeNode("optimal_transport", {{"gamma", "nan"}}); }, {"gamma"});
  expect_invalid([] { MakeNode("optimal_transport", {{"gamma", "inf"}}); }, {"gamma"});
  auto node = MakeNode("optimal_transport");
  const Tensor m = Gaussian({2, 3, 4}, 41);
  Tensor nan_m = m;
  nan_m[5] = NAN;
  expect_invalid([&] { Forward(*node, {{"M", nan_m}}); }, {"input 'M'", "non-finite"});
  expect_invalid([&] { Forward(*node, {{"M", Gaussian({2, 3}, 1)}}); }, {"input 'M'", "(B, H, W)"});
  expect_invalid([&] { Forward(*node, {{"M", m}, {"r", Positive({2, 4}, 1)}}); }, {"input 'r'", "H = 4"});
  expect_invalid([&] { Forward(*node, {{"M", m}, {"c", Positive({3, 4}, 1)}}); }, {"input 'c'", "batch size"});
  Tensor zero_r = Positive({2, 3}, 2);
  zero_r[4] = 0.0;
  expect_invalid([&] { Forward(*node, {{"M", m}, {"r", zero_r}}); }, {"batch element 1", "input 'r'", "positive"});
  Tensor negative_c = Positive({2, 4}, 3);
  negative_c[0] = -1.0;
  expect_invalid([&] { Forward(*node, {{"M", m}, {"c", negative_c}}); }, {"input 'c'", "positive", "-1"});
  Tensor inf_c = Positive({2, 4}, 3);
  inf_c[1] = INFINITY;
  expect_invalid([&] { Forward(*node, {{"M", m}, {"c", inf_c}}); }, {"input 'c'", "non-finite"});
}

}  // namespace
}  // namespace ddn::alignment
