// Tests of the graph_match node: gradients against finite differences (concave and non-concave regimes), brute
// force over permutations at large γ, the reduction to optimal transport at λ = 0, the status flags, bad input,
// and both alignment nodes inside a ddn::graph::Graph through NodeLayer with several inputs.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/alignment/graph_match.h"

namespace ddn::alignment {
namespace {

Tensor Gaussian(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Tensor t(shape);
  for (auto& v : t.values()) v = scale * rng.Normal();
  return t;
}

// Edge weights exp(−‖p_i − p_k‖²) of n random points (zero diagonal), per problem.
Tensor PointGraph(int64_t batch, int64_t n, uint64_t seed) {
  Rng rng(seed);
  Tensor e({batch, n, n});
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> x(n), y(n);
    for (int64_t i = 0; i < n; ++i) x[i] = rng.Normal(), y[i] = rng.Normal();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < n; ++k) {
        const double d2 = (x[i] - x[k]) * (x[i] - x[k]) + (y[i] - y[k]) * (y[i] - y[k]);
        e.problem(b)[i * n + k] = i == k ? 0.0 : std::exp(-d2);
      }
  }
  return e;
}

TEST(GraphMatch, IsRegisteredWithTheSpecOfTheIssue) {
  const NodeSpec& spec = GetNodeSpec("graph_match");
  ASSERT_EQ(spec.inputs.size(), 3u);
  EXPECT_EQ(spec.inputs[0].name, "node_affinity");
  EXPECT_EQ(spec.inputs[0].dims, (std::vector<std::string>{"N", "Np"}));
  EXPECT_EQ(spec.inputs[1].name, "edges_a");
  EXPECT_EQ(spec.inputs[1].dims, (std::vector<std::string>{"N", "N"}));
  EXPECT_EQ(spec.inputs[2].name, "edges_b");
  EXPECT_EQ(spec.inputs[2].dims, (std::vector<std::string>{"Np", "Np"}));
  for (const auto& in : spec.inputs) EXPECT_TRUE(in.differentiable && !in.optional) << in.name;
  ASSERT_EQ(spec.outputs.size(), 1u);
  EXPECT_EQ(spec.outputs[0].name, "X");
  ASSERT_EQ(spec.params.size(), 2u);
  EXPECT_EQ(spec.params[0].name, "lambda");
  EXPECT_EQ(spec.params[1].name, "gamma");
}

TEST(GraphMatch, GradientsMatchFiniteDifferences) {
  for (const auto& [lambda, gamma] :
       std::vector<std::pair<const char*, const char*>>{{"1", "1"}, {"0.5", "10"}, {"3", "4"}, {"0", "2"}}) {
    SCOPED_TRACE(std::string("lambda=") + lambda + " gamma=" + gamma);
    auto node = MakeNode("graph_match", {{"lambda", lambda}, {"gamma", gamma}});
    CheckOptions options;
    options.seed = 3;
    const CheckReport report = CheckGradients(*node, options);
    EXPECT_TRUE(report.passed) << report.ToString();
    EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
    EXPECT_GE(report.entries.size(), 12u);
  }
}

// Beyond λγ‖G‖₂ = 1 the relaxation may be non-concave: the answer is a local maximum, flagged, and still a
// differentiable fixed point.
TEST(GraphMatch, NonConcaveRegimeIsFlaggedAndDifferentiable) {
  auto node = MakeNode("graph_match", {{"lambda", "1"}, {"gamma", "30"}});
  CheckCase c{"non_concave",
              {{"node_affinity", Gaussian({2, 4, 4}, 5, 0.3)},
               {"edges_a", PointGraph(2, 4, 6)},
               {"edges_b", PointGraph(2, 4, 7)}}};
  for (int64_t b = 0; b < 2; ++b) {
    const double norm = QuadraticTermNorm(c.inputs["edges_a"].problem(b), c.inputs["edges_b"].problem(b), 4, 4);
    ASSERT_GT(30.0 * norm, 1.0);
  }
  const ForwardResult fwd = Forward(*node, c.inputs);
  for (int64_t b = 0; b < 2; ++b) {
    const ProblemStatus& s = fwd.status[b];
    EXPECT_TRUE(s.flags & kNotCertified) << s.note;
    EXPECT_FALSE(s.flags & kNotConverged) << s.note;
    // The solver's stopping rule (graph_match.h): ‖X − Π(S)‖∞ ≤ tolerance · max(1, γ‖S‖max) at the score
    // S = K + λ (A X B + Aᵀ X Bᵀ), a change δ of S moving X by up to γ·δ.
    const double* K = c.inputs["node_affinity"].problem(b);
    const double* A = c.inputs["edges_a"].problem(b);
    const double* B = c.inputs["edges_b"].problem(b);
    const double* X = fwd.outputs.at("X").problem(b);
    double score = 0;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        double g = 0;
        for (int k = 0; k < 4; ++k)
          for (int l = 0; l < 4; ++l)
            g += A[i * 4 + k] * X[k * 4 + l] * B[l * 4 + j] + A[k * 4 + i] * X[k * 4 + l] * B[j * 4 + l];
        score = std::max(score, std::abs(K[i * 4 + j] + 1.0 * g));
      }
    EXPECT_LE(s.residual, alignment::GraphMatchOptions().tolerance * std::max(1.0, 30.0 * score));
  }
  CheckReport report;
  CheckGradients(*node, c, CheckOptions(), &report);
  EXPECT_TRUE(report.passed) << report.ToString();
}

// The objective of the quadratic assignment at a permutation π: Σ_i K_iπ(i) + λ Σ_ik A_ik B_π(i)π(k).
double AssignmentScore(const double* K, const double* A, const double* B, int64_t n, const std::vector<int>& pi,
                       double lambda) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += K[i * n + pi[i]];
    for (int64_t k = 0; k < n; ++k) s += lambda * A[i * n + k] * B[pi[i] * n + pi[k]];
  }
  return s;
}

// At large γ the relaxation concentrates on a permutation: the best one, found by brute force over all n!.
TEST(GraphMatch, ConcentratesOnTheBestPermutationAtLargeGamma) {
  const double lambda = 1.0, gamma = 300.0;
  auto node = MakeNode("graph_match", {{"lambda", FormatDouble(lambda)}, {"gamma", FormatDouble(gamma)}});
  int instances = 0, quadratic_term_decides = 0, concentrated = 0;
  for (int64_t n : {3, 4, 5}) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      SCOPED_TRACE("n=" + std::to_string(n) + " seed=" + std::to_string(seed));
      // B is A with its nodes permuted plus noise; affinities are weak noise, so the edges decide.
      Rng rng(seed * 101 + n);
      std::vector<int> truth(n);
      std::iota(truth.begin(), truth.end(), 0);
      rng.Shuffle(&truth);
      Tensor a = PointGraph(1, n, seed * 7 + n), b({1, n, n}), k = Gaussian({1, n, n}, seed * 13 + n, 0.3);
      const Tensor noise = Gaussian({1, n, n}, seed * 17 + n, 0.05);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) b[truth[i] * n + truth[j]] = a[i * n + j] + (i == j ? 0.0 : noise[i * n + j]);
      const ForwardResult fwd = Forward(*node, {{"node_affinity", k}, {"edges_a", a}, {"edges_b", b}});
      const Tensor& x = fwd.outputs.at("X");
      EXPECT_FALSE(fwd.status[0].flags & kNotConverged) << fwd.status[0].note;

      std::vector<int> pi(n), best, best_affinity_only;
      std::iota(pi.begin(), pi.end(), 0);
      double best_score = -INFINITY, best_affinity = -INFINITY;
      do {
        const double s = AssignmentScore(k.data(), a.data(), b.data(), n, pi, lambda);
        if (s > best_score) best_score = s, best = pi;
        const double s0 = AssignmentScore(k.data(), a.data(), b.data(), n, pi, 0.0);
        if (s0 > best_affinity) best_affinity = s0, best_affinity_only = pi;
      } while (std::next_permutation(pi.begin(), pi.end()));
      if (best != best_affinity_only) ++quadratic_term_decides;
      // The row-wise argmax of X is the best permutation; X is close to it when the runner-up is worse by
      // several 1/γ (otherwise the entropy mixes the two, as it should).
      std::vector<double> scores;
      std::iota(pi.begin(), pi.end(), 0);
      do {
        scores.push_back(AssignmentScore(k.data(), a.data(), b.data(), n, pi, lambda));
      } while (std::next_permutation(pi.begin(), pi.end()));
      std::sort(scores.rbegin(), scores.rend());
      double deviation = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double* row = x.data() + i * n;
        EXPECT_EQ(std::max_element(row, row + n) - row, best[i]) << "row " << i;
        for (int64_t j = 0; j < n; ++j) deviation = std::max(deviation, std::abs(row[j] - (best[i] == j ? 1.0 : 0.0)));
      }
      if (gamma * (scores[0] - scores[1]) >= 8) {
        EXPECT_LE(deviation, 0.05);
        ++concentrated;
      }
      ++instances;
    }
  }
  EXPECT_EQ(instances, 18);
  EXPECT_GE(concentrated, 12);
  EXPECT_GE(quadratic_term_decides, 6);  // the edges, not the affinities alone, pick the answer in many of them
}

// λ = 0 is optimal transport with cost −K and marginals of total mass min(N, N'): X = m·P, and the gradients agree.
TEST(GraphMatch, WithoutEdgesItIsOptimalTransport) {
  const int64_t n = 3, np = 5;
  const double gamma = 4.0, mass = 3.0;
  auto match = MakeNode("graph_match", {{"lambda", "0"}, {"gamma", FormatDouble(gamma)}});
  auto transport = MakeNode("optimal_transport", {{"gamma", FormatDouble(gamma)}});
  const Tensor k = Gaussian({2, n, np}, 51);
  Tensor m = k;
  for (auto& v : m.values()) v = -v;
  const TensorMap match_in{{"node_affinity", k}, {"edges_a", PointGraph(2, n, 52)}, {"edges_b", PointGraph(2, np, 53)}};
  ForwardResult x = Forward(*match, match_in);
  ForwardResult p = Forward(*transport, {{"M", m}});
  for (int64_t q = 0; q < x.outputs.at("X").size(); ++q)
    EXPECT_NEAR(x.outputs.at("X")[q], mass * p.outputs.at("P")[q], 1e-14);
  const Tensor v = Gaussian({2, n, np}, 54);
  Tensor mv = v;
  for (auto& e : mv.values()) e *= mass;
  const TensorMap gx = Backward(*match, match_in, x.outputs, {{"X", v}}, &x.status);
  const TensorMap gp = Backward(*transport, {{"M", m}}, p.outputs, {{"P", mv}}, &p.status);
  for (int64_t q = 0; q < v.size(); ++q) EXPECT_NEAR(gx.at("node_affinity")[q], -gp.at("M")[q], 1e-12);
  for (double e : gx.at("edges_a").values()) EXPECT_EQ(e, 0.0);
}

TEST(GraphMatch, SolvesToTheFixedPointAtMachinePrecision) {
  for (const char* gamma : {"0.5", "5", "20"}) {
    auto node = MakeNode("graph_match", {{"lambda", "0.3"}, {"gamma", gamma}});
    const TensorMap in{{"node_affinity", Gaussian({3, 6, 8}, 61)},
                       {"edges_a", PointGraph(3, 6, 62)},
                       {"edges_b", PointGraph(3, 8, 63)}};
    const ForwardResult fwd = Forward(*node, in);
    for (int64_t b = 0; b < 3; ++b) {
      EXPECT_FALSE(fwd.status[b].flags & kNotConverged) << fwd.status[b].note;
      EXPECT_LE(fwd.status[b].residual, 1e-12) << gamma;
      // Feasible: rows sum to 1 (N ≤ N'), columns to N/N'.
      const double* x = fwd.outputs.at("X").problem(b);
      for (int64_t i = 0; i < 6; ++i) {
        double s = 0;
        for (int64_t j = 0; j < 8; ++j) s += x[i * 8 + j];
        EXPECT_NEAR(s, 1.0, 1e-14);
      }
      for (int64_t j = 0; j < 8; ++j) {
        double s = 0;
        for (int64_t i = 0; i < 6; ++i) s += x[i * 8 + j];
        EXPECT_NEAR(s, 0.75, 1e-14);
      }
    }
  }
}

TEST(GraphMatch, NonConvergenceIsReported) {
  const int64_t n = 5;
  const Tensor k = Gaussian({1, n, n}, 71), a = PointGraph(1, n, 72), b = PointGraph(1, n, 73);
  GraphMatchOptions options;
  options.max_fixed_point_iterations = 1;
  options.max_newton_steps = 0;
  std::vector<double> x(n * n);
  const GraphMatchReport report = SolveGraphMatch(k.data(), a.data(), b.data(), n, n, 2.0, 2.0, options, x.data());
  EXPECT_FALSE(report.converged);
  EXPECT_GT(report.residual, 1e-10);
  for (double v : x) EXPECT_TRUE(std::isfinite(v) && v > 0);
  options = GraphMatchOptions();
  const GraphMatchReport full = SolveGraphMatch(k.data(), a.data(), b.data(), n, n, 2.0, 2.0, options, x.data());
  EXPECT_TRUE(full.converged);
}

TEST(GraphMatch, BadInputIsRejectedInOneLine) {
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
  expect_invalid([] { MakeNode("graph_match", {{"lambda", "-1"}}); }, {"lambda"});
  expect_invalid([] { MakeNode("graph_match", {{"gamma", "0"}}); }, {"gamma"});
  expect_invalid([] { MakeNode("graph_match", {{"gamma", "-3"}}); }, {"gamma"});
  expect_invalid([] { MakeNode("graph_match", {{"lambda", "inf"}}); }, {"lambda"});
  auto node = MakeNode("graph_match");
  const Tensor k = Gaussian({2, 3, 4}, 1), a = PointGraph(2, 3, 2), b = PointGraph(2, 4, 3);
  Tensor bad_k = k;
  bad_k[3] = NAN;
  expect_invalid(
      [&] {
        Forward(*node, {{"node_affinity", bad_k}, {"edges_a", a}, {"edges_b", b}});
      },
      {"input 'node_affinity'", "non-finite"});
  expect_invalid([&] { Forward(*node, {{"node_affinity", k}, {"edges_a", b}, {"edges_b", b}}); }, {"input 'edges_a'"});
  expect_invalid([&] { Forward(*node, {{"node_affinity", k}, {"edges_a", a}}); }, {"missing input 'edges_b'"});
  expect_invalid(
      [&] {
        Forward(*node, {{"node_affinity", Gaussian({2, 3}, 1)}, {"edges_a", a}, {"edges_b", b}});
      },
      {"input 'node_affinity'", "(B, N, Np)"});
}

// NodeLayer with several inputs: optimal_transport fed M, r, c and graph_match fed K, A, B by the graph, the
// gradient of a loss with respect to every one of them against finite differences of the whole graph.
TEST(AlignmentInGraphs, NodeLayerTakesSeveralInputs) {
  using namespace ddn::graph;
  {
    Graph g;
    auto m = g.Input("M"), r = g.Input("r"), c = g.Input("c"), target = g.Input("target");
    NodeLayerOptions options;
    options.inputs = {"M", "r", "c"};
    auto p = g.Add(
        "ot",
        std::make_unique<NodeLayer>("optimal_transport", std::map<std::string, std::string>{{"gamma", "2"}}, options),
        {m, r, c});
    auto loss = g.Add("loss", std::make_unique<MeanSquaredError>(), {p, target});
    Tensor rr({2, 3}, {1.0, 2.0, 0.5, 0.7, 0.8, 1.9}), cc({2, 4}, {1.0, 1.5, 0.5, 2.0, 0.3, 0.9, 1.2, 1.0});
    const TensorMap feeds{
        {"M", Gaussian({2, 3, 4}, 81)}, {"r", rr}, {"c", cc}, {"target", Gaussian({2, 3, 4}, 82, 0.1)}};
    const GraphCheckReport report = CheckGraphGradients(g, feeds, loss, {"M", "r", "c"});
    EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
    EXPECT_EQ(report.entries.size(), 3u);
  }
  {
    Graph g;
    auto k = g.Input("K"), a = g.Input("A"), b = g.Input("B"), target = g.Input("target");
    auto x = g.Add("match",
                   std::make_unique<NodeLayer>("graph_match",
                                               std::map<std::string, std::string>{{"lambda", "0.5"}, {"gamma", "2"}}),
                   {k, a, b});
    auto loss = g.Add("loss", std::make_unique<MeanSquaredError>(), {x, target});
    const TensorMap feeds{{"K", Gaussian({2, 3, 3}, 91)},
                          {"A", PointGraph(2, 3, 92)},
                          {"B", PointGraph(2, 3, 93)},
                          {"target", Gaussian({2, 3, 3}, 94, 0.1)}};
    const GraphCheckReport report = CheckGraphGradients(g, feeds, loss, {"K", "A", "B"});
    EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
    EXPECT_EQ(report.entries.size(), 3u);
  }
}

}  // namespace
}  // namespace ddn::alignment
