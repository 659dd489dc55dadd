// The learned matcher's graph operations against finite differences of the whole graph (PairwiseDistance →
// optimal_transport → MatchNll), and the matching read-outs on hand-made plans.
#include <gtest/gtest.h>

#include "apps/match/match_ops.h"
#include "apps/match/matching.h"
#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"
#include "ddn/random.h"

namespace ddn::match {
namespace {

TEST(MatchOps, GradientsOfTheTrainingGraphMatchFiniteDifferences) {
  graph::Graph g;
  auto desc = g.Input("desc"), truth = g.Input("truth");
  auto map = g.Add("map", std::make_unique<graph::Linear>(5, 4, 3), {desc});
  // A bias cancels in distances: its gradient is exactly 0 (as the learned matcher, keep it fixed).
  for (graph::Parameter* p : g.Parameters())
    if (p->name == "map.bias") p->trainable = false;
  auto cost = g.Add("cost", std::make_unique<PairwiseDistance>(3), {map});
  auto plan =
      g.Add("transport",
            std::make_unique<graph::NodeLayer>("optimal_transport", std::map<std::string, std::string>{{"gamma", "3"}}),
            {cost});
  auto loss = g.Add("loss", std::make_unique<MatchNll>(), {plan, truth});
  Rng rng(5);
  Tensor d({2, 7, 5}), t({2, 3, 4});
  for (auto& v : d.values()) v = rng.Normal();
  t[0 * 4 + 1] = t[1 * 4 + 3] = t[12 + 2 * 4 + 0] = 1.0;
  const graph::GraphCheckReport report = graph::CheckGraphGradients(g, {{"desc", d}, {"truth", t}}, loss, {"desc"});
  EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
  EXPECT_EQ(report.entries.size(), 2u);  // map.weight, desc
}

TEST(MatchOps, FeatureWeightsGradients) {
  graph::Graph g;
  auto desc = g.Input("desc"), truth = g.Input("truth");
  auto map = g.Add("map", std::make_unique<FeatureWeights>(5), {desc});
  for (graph::Parameter* p : g.Parameters())
    for (int k = 0; k < 5; ++k) p->value[k] = 0.5 + 0.2 * k;
  auto cost = g.Add("cost", std::make_unique<PairwiseDistance>(3), {map});
  auto plan =
      g.Add("transport",
            std::make_unique<graph::NodeLayer>("optimal_transport", std::map<std::string, std::string>{{"gamma", "2"}}),
            {cost});
  auto loss = g.Add("loss", std::make_unique<MatchNll>(), {plan, truth});
  Rng rng(9);
  Tensor d({2, 7, 5}), t({2, 3, 4});
  for (auto& v : d.values()) v = rng.Normal();
  t[0 * 4 + 2] = t[2 * 4 + 3] = t[12 + 1 * 4 + 1] = 1.0;
  const graph::GraphCheckReport report = graph::CheckGraphGradients(g, {{"desc", d}, {"truth", t}}, loss, {"desc"});
  EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
  EXPECT_EQ(report.entries.size(), 2u);  // map.weight, desc
}

TEST(MatchOps, DistancesAreEuclidean) {
  PairwiseDistance op(1);
  const Tensor f({1, 3, 2}, {0, 0, 3, 4, 0, 0});
  const Tensor m = op.Forward({&f}, graph::Mode::kEval);
  ASSERT_EQ(m.shape(), (Shape{1, 1, 2}));
  EXPECT_NEAR(m[0], 5.0, 1e-12);
  EXPECT_NEAR(m[1], 0.0, 1e-8);
}

TEST(MatchReadOut, MutualMaximaAboveTheThreshold) {
  RowMatrix p(3, 3);
  p << 0.30, 0.02, 0.01,  // row 0 → col 0, mutual, 0.30·3 = 0.9 ≥ 0.5
      0.02, 0.10, 0.21,   // row 1 → col 2, but col 2's maximum is row 2
      0.01, 0.21, 0.22;   // row 2 → col 2, mutual, 0.22·3 = 0.66
  const std::vector<Match> m = MutualMatches(p, 0.5);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].a, 0);
  EXPECT_EQ(m[0].b, 0);
  EXPECT_EQ(m[1].a, 2);
  EXPECT_EQ(m[1].b, 2);
  EXPECT_EQ(MutualMatches(p, 0.8).size(), 1u);
  const std::vector<Match> top = TopMutualMatches(p, 1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].a, 0);
}

TEST(MatchReadOut, CorrectnessUnderTheHomography) {
  Keypoints a, b;
  a.xy.resize(2, 2);
  b.xy.resize(2, 2);
  a.xy << 10, 20, 30, 40;
  b.xy << 22, 41, 60, 80;  // H = diag(2, 2, 1): (10, 20) → (20, 40): 2.2 px away; (30, 40) → (60, 80) exact
  Eigen::Matrix3d h = Eigen::Matrix3d::Identity();
  h(0, 0) = h(1, 1) = 2;
  const std::vector<bool> ok = Correct(a, b, {{0, 0}, {1, 1}, {0, 1}}, h);
  EXPECT_TRUE(ok[0]);
  EXPECT_TRUE(ok[1]);
  EXPECT_FALSE(ok[2]);
  EXPECT_NEAR(Precision(ok), 2.0 / 3.0, 1e-15);
  EXPECT_EQ(Matchable(a, b, h), 2);
}

}  // namespace
}  // namespace ddn::match
