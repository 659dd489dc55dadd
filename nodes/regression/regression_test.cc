// Tests of the regression nodes (ridge_regression, logistic_regression, multinomial_logistic_regression,
// robust_regression): the forward against
// independent solves and optimality conditions, gradients against finite differences at random and awkward
// inputs, the specialised paths against the generic engine's, the link to least_squares and bad input.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/regression/regression.h"
#include "tests/compare.h"

namespace ddn {
namespace {

const char* const kNodes[] = {"ridge_regression", "logistic_regression", "multinomial_logistic_regression",
                              "robust_regression"};

Tensor Gaussian(Shape shape, Rng* rng, double scale = 1.0) {
  Tensor t(shape);
  for (auto& v : t.values()) v = scale * rng->Normal();
  return t;
}

Tensor Filled(Shape shape, double value) {
  Tensor t(shape);
  for (auto& v : t.values()) v = value;
  return t;
}

TEST(Regression, NodesAreRegisteredWithTheirHyperparameterAsADifferentiablePositiveInput) {
  for (const char* name : kNodes) {
    const NodeSpec& spec = GetNodeSpec(name);
    ASSERT_EQ(spec.inputs.size(), 3u) << name;
    EXPECT_EQ(spec.inputs[0].name, "X");
    EXPECT_EQ(spec.inputs[1].name, std::string(name) == "multinomial_logistic_regression" ? "Y" : "y");
    EXPECT_TRUE(spec.inputs[2].differentiable) << name;
    EXPECT_TRUE(spec.inputs[2].positive) << name;
    ASSERT_EQ(spec.outputs.size(), 2u);
    EXPECT_EQ(spec.outputs[0].name, "w");
    EXPECT_EQ(spec.outputs[1].name, "bias");
  }
}

// Ridge regression is least_squares with weights 1/N and β = λ: the two nodes agree to rounding, forward and
// backward (least_squares has its own tests against a dense QR solve).
TEST(Regression, RidgeMatchesLeastSquaresWithWeightsOneOverN) {
  Rng rng(1);
  const int64_t B = 3, N = 20, P = 4;
  const Tensor X = Gaussian({B, N, P}, &rng), y = Gaussian({B, N}, &rng);
  const double lambda = 0.37;
  const auto ridge = MakeNode("ridge_regression", {});
  const auto ls = MakeNode("least_squares", {{"beta", FormatDouble(lambda)}});
  ForwardResult a = Forward(*ridge, {{"X", X}, {"y", y}, {"lambda", Filled({B, 1}, lambda)}});
  ForwardResult b = Forward(*ls, {{"A", X}, {"b", y}, {"w", Filled({B, N}, 1.0 / N)}});
  EXPECT_LT(MaxAbsDiff(a.outputs["w"], b.outputs["x"]), 1e-13);
  EXPECT_LT(MaxAbsDiff(a.outputs["bias"], b.outputs["bias"]), 1e-13);
  for (const auto& s : a.status) EXPECT_LT(s.residual, 1e-14);
  const TensorMap v{{"w", Gaussian({B, P}, &rng)}, {"bias", Gaussian({B}, &rng)}};
  const TensorMap da =
      Backward(*ridge, {{"X", X}, {"y", y}, {"lambda", Filled({B, 1}, lambda)}}, a.outputs, v, &a.status);
  const TensorMap db = Backward(*ls, {{"A", X}, {"b", y}, {"w", Filled({B, N}, 1.0 / N)}},
                                {{"x", b.outputs["x"]}, {"bias", b.outputs["bias"]}},
                                {{"x", v.at("w")}, {"bias", v.at("bias")}}, &b.status);
  EXPECT_LT(MaxAbsDiff(da.at("X"), db.at("A")), 1e-12 * std::max(1.0, MaxAbs(db.at("A"))));
  EXPECT_LT(MaxAbsDiff(da.at("y"), db.at("b")), 1e-12 * std::max(1.0, MaxAbs(db.at("b"))));
}

// At the answer the gradient of f vanishes to rounding (the solves reach machine precision).
TEST(Regression, ForwardReachesTheOptimalityConditionsToRounding) {
  Rng rng(2);
  const int64_t N = 40, P = 3;
  const Tensor X = Gaussian({1, N, P}, &rng);
  Tensor y = Gaussian({1, N}, &rng);
  const Eigen::MatrixXd Z = regression::DesignWithIntercept(X.data(), N, P);
  const Eigen::VectorXd yv = Eigen::Map<const Eigen::VectorXd>(y.data(), N);
  // Robust: a few gross outliers.
  {
    Tensor yr = y;
    yr[3] += 20.0;
    yr[17] -= 15.0;
    const auto node = MakeNode("robust_regression", {{"mu", "0.01"}});
    const ForwardResult r = Forward(*node, {{"X", X}, {"y", yr}, {"alpha", Filled({1}, 0.3)}});
    Eigen::VectorXd u(P + 1), g;
    std::copy(r.outputs.at("w").data(), r.outputs.at("w").data() + P, u.data());
    u[P] = r.outputs.at("bias")[0];
    regression::RobustObjective(Z, Eigen::Map<const Eigen::VectorXd>(yr.data(), N), u, 0.3, 0.01, &g, nullptr);
    EXPECT_LT(g.lpNorm<Eigen::Infinity>(), 1e-15);
  }
  // Logistic: 0/1 labels.
  {
    Tensor labels({1, N});
    for (int64_t i = 0; i < N; ++i) labels[i] = yv[i] + 0.5 * Z(i, 0) > 0 ? 1.0 : 0.0;
    const auto node = MakeNode("logistic_regression", {});
    const ForwardResult r = Forward(*node, {{"X", X}, {"y", labels}, {"lambda", Filled({1}, 0.05)}});
    Eigen::VectorXd u(P + 1), g;
    std::copy(r.outputs.at("w").data(), r.outputs.at("w").data() + P, u.data());
    u[P] = r.outputs.at("bias")[0];
    double f = regression::BinaryLogLoss(Z, Eigen::Map<const Eigen::VectorXd>(labels.data(), N), u, &g, nullptr);
    regression::AddWeightPenalty(u, P + 1, 0.05, &f, &g, nullptr);
    EXPECT_LT(g.lpNorm<Eigen::Infinity>(), 1e-15);
  }
  // Multinomial: four classes by the largest of four linear scores, one-hot.
  {
    const int64_t K = 4;
    Tensor Y({1, N, K});
    Eigen::MatrixXd Ym = Eigen::MatrixXd::Zero(N, K);
    for (int64_t i = 0; i < N; ++i) {
      Eigen::Index k = i % K;  // every class occurs
      if (i >= K) {
        const Eigen::RowVector4d scores(Z(i, 0), Z(i, 1), Z(i, 2), -Z(i, 0));
        (scores + 0.3 * Eigen::RowVector4d(rng.Normal(), rng.Normal(), rng.Normal(), rng.Normal())).maxCoeff(&k);
      }
      Y[i * K + k] = 1.0;
      Ym(i, k) = 1.0;
    }
    const auto node = MakeNode("multinomial_logistic_regression", {});
    const ForwardResult r = Forward(*node, {{"X", X}, {"Y", Y}, {"lambda", Filled({1}, 0.05)}});
    EXPECT_EQ(r.outputs.at("bias")[K - 1], 0.0);
    Eigen::VectorXd u(K * (P + 1) - 1), g;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t j = 0; j <= P; ++j) {
        if (k * (P + 1) + j < u.size()) {
          u[k * (P + 1) + j] = j < P ? r.outputs.at("w")[j * K + k] : r.outputs.at("bias")[k];
        }
      }
    }
    regression::LogisticObjective(Z, Ym, 0.05, u, &g, nullptr);
    EXPECT_LT(g.lpNorm<Eigen::Infinity>(), 1e-15);
  }
}

// The multinomial loss written out by hand (log-softmax per row) at a random point, against the shared function,
// and its gradient and Hessian against central differences of it: the functions both the node and `ddn bilevel
// logistic` with more than two classes stand on.
TEST(Regression, MultinomialLossMatchesItsDefinitionAndDerivatives) {
  Rng rng(11);
  const int64_t N = 9, P = 2, K = 3;
  const Tensor X = Gaussian({1, N, P}, &rng);
  const Eigen::MatrixXd Z = regression::DesignWithIntercept(X.data(), N, P);
  Eigen::MatrixXd Y(N, K);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t k = 0; k < K; ++k) Y(i, k) = rng.Uniform(0.0, 1.0);
    Y.row(i) /= Y.row(i).sum();
  }
  Eigen::VectorXd u(K * (P + 1) - 1);
  for (auto& v : u) v = rng.Normal();
  const double lambda = 0.2;
  auto by_hand = [&](const Eigen::VectorXd& x) {
    double f = 0;
    for (int64_t i = 0; i < N; ++i) {
      double s[K], sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        s[k] = k + 1 < K ? x[k * (P + 1) + P] : 0.0;
        for (int64_t j = 0; j < P; ++j) s[k] += Z(i, j) * x[k * (P + 1) + j];
        sum += std::exp(s[k]);
      }
      for (int64_t k = 0; k < K; ++k) f -= Y(i, k) * (s[k] - std::log(sum));
    }
    f /= N;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t j = 0; j < P; ++j) f += 0.5 * lambda * x[k * (P + 1) + j] * x[k * (P + 1) + j];
    }
    return f;
  };
  Eigen::VectorXd g;
  Eigen::MatrixXd H;
  const double f = regression::LogisticObjective(Z, Y, lambda, u, &g, &H);
  EXPECT_NEAR(f, by_hand(u), 1e-14);
  const double h = 1e-5;
  for (Eigen::Index a = 0; a < u.size(); ++a) {
    Eigen::VectorXd up = u, um = u;
    up[a] += h;
    um[a] -= h;
    EXPECT_NEAR(g[a], (by_hand(up) - by_hand(um)) / (2 * h), 1e-9) << a;
    Eigen::VectorXd gp, gm;
    regression::LogisticObjective(Z, Y, lambda, up, &gp, nullptr);
    regression::LogisticObjective(Z, Y, lambda, um, &gm, nullptr);
    const Eigen::VectorXd column = (gp - gm) / (2 * h);
    EXPECT_LT((H.col(a) - column).lpNorm<Eigen::Infinity>(), 1e-8) << a;
  }
}

TEST(Regression, GradientsMatchFiniteDifferences) {
  for (const char* name : kNodes) {
    for (uint64_t seed : {1, 2}) {
      const auto node = MakeNode(name, {});
      CheckOptions options;
      options.seed = seed;
      const CheckReport report = CheckGradients(*node, options);
      EXPECT_TRUE(report.passed) << name << "\n" << report.ToString();
      EXPECT_LE(report.max_rel_error, 1e-6) << name << "\n" << report.ToString();
      EXPECT_GE(report.entries.size(), 3u) << name;
    }
  }
  const auto with_mu = MakeNode("robust_regression", {{"mu", "0.2"}});
  const CheckReport report = CheckGradients(*with_mu);
  EXPECT_TRUE(report.passed) << report.ToString();
}

// The specialised forward and closed-form backward against the generic engine on the declarative form.
TEST(Regression, SpecialisedPathsMatchTheGenericEngine) {
  RunOptions generic;
  generic.generic = true;
  for (const char* name : kNodes) {
    const auto node = MakeNode(name, {});
    for (const CheckCase& c : node->CheckCases(5)) {
      ForwardResult a = Forward(*node, c.inputs);
      ForwardResult g = Forward(*node, c.inputs, generic);
      const double scale = std::max(1.0, MaxAbs(a.outputs["w"]));
      EXPECT_LT(MaxAbsDiff(a.outputs["w"], g.outputs["w"]), 1e-9 * scale) << name << " " << c.name;
      EXPECT_LT(MaxAbsDiff(a.outputs["bias"], g.outputs["bias"]), 1e-9 * scale) << name << " " << c.name;
      Rng rng(7);
      const TensorMap v{{"w", Gaussian(a.outputs["w"].shape(), &rng)},
                        {"bias", Gaussian(a.outputs["bias"].shape(), &rng)}};
      const TensorMap da = Backward(*node, c.inputs, a.outputs, v, &a.status);
      const TensorMap dg = Backward(*node, c.inputs, a.outputs, v, &g.status, generic);
      for (const auto& [input, t] : da) {
        EXPECT_LT(MaxAbsDiff(t, dg.at(input)), 1e-8 * std::max(1.0, MaxAbs(t)))
            << name << " " << c.name << " " << input;
      }
    }
  }
}

TEST(Regression, BadInputIsRefusedWithOneLine) {
  Rng rng(3);
  const Tensor X = Gaussian({1, 6, 2}, &rng), y = Gaussian({1, 6}, &rng);
  auto refused = [&](const char* name, const TensorMap& in, const std::string& words) {
    const auto node = MakeNode(name, {});
    try {
      Forward(*node, in);
      ADD_FAILURE() << name << ": no error, expected '" << words << "'";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused("ridge_regression", {{"X", X}, {"y", y}, {"lambda", Filled({1, 1}, -1.0)}}, "lambda must be > 0");
  refused("ridge_regression", {{"X", X}, {"y", y}, {"lambda", Filled({1, 3}, 1.0)}}, "lambda has 3 values");
  refused("logistic_regression", {{"X", X}, {"y", Filled({1, 6}, 1.0)}, {"lambda", Filled({1}, 1.0)}},
          "the mean label is 1, not inside (0, 1)");
  refused("robust_regression", {{"X", X}, {"y", y}, {"alpha", Filled({1}, 0.0)}}, "alpha must be > 0");
  Tensor Y({1, 6, 3});
  for (int64_t i = 0; i < 6; ++i) Y[i * 3 + i % 2] = 1.0;  // class 2 never occurs
  refused("multinomial_logistic_regression", {{"X", X}, {"Y", Y}, {"lambda", Filled({1}, 1.0)}},
          "class 2 has mean probability 0, not inside (0, 1)");
  refused("multinomial_logistic_regression", {{"X", X}, {"Y", Filled({1, 6, 1}, 1.0)}, {"lambda", Filled({1}, 1.0)}},
          "need K ≥ 2");
  refused("multinomial_logistic_regression", {{"X", X}, {"Y", Y}, {"lambda", Filled({1}, -2.0)}}, "lambda must be > 0");
  EXPECT_THROW(MakeNode("robust_regression", {{"mu", "-1"}}), InvalidInput);
}

}  // namespace
}  // namespace ddn
