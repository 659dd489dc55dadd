// Tests of the `qp` node through the batch layer: gradient checks, the generic engine on the QP's declarative
// form, gradient modes, and bad input.
#include <gtest/gtest.h>

#include <Eigen/Core>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/declarative.h"
#include "ddn/error.h"
#include "nodes/optim/qp_problems.h"

namespace ddn::optim {
namespace {

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The QP's declarative form for the generic engine: f = ½zᵀQz + qᵀz, h(z) = Az − b = 0, g(z) = Gz − h ≤ 0.
// (Not kLinearConstraints: the constraints are linear in z but bilinear in (G, z), and the gradients for G and A
// need their mixed second derivatives.)
class DeclarativeQp : public DeclarativeNode<DeclarativeQp> {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "qp_declarative_test";
    s.summary = "the qp node's declarative form, for the generic engine";
    s.inputs = {{"Q", {"n", "n"}, "", true, false}, {"q", {"n"}, "", true, false},
                {"G", {"m", "n"}, "", true, false}, {"h", {"m"}, "", true, false},
                {"A", {"p", "n"}, "", true, false}, {"b", {"p"}, "", true, false}};
    s.outputs = {{"z", {"n"}, "", true, false}};
    return s;
  }
  explicit DeclarativeQp(const Params&) {}
  template <typename T>
  T Objective(const Args<T>& in, const T* z) const {
    const int64_t n = in.size(1);
    T f = Constant<T>(0.0);
    for (int64_t i = 0; i < n; ++i) {
      T qz = Constant<T>(0.0);
      for (int64_t j = 0; j < n; ++j) qz += in[0][i * n + j] * z[j];
      f += Constant<T>(0.5) * z[i] * qz + in[1][i] * z[i];
    }
    return f;
  }
  int NumEqualities(const ProblemData& p) const { return static_cast<int>(p.Dim("p")); }
  template <typename T>
  void Equalities(const Args<T>& in, const T* z, T* out) const {
    const int64_t n = in.size(1), rows = in.size(5);
    for (int64_t i = 0; i < rows; ++i) {
      out[i] = -in[5][i];
      for (int64_t j = 0; j < n; ++j) out[i] += in[4][i * n + j] * z[j];
    }
  }
  int NumInequalities(const ProblemData& p) const { return static_cast<int>(p.Dim("m")); }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* z, T* out) const {
    const int64_t n = in.size(1), rows = in.size(3);
    for (int64_t i = 0; i < rows; ++i) {
      out[i] = -in[3][i];
      for (int64_t j = 0; j < n; ++j) out[i] += in[2][i * n + j] * z[j];
    }
  }
};
DDN_REGISTER_NODE(DeclarativeQp);

double RelErr(const Tensor& a, const Tensor& b) {
  double d = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < a.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]), na += a[i] * a[i], nb += b[i] * b[i];
  return std::sqrt(d) / std::max({std::sqrt(na), std::sqrt(nb), 1e-300});
}

TEST(QpNode, GradientCheckPasses) {
  auto node = MakeNode("qp");
  const CheckReport report = CheckGradients(*node);
  EXPECT_TRUE(report.passed) << report.ToString();
  EXPECT_LT(report.max_rel_error, 1e-6) << report.ToString();
}

TEST(QpNode, AgreesWithTheGenericEngineOnTheDeclarativeForm) {
  auto qp = MakeNode("qp");
  auto generic = MakeNode("qp_declarative_test");
  for (const CheckCase& c : qp->CheckCases(7)) {
    if (!c.inputs.count("G") || !c.inputs.count("A")) continue;  // the declarative form needs all six inputs
    ForwardResult a = Forward(*qp, c.inputs);
    ForwardResult b = Forward(*generic, c.inputs, RunOptions{0, true});
    EXPECT_LT(RelErr(a.outputs.at("z"), b.outputs.at("z")), 1e-9) << c.name;
    Tensor v(a.outputs.at("z").shape());
    for (int64_t i = 0; i < v.size(); ++i) v[i] = std::sin(1.0 + i);
    const TensorMap ga = Backward(*qp, c.inputs, a.outputs, {{"z", v}}, &a.status);
    RunOptions gen;
    gen.generic = true;
    const TensorMap gb = Backward(*generic, c.inputs, b.outputs, {{"z", v}}, &b.status, gen);
    // The generic engine differentiates Q as a general matrix: compare the symmetric parts.
    TensorMap gbs = gb;
    Tensor& sym = gbs.at("Q");
    const int64_t n = sym.dim(1);
    for (int64_t bb = 0; bb < sym.dim(0); ++bb) {
      Eigen::Map<RowMajor> m(sym.problem(bb), n, n);
      m = (0.5 * (m + m.transpose())).eval();
    }
    // Errors relative to the whole gradient (a constraint that pins z makes dz/dq exactly 0).
    double total = 0;
    for (const auto& [name, t] : ga)
      for (double e : t.values()) total += e * e;
    total = std::sqrt(total);
    for (const char* name : {"Q", "q", "h", "b", "G", "A"}) {
      double diff = 0;
      for (int64_t i = 0; i < ga.at(name).size(); ++i) diff += std::pow(ga.at(name)[i] - gbs.at(name)[i], 2);
      EXPECT_LT(std::sqrt(diff), 1e-7 * total) << c.name << " " << name;
    }
  }
}

TEST(QpNode, GradientModesOnConvergedSolves) {
  auto node = MakeNode("qp", {{"tolerance", "1e-13"}});
  const CheckCase c = node->CheckCases(3)[1];
  ForwardResult f = Forward(*node, c.inputs);
  Tensor v(f.outputs.at("z").shape(), 1.0);
  const TensorMap gi = Backward(*node, c.inputs, f.outputs, {{"z", v}}, &f.status);
  RunOptions unrolled;
  unrolled.backward = GradientMode::Parse("unrolled");
  const TensorMap gu = Backward(*node, c.inputs, f.outputs, {{"z", v}}, &f.status, unrolled);
  for (const char* name : {"Q", "q", "G", "h", "A", "b"}) EXPECT_LT(RelErr(gi.at(name), gu.at(name)), 1e-6) << name;
  RunOptions truncated;
  truncated.backward = GradientMode::Parse("truncated:2");
  const TensorMap gt = Backward(*node, c.inputs, f.outputs, {{"z", v}}, &f.status, truncated);
  EXPECT_GT(RelErr(gi.at("q"), gt.at("q")), 0.0);
}

TEST(QpNode, InfeasibleElementIsNamed) {
  auto node = MakeNode("qp");
  Tensor Q(Shape{2, 2, 2}, {1, 0, 0, 1, 1, 0, 0, 1});
  Tensor q(Shape{2, 2}, {0, 0, 0, 0});
  Tensor G(Shape{2, 2, 2}, {1, 0, 0, 1, 1, 0, -1, 0});
  Tensor h(Shape{2, 2}, {1, 1, -1, -1});
  try {
    Forward(*node, {{"Q", Q}, {"q", q}, {"G", G}, {"h", h}});
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("batch element 1"), std::string::npos) << what;
    EXPECT_NE(what.find("infeasible"), std::string::npos) << what;
  }
}

TEST(QpNode, BadInputsAreInvalid) {
  auto node = MakeNode("qp");
  Tensor Q(Shape{1, 2, 2}, {1, 0.5, 0, 1});
  Tensor q(Shape{1, 2}, {0, 0});
  EXPECT_THROW(Forward(*node, {{"Q", Q}, {"q", q}}), InvalidInput);  // not symmetric
  Tensor Qi(Shape{1, 2, 2}, {1, 2, 2, 1});
  EXPECT_THROW(Forward(*node, {{"Q", Qi}, {"q", q}}), InvalidInput);  // indefinite
  Tensor Qs(Shape{1, 2, 2}, {1, 0, 0, 1});
  Tensor G(Shape{1, 1, 2}, {1, 1});
  EXPECT_THROW(Forward(*node, {{"Q", Qs}, {"q", q}, {"G", G}}), InvalidInput);  // G without h
  Tensor qn(Shape{1, 2}, {std::nan(""), 0});
  EXPECT_THROW(Forward(*node, {{"Q", Qs}, {"q", qn}}), InvalidInput);
  Tensor q3(Shape{1, 3}, {0, 0, 0});
  EXPECT_THROW(Forward(*node, {{"Q", Qs}, {"q", q3}}), InvalidInput);
  EXPECT_THROW(MakeNode("qp", {{"tolerance", "0"}}), InvalidInput);
}

// A node without an iterative forward refuses unrolled and truncated backward passes.
class ClosedForm : public Node {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "optim_test_closed_form";
    s.summary = "y = 2x";
    s.inputs = {{"x", {"N"}, "x", true, false}};
    s.outputs = {{"y", {"N"}, "2x", true, false}};
    return s;
  }
  explicit ClosedForm(const Params&) : Node(Spec()) {}
  void Solve(const ProblemData& p, ProblemStatus*) const override {
    for (int64_t i = 0; i < p.InputSize(0); ++i) p.outputs[0][i] = 2 * p.inputs[0][i];
  }
  void Backward(const ProblemData& p, ProblemStatus*) const override {
    for (int64_t i = 0; i < p.InputSize(0); ++i) p.grad_inputs[0][i] += 2 * p.grad_outputs[0][i];
  }
};
DDN_REGISTER_NODE(ClosedForm);

TEST(GradientMode, RefusedByNodesWithoutAnIterativeForward) {
  auto node = MakeNode("optim_test_closed_form");
  const Tensor x(Shape{1, 2}, {1, 2});
  ForwardResult f = Forward(*node, {{"x", x}});
  RunOptions o;
  o.backward = GradientMode::Parse("truncated:3");
  try {
    Backward(*node, {{"x", x}}, f.outputs, {{"y", x}}, &f.status, o);
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("iterative forward"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GradientMode::Parse("truncated:0"), InvalidInput);
  EXPECT_THROW(GradientMode::Parse("unroled"), InvalidInput);
  EXPECT_EQ(GradientMode::Parse("truncated:7").ToString(), "truncated:7");
  EXPECT_EQ(GradientMode::Parse("truncated:7").StepsOf(3), 3);
}

}  // namespace
}  // namespace ddn::optim
