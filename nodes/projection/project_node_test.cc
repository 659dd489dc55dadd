// Tests of the `project` node: gradients against finite differences (random and awkward points, the
// radius as an input), the specialised forward/backward against the generic Ceres/implicit ones, exact
// boundary points, bad input, and the reference library's answers (tests/reference/cases.json).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/params.h"

namespace ddn {
namespace {

const std::vector<std::string> kShapes = {"simplex", "l1_sphere",   "l1_ball",  "l2_sphere",
                                          "l2_ball", "linf_sphere", "linf_ball"};

std::unique_ptr<Node> Project(const std::string& shape, double radius = 1.0) {
  return MakeNode("project", {{"shape", shape}, {"radius", FormatDouble(radius)}});
}

double MaxAbsDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TensorMap Upstream(const Tensor& y, uint64_t seed) {
  Tensor v(y.shape());
  uint64_t state = seed;
  for (auto& e : v.values()) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    e = static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5;
  }
  return {{"y", v}};
}

TEST(ProjectNode, IsRegisteredWithTheDesignedSpec) {
  const NodeSpec& spec = GetNodeSpec("project");
  ASSERT_EQ(spec.inputs.size(), 2u);
  EXPECT_EQ(spec.inputs[0].name, "x");
  EXPECT_EQ(spec.inputs[1].name, "radius");
  EXPECT_TRUE(spec.inputs[1].optional);
  EXPECT_TRUE(spec.inputs[1].differentiable);
  EXPECT_EQ(spec.outputs[0].name, "y");
  const auto node = MakeNode("project");  // defaults: l2_ball, r = 1
  ForwardResult r = Forward(*node, {{"x", Tensor({1, 2}, {3, 4})}});
  EXPECT_NEAR(r.outputs["y"][0], 0.6, 1e-15);
  EXPECT_NEAR(r.outputs["y"][1], 0.8, 1e-15);
}

TEST(ProjectNode, GradientsMatchFiniteDifferences) {
  for (const std::string& shape : kShapes) {
    for (double radius : {1.0, 0.7}) {
      const auto node = Project(shape, radius);
      const CheckReport report = CheckGradients(*node);
      EXPECT_TRUE(report.passed) << shape << " r " << radius << "\n" << report.ToString();
      EXPECT_LE(report.max_rel_error, 1e-6) << shape;
    }
  }
}

// The closed forms against the general engine on the same inputs: GenericSolve (Ceres + KKT polish)
// reaches the exact projection, GenericBackward (implicit differentiation of the declared constraints)
// the closed-form VJP, including the radius input's gradient.
TEST(ProjectNode, SpecialisedPathsMatchTheGenericEngine) {
  for (const std::string& shape : kShapes) {
    const auto node = Project(shape, 0.8);
    for (const CheckCase& c : node->CheckCases(3)) {
      RunOptions generic;
      generic.generic = true;
      ForwardResult fast = Forward(*node, c.inputs);
      ForwardResult slow = Forward(*node, c.inputs, generic);
      EXPECT_LE(MaxAbsDiff(fast.outputs["y"], slow.outputs["y"]), 1e-9) << shape << " case " << c.name;
      const TensorMap v = Upstream(fast.outputs["y"], 5);
      std::vector<ProblemStatus> s1 = fast.status, s2 = fast.status;
      const TensorMap g1 = Backward(*node, c.inputs, fast.outputs, v, &s1);
      const TensorMap g2 = Backward(*node, c.inputs, fast.outputs, v, &s2, generic);
      for (const auto& [name, g] : g1) {
        EXPECT_LE(MaxAbsDiff(g, g2.at(name)), 1e-8) << shape << " case " << c.name << " input " << name;
      }
    }
  }
}

// Points exactly on a boundary, ties, x = 0: a flagged, finite answer; where the generic engine has a
// derivative (the active-set one), the closed form agrees with it.
TEST(ProjectNode, ExactBoundaryPointsAreFlaggedAndAgreeWithTheActiveSet) {
  struct Case {
    std::string shape;
    std::vector<double> x;
    uint32_t flags;
    bool compare_generic;
  };
  const std::vector<Case> cases = {
      {"l2_ball", {0.6, 0.8, 0.0}, kDegenerate, true},
      {"l1_ball", {0.5, -0.25, 0.25}, kDegenerate, true},
      {"linf_ball", {1.0, 0.5, -2.0}, kDegenerate, true},
      {"simplex", {1.0, 0.0, -0.5}, kDegenerate, true},
      {"l1_sphere", {0.2, 0.0, -0.1}, kNonUnique, true},
      {"l2_sphere", {0.0, 0.0, 0.0}, kNonUnique | kNonRegular, false},
      {"linf_sphere", {0.5, -0.5, 0.1}, kNonUnique, true},
      {"linf_sphere", {2.0, -3.0, 0.1}, kNonSmooth, true},
  };
  for (const Case& c : cases) {
    const auto node = Project(c.shape);
    const TensorMap in{{"x", Tensor({1, 3}, c.x)}};
    ForwardResult r = Forward(*node, in);
    EXPECT_EQ(r.status[0].flags, c.flags) << c.shape << ": " << r.status[0].note;
    const TensorMap v = Upstream(r.outputs["y"], 9);
    std::vector<ProblemStatus> s1 = r.status, s2 = r.status;
    const TensorMap g = Backward(*node, in, r.outputs, v, &s1);
    for (double e : g.at("x").values()) EXPECT_TRUE(std::isfinite(e));
    if (!c.compare_generic) continue;
    RunOptions generic;
    generic.generic = true;
    const TensorMap gg = Backward(*node, in, r.outputs, v, &s2, generic);
    EXPECT_LE(MaxAbsDiff(g.at("x"), gg.at("x")), 1e-8) << c.shape;
  }
  // x = 0 on the L2 sphere: y = r e_1, no gradient wrt x.
  const auto sphere = Project("l2_sphere", 2.0);
  const TensorMap in{{"x", Tensor({1, 2}, {0.0, 0.0})}, {"radius", Tensor({1}, {2.0})}};
  ForwardResult r = Forward(*sphere, in);
  EXPECT_EQ(r.outputs["y"].ToVector(), (std::vector<double>{2.0, 0.0}));
  const TensorMap g = Backward(*sphere, in, r.outputs, {{"y", Tensor({1, 2}, {3.0, 4.0})}}, &r.status);
  EXPECT_EQ(g.at("x").ToVector(), (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(g.at("radius").ToVector(), (std::vector<double>{3.0}));
}

// Inside a ball: y = x, dx = v and dr = 0 exactly (checked exactly: see the ellipsoid test).
TEST(ProjectNode, InsideABallIsTheIdentity) {
  for (const char* shape : {"l1_ball", "l2_ball", "linf_ball"}) {
    const auto node = Project(shape);
    const TensorMap in{{"x", Tensor({1, 3}, {0.2, -0.3, 0.1})}, {"radius", Tensor({1}, {1.5})}};
    ForwardResult r = Forward(*node, in);
    EXPECT_EQ(r.outputs["y"].values(), in.at("x").values());
    EXPECT_EQ(r.status[0].flags, 0u);
    const Tensor v({1, 3}, {1.0, -2.0, 3.0});
    const TensorMap g = Backward(*node, in, r.outputs, {{"y", v}}, &r.status);
    EXPECT_EQ(g.at("x").values(), v.values());
    EXPECT_EQ(g.at("radius").ToVector(), (std::vector<double>{0.0}));
  }
}

TEST(ProjectNode, BadInputIsRejected) {
  EXPECT_THROW(MakeNode("project", {{"radius", "0"}}), InvalidInput);
  EXPECT_THROW(MakeNode("project", {{"radius", "-1"}}), InvalidInput);
  EXPECT_THROW(MakeNode("project", {{"radius", "nan"}}), InvalidInput);
  EXPECT_THROW(MakeNode("project", {{"shape", "l3_ball"}}), InvalidInput);
  const auto node = Project("l1_ball");
  const Tensor x({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_THROW(Forward(*node, {{"x", x}, {"radius", Tensor({2}, {1.0, 0.0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}, {"radius", Tensor({2}, {1.0, -2.0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}, {"radius", Tensor({2}, {1.0, NAN})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}, {"radius", Tensor({2, 1}, {1.0, 1.0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", x}, {"radius", Tensor({3}, {1.0, 1.0, 1.0})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({3}, {1, 2, 3})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 2}, {1, INFINITY})}}), InvalidInput);
  EXPECT_THROW(Forward(*node, {{"x", Tensor({1, 2}, {NAN, 1})}}), InvalidInput);
  try {
    Forward(*node, {{"x", x}, {"radius", Tensor({2}, {1.0, 0.0})}});
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("radius"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("batch element 1"), std::string::npos) << e.what();
  }
}

// ---- the reference library's answers --------------------------------------------------------------
Tensor FromJson(const nlohmann::json& j) {
  std::vector<double> values;
  Shape shape;
  std::function<void(const nlohmann::json&, size_t)> walk = [&](const nlohmann::json& a, size_t depth) {
    if (a.is_array()) {
      if (shape.size() <= depth) shape.push_back(static_cast<int64_t>(a.size()));
      for (const auto& e : a) walk(e, depth + 1);
    } else {
      values.push_back(a.get<double>());
    }
  };
  walk(j, 0);
  return Tensor(shape, values);
}

TEST(ProjectNode, AgreesWithTheReferenceLibrary) {
  std::ifstream file(DDN_REFERENCE_CASES);
  ASSERT_TRUE(file) << DDN_REFERENCE_CASES;
  const nlohmann::json cases = nlohmann::json::parse(file)["cases"];
  int checked = 0;
  for (const auto& c : cases) {
    if (c["node"] != "project") continue;
    std::map<std::string, std::string> params;
    for (const auto& [k, v] : c["params"].items()) {
      params[k] = v.is_string() ? v.get<std::string>() : FormatDouble(v.get<double>());
    }
    const auto node = MakeNode("project", params);
    const TensorMap in{{"x", FromJson(c["inputs"]["x"])}};
    ForwardResult r = Forward(*node, in);
    const TensorMap v{{"y", FromJson(c["grad_outputs"]["y"])}};
    const TensorMap g = Backward(*node, in, r.outputs, v, &r.status);
    const Tensor want_y = FromJson(c["want"]["outputs"]["y"]);
    const Tensor want_g = FromJson(c["want"]["grad_inputs"]["x"]);
    const std::string label = params["shape"] + " r " + params["radius"];
    const Tensor& x = in.at("x");
    const Tensor& y = r.outputs["y"];
    const int64_t batch = x.dim(0), d = x.dim(1);
    for (int64_t b = 0; b < batch; ++b) {
      double ours = 0, theirs = 0, dy = 0, dg = 0;
      for (int64_t i = 0; i < d; ++i) {
        const int64_t k = b * d + i;
        ours += (y[k] - x[k]) * (y[k] - x[k]);
        theirs += (want_y[k] - x[k]) * (want_y[k] - x[k]);
        dy = std::max(dy, std::abs(y[k] - want_y[k]));
        dg = std::max(dg, std::abs(g.at("x")[k] - want_g[k]));
      }
      if (params["shape"] == "l1_sphere") {
        // Non-convex: the reference may sit elsewhere; we must be no farther from x.
        EXPECT_LE(ours, theirs + 1e-12) << label << " element " << b;
        if (std::abs(ours - theirs) > 1e-9) continue;
      }
      EXPECT_LE(dy, 1e-6) << label << " element " << b;
      EXPECT_LE(dg, 1e-6) << label << " element " << b;
      ++checked;
    }
  }
  EXPECT_GE(checked, 80);
}

}  // namespace
}  // namespace ddn
