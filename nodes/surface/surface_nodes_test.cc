// Node-level tests of fit_plane, fit_sphere and fit_ellipse: gradients against central finite differences
// (ddn::CheckGradients) for every penalty, the specialised path against the generic path of the declarative form,
// zero weights (one-sided differences), awkward points and their flags, bad requests, and fit_plane with learned
// weights inside a graph (NodeLayer with two inputs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/pooling/penalties.h"

namespace ddn {
namespace {

// Every penalty of the surface fits (their spec lists the pooling family's, penalties.h).
const std::vector<std::string>& kPenalties = pooling::PenaltyNames();

std::unique_ptr<Node> Make(const std::string& node, const std::string& penalty = "", double alpha = 1.0) {
  if (node == "fit_ellipse") return MakeNode(node);
  return MakeNode(node, {{"penalty", penalty.empty() ? "quadratic" : penalty}, {"alpha", FormatDouble(alpha)}});
}

TEST(SurfaceNodes, GradientsMatchFiniteDifferences) {
  for (const char* node_name : {"fit_plane", "fit_sphere"}) {
    for (const std::string& penalty : kPenalties) {
      for (double alpha : {0.5, 1.0, 2.0}) {
        auto node = Make(node_name, penalty, alpha);
        CheckOptions options;
        options.seed = 11;
        options.run.threads = 1;  // batches of 3: threads only add synchronisation
        const CheckReport report = CheckGradients(*node, options);
        EXPECT_TRUE(report.passed) << node_name << " " << penalty << " alpha=" << alpha << "\n" << report.ToString();
      }
    }
  }
  for (uint64_t seed : {1, 2, 3}) {
    auto node = Make("fit_ellipse");
    CheckOptions options;
    options.seed = seed;
    options.run.threads = 1;
    const CheckReport report = CheckGradients(*node, options);
    EXPECT_TRUE(report.passed) << "fit_ellipse seed " << seed << "\n" << report.ToString();
  }
}

// Per-problem objective of given outputs.
double ObjectiveOf(const Node& node, const TensorMap& inputs, const TensorMap& outputs, int64_t b) {
  Dims dims;
  ValidateInputs(node, inputs, &dims);
  ProblemData p;
  p.dims = &dims;
  for (const auto& in : node.spec().inputs) {
    auto it = inputs.find(in.name);
    p.inputs.push_back(it == inputs.end() ? nullptr : it->second.problem(b));
    p.input_shapes.push_back(it == inputs.end() ? Shape{} : it->second.problem_shape());
  }
  for (const auto& out : node.spec().outputs) {
    p.outputs.push_back(const_cast<double*>(outputs.at(out.name).problem(b)));
    p.output_shapes.push_back(outputs.at(out.name).problem_shape());
  }
  return node.ObjectiveValue(p);
}

// same_minimum: both paths must reach the same minimum (quadratic, pseudo-Huber and Huber, where both start at the
// least-squares / algebraic fit). Otherwise (a non-convex penalty: the specialised solvers also start from the
// pseudo-Huber fit, the generic engine escapes saddles its own way) either may end in a different local minimum:
// only the backward at our solution is compared, and the cases where the generic solve found a lower one are counted
// in *generic_better.
void ExpectSpecialisedMatchesGeneric(const Node& node, const CheckCase& c, bool same_minimum,
                                     int* generic_better = nullptr) {
  SCOPED_TRACE(node.name() + " case " + c.name);
  RunOptions generic;
  generic.generic = true;
  const ForwardResult ours = Forward(node, c.inputs);
  const ForwardResult theirs = Forward(node, c.inputs, generic);
  for (size_t b = 0; b < ours.status.size(); ++b) {
    EXPECT_LE(ours.status[b].residual, 1e-12) << "b=" << b;
    const double f = ObjectiveOf(node, c.inputs, ours.outputs, b);
    const double fg = ObjectiveOf(node, c.inputs, theirs.outputs, b);
    if (same_minimum) {
      EXPECT_LE(f, fg + 1e-10 * (1 + std::abs(fg))) << "b=" << b;
    } else if (generic_better && f > fg + 1e-10 * (1 + std::abs(fg))) {
      ++*generic_better;
    }
  }
  if (same_minimum) {
    for (const auto& [name, y] : ours.outputs) {
      const Tensor& yg = theirs.outputs.at(name);
      for (int64_t k = 0; k < y.size(); ++k) EXPECT_NEAR(y[k], yg[k], 1e-7 * (1 + std::abs(yg[k]))) << name << k;
    }
  }
  // Backward at our solution: closed form against the nested-Jet implicit backward of the declarative form.
  Rng rng(9);
  TensorMap v;
  for (const auto& [name, y] : ours.outputs) {
    Tensor t(y.shape());
    for (auto& e : t.values()) e = rng.Normal();
    v[name] = t;
  }
  std::vector<ProblemStatus> s1 = ours.status, s2 = ours.status;
  const TensorMap g1 = Backward(node, c.inputs, ours.outputs, v, &s1);
  const TensorMap g2 = Backward(node, c.inputs, ours.outputs, v, &s2, generic);
  for (const auto& [name, g] : g1) {
    double diff = 0, norm = 0;
    for (int64_t k = 0; k < g.size(); ++k) {
      diff = std::max(diff, std::abs(g[k] - g2.at(name)[k]));
      norm = std::max(norm, std::abs(g2.at(name)[k]));
    }
    EXPECT_LE(diff, 1e-8 * (1 + norm)) << name;
  }
}

TEST(SurfaceNodes, SpecialisedMatchesGenericPath) {
  for (const char* node_name : {"fit_plane", "fit_sphere"}) {
    int generic_better = 0, compared = 0;
    for (const std::string& penalty : kPenalties) {
      auto node = Make(node_name, penalty, 1.0);
      SCOPED_TRACE(penalty);
      const bool convex_like = std::string(penalty) == "quadratic" || std::string(penalty) == "pseudo_huber" ||
                               std::string(penalty) == "huber";
      for (const CheckCase& c : node->CheckCases(5)) {
        if (c.name == "hyperplane_4d" || c.name == "far_from_origin") continue;  // slow / poorly scaled for L-BFGS
        ExpectSpecialisedMatchesGeneric(*node, c, convex_like, &generic_better);
        if (!convex_like) compared += static_cast<int>(c.inputs.at("points").dim(0));
      }
    }
    std::printf("%s, non-convex penalties: the generic solve found a lower local minimum in %d of %d problems\n",
                node_name, generic_better, compared);
    // Two starts should leave the specialised answer at least as good as the generic one in most problems.
    EXPECT_LE(generic_better, compared / 4) << node_name;
  }
  auto ellipse = Make("fit_ellipse");
  for (const CheckCase& c : ellipse->CheckCases(5)) ExpectSpecialisedMatchesGeneric(*ellipse, c, true);
}

// dL/dw_i at w_i = 0 against one-sided (forward) fourth-order differences: w_i − h would be an invalid weight.
TEST(SurfaceNodes, ZeroWeightsHaveOneSidedGradients) {
  for (const char* node_name : {"fit_plane", "fit_sphere", "fit_ellipse"}) {
    for (const char* penalty : {"quadratic", "huber", "welsch"}) {
      if (std::string(node_name) == "fit_ellipse" && std::string(penalty) != "quadratic") continue;
      SCOPED_TRACE(std::string(node_name) + " " + penalty);
      auto node = Make(node_name, penalty, 1.0);
      CheckCase c = node->CheckCases(21).at(1);  // "weighted"
      ASSERT_EQ(c.name, "weighted");
      Tensor& w = c.inputs.at("weights");
      const int64_t batch = w.dim(0), n = w.dim(1);
      for (int64_t b = 0; b < batch; ++b) w.problem(b)[1] = w.problem(b)[4] = 0.0;
      const ForwardResult fwd = Forward(*node, c.inputs);
      Rng rng(4);
      TensorMap v;
      for (const auto& [name, y] : fwd.outputs) {
        Tensor t(y.shape());
        for (auto& e : t.values()) e = rng.Normal();
        v[name] = t;
      }
      std::vector<ProblemStatus> status = fwd.status;
      const TensorMap g = Backward(*node, c.inputs, fwd.outputs, v, &status);
      auto phi = [&](const TensorMap& in) {
        const ForwardResult r = Forward(*node, in);
        std::vector<double> out(batch, 0.0);
        for (const auto& [name, y] : r.outputs)
          for (int64_t b = 0; b < batch; ++b)
            for (int64_t k = 0; k < y.problem_size(); ++k) out[b] += v.at(name).problem(b)[k] * y.problem(b)[k];
        return out;
      };
      for (int64_t i : {1, 4}) {
        const double h = 1e-4;
        std::vector<std::vector<double>> f;
        for (int k = 0; k <= 4; ++k) {
          TensorMap in = c.inputs;
          for (int64_t b = 0; b < batch; ++b) in.at("weights").problem(b)[i] = k * h;
          f.push_back(phi(in));
        }
        for (int64_t b = 0; b < batch; ++b) {
          const double fd = (-25 * f[0][b] + 48 * f[1][b] - 36 * f[2][b] + 16 * f[3][b] - 3 * f[4][b]) / (12 * h);
          const double got = g.at("weights").problem(b)[i];
          EXPECT_NEAR(got, fd, 1e-6 * std::max(1.0, std::abs(fd))) << "b=" << b << " i=" << i;
          // The point itself carries no weight: its gradient is exactly 0.
          const Tensor& gp = g.at("points");
          const int64_t d = gp.dim(2);
          for (int64_t k = 0; k < d; ++k) EXPECT_EQ(gp.problem(b)[i * d + k], 0.0);
        }
      }
      (void)n;
    }
  }
}

TEST(SurfaceNodes, AwkwardPointsAreFlaggedAndFinite) {
  auto plane = Make("fit_plane");
  // A line in 3-D (repeated smallest eigenvalue), a plane with normal ±e_y (sign tie), a generic plane.
  Tensor pts({3, 5, 3});
  for (int i = 0; i < 5; ++i) {
    const double t = i - 2.0;
    const double line[3] = {t, 2 * t + 1, -t}, tie[3] = {t, 3.0, 0.5 * t * t}, ok[3] = {t, t * t, 0.2 * t};
    for (int k = 0; k < 3; ++k) {
      pts.problem(0)[3 * i + k] = line[k];
      pts.problem(1)[3 * i + k] = tie[k];
      pts.problem(2)[3 * i + k] = ok[k];
    }
  }
  const ForwardResult r = Forward(*plane, {{"points", pts}});
  EXPECT_TRUE(r.status[0].flags & kNonUnique) << r.status[0].note;
  EXPECT_TRUE(r.status[1].flags & kNonSmooth) << r.status[1].note;
  EXPECT_NEAR(r.outputs.at("normal").problem(1)[1], 1.0, 1e-14);
  EXPECT_EQ(r.status[2].flags, 0u) << r.status[2].note;
  std::vector<ProblemStatus> s = r.status;
  const TensorMap g = Backward(*plane, {{"points", pts}}, r.outputs,
                               {{"normal", Tensor({3, 3}, 1.0)}, {"offset", Tensor({3}, 1.0)}}, &s);
  EXPECT_TRUE(s[0].flags & kNonRegular);
  for (double x : g.at("points").values()) EXPECT_TRUE(std::isfinite(x));
  // The ellipse node on a circle: angle 0 and kNonUnique.
  auto ellipse = Make("fit_ellipse");
  Tensor circle({1, 8, 2});
  for (int i = 0; i < 8; ++i) {
    circle.problem(0)[2 * i] = 2 + std::cos(0.8 * i);
    circle.problem(0)[2 * i + 1] = std::sin(0.8 * i);
  }
  const ForwardResult e = Forward(*ellipse, {{"points", circle}});
  EXPECT_TRUE(e.status[0].flags & kNonUnique);
  EXPECT_EQ(e.outputs.at("angle")[0], 0.0);
  EXPECT_NEAR(e.outputs.at("centre")[0], 2.0, 1e-10);
  EXPECT_NEAR(e.outputs.at("axes")[0], 1.0, 1e-10);
}

void ExpectInvalid(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no InvalidInput (wanted '" << part << "')";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(SurfaceNodes, BadRequestsAreInvalidInput) {
  auto plane = Make("fit_plane");
  Tensor ok({2, 4, 3});
  Rng rng(1);
  for (auto& x : ok.values()) x = rng.Normal();
  ExpectInvalid([&] { Forward(*plane, {{"points", Tensor({2, 2, 3}, 1.0)}}); }, "needs at least 3 points, got N = 2");
  ExpectInvalid([&] { Forward(*plane, {{"points", Tensor({2, 4}, 1.0)}}); }, "must have shape");
  Tensor nan = ok;
  nan[5] = NAN;
  ExpectInvalid([&] { Forward(*plane, {{"points", nan}}); }, "non-finite");
  Tensor w({2, 4}, 1.0);
  w[2] = -1;
  ExpectInvalid([&] { Forward(*plane, {{"points", ok}, {"weights", w}}); }, "must be >= 0");
  ExpectInvalid([&] { Forward(*plane, {{"points", ok}, {"weights", Tensor({2, 4}, 0.0)}}); }, "all zero");
  ExpectInvalid([&] { Forward(*plane, {{"points", ok}, {"weights", Tensor({2, 5}, 1.0)}}); }, "N");
  ExpectInvalid([&] { MakeNode("fit_plane", {{"alpha", "0"}}); }, "alpha");
  ExpectInvalid([&] { MakeNode("fit_sphere", {{"penalty", "tukey"}}); }, "tukey");
  auto sphere = Make("fit_sphere");
  ExpectInvalid([&] { Forward(*sphere, {{"points", Tensor({1, 3, 3}, 1.0)}}); }, "at least 4 points");
  auto ellipse = Make("fit_ellipse");
  ExpectInvalid([&] { Forward(*ellipse, {{"points", Tensor({1, 6, 3}, 1.0)}}); }, "must have shape");
  ExpectInvalid([&] { Forward(*ellipse, {{"points", Tensor({1, 4, 2}, 1.0)}}); }, "at least 5 points");
}

// fit_plane inside a graph with its weights computed by a layer: NodeLayer takes (points, weights) and returns the
// normal; the reverse-mode gradient of a loss through it matches finite differences.
TEST(SurfaceNodes, FitPlaneTrainsInsideAGraph) {
  using namespace ddn::graph;
  Graph g;
  auto points = g.Input("points");                                               // (B, N, 3)
  auto features = g.Input("features");                                           // (B, N, 2)
  auto target = g.Input("target");                                               // (B, 3)
  auto h = g.Add("fc", std::make_unique<Linear>(2, 1, 7), {features});           // (B, N, 1)
  auto logits = g.Add("flatten", std::make_unique<Reshape>(Shape{-1, 6}), {h});  // (B, N)
  // Non-negative weights: a ReLU of the logits (kept in its linear part by the bias below).
  auto weights = g.Add("relu", std::make_unique<Relu>(), {logits});
  NodeLayerOptions layer;
  layer.inputs = {"points", "weights"};
  auto normal = g.Add("fit", std::make_unique<NodeLayer>("fit_plane", std::map<std::string, std::string>{}, layer),
                      {points, weights});
  auto loss = g.Add("loss", std::make_unique<MeanSquaredError>(), {normal, target});
  // The bias keeps every weight positive (the ReLU is in its linear part).
  for (Parameter* p : g.Parameters())
    if (p->name == "fc.bias") p->value[0] = 3.0;
  Rng rng(2);
  Tensor pts({2, 6, 3}), feat({2, 6, 2}), tgt({2, 3});
  for (auto& x : pts.values()) x = rng.Normal();
  for (int64_t i = 0; i < 12; ++i) pts[3 * i + 2] *= 0.2;
  for (auto& x : feat.values()) x = 0.5 * rng.Normal();
  for (auto& x : tgt.values()) x = rng.Normal();
  const TensorMap feeds{{"points", pts}, {"features", feat}, {"target", tgt}};
  const GraphCheckReport report = CheckGraphGradients(g, feeds, loss, {"points", "features"});
  EXPECT_LE(report.max_rel_error, 1e-6) << report.ToString();
}

}  // namespace
}  // namespace ddn
