// The `qp` node: z = argmin ½zᵀQz + qᵀz s.t. Gz ≤ h, Az = b, batched (nodes/optim/qp_solver.h has the math).
//
// The specialised path is SolveQp (interior point + active-set polish) with OptNet's KKT backward. The generic
// path (`--generic`) is QpForm, the QP written as a declarative node for the generic engine; the conformance
// suite holds the two against each other.
#include <Eigen/Core>
#include <string>
#include <vector>

#include "ddn/declarative.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/optim/qp_problems.h"
#include "nodes/optim/qp_solver.h"

namespace ddn::optim {
namespace {

enum Input { kQ = 0, kq, kG, kh, kA, kb };

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// One problem's inputs as column-major copies, checked (pairs G/h and A/b, symmetry, definiteness, rank).
QpData LoadQp(const ProblemData& p) {
  const int n = static_cast<int>(p.Dim("n"));
  if ((p.inputs[kG] == nullptr) != (p.inputs[kh] == nullptr)) {
    throw InvalidInput(std::string("inputs 'G' and 'h' go together: '") + (p.inputs[kG] ? "h" : "G") + "' is missing");
  }
  if ((p.inputs[kA] == nullptr) != (p.inputs[kb] == nullptr)) {
    throw InvalidInput(std::string("inputs 'A' and 'b' go together: '") + (p.inputs[kA] ? "b" : "A") + "' is missing");
  }
  QpData d;
  d.Q = Eigen::Map<const RowMajor>(p.inputs[kQ], n, n);
  d.q = Eigen::Map<const Eigen::VectorXd>(p.inputs[kq], n);
  const int m = p.inputs[kG] ? static_cast<int>(p.Dim("m")) : 0;
  const int pe = p.inputs[kA] ? static_cast<int>(p.Dim("p")) : 0;
  d.G = m ? Eigen::MatrixXd(Eigen::Map<const RowMajor>(p.inputs[kG], m, n)) : Eigen::MatrixXd(0, n);
  d.h = m ? Eigen::VectorXd(Eigen::Map<const Eigen::VectorXd>(p.inputs[kh], m)) : Eigen::VectorXd(0);
  d.A = pe ? Eigen::MatrixXd(Eigen::Map<const RowMajor>(p.inputs[kA], pe, n)) : Eigen::MatrixXd(0, n);
  d.b = pe ? Eigen::VectorXd(Eigen::Map<const Eigen::VectorXd>(p.inputs[kb], pe)) : Eigen::VectorXd(0);
  ValidateQp(&d);
  return d;
}

void StoreRowMajor(const Eigen::MatrixXd& m, double* out) {
  if (!out) return;
  Eigen::Map<RowMajor>(out, m.rows(), m.cols()) = m;
}
void StoreVector(const Eigen::VectorXd& v, double* out) {
  if (!out) return;
  Eigen::Map<Eigen::VectorXd>(out, v.size()) = v;
}

Tensor Stack(const std::vector<Eigen::MatrixXd>& ms) {
  const Eigen::Index r = ms[0].rows(), c = ms[0].cols();
  Tensor t(Shape{static_cast<int64_t>(ms.size()), r, c});
  for (size_t b = 0; b < ms.size(); ++b) Eigen::Map<RowMajor>(t.problem(b), r, c) = ms[b];
  return t;
}
Tensor Stack(const std::vector<Eigen::VectorXd>& vs) {
  const Eigen::Index r = vs[0].size();
  Tensor t(Shape{static_cast<int64_t>(vs.size()), r});
  for (size_t b = 0; b < vs.size(); ++b) Eigen::Map<Eigen::VectorXd>(t.problem(b), r) = vs[b];
  return t;
}

// The QP's declarative form for the generic engine: f = ½zᵀQz + qᵀz, h(z) = Az − b = 0, g(z) = Gz − h ≤ 0 (each
// pair optional). Not kLinearConstraints: the constraints are affine in z but bilinear in (G, z) and (A, z).
class QpForm : public DeclarativeNode<QpForm> {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "qp (declarative form)";
    s.summary = "the qp node's declarative form, for the generic engine";
    s.inputs = {{"Q", {"n", "n"}, "", true, false}, {"q", {"n"}, "", true, false},
                {"G", {"m", "n"}, "", true, true},  {"h", {"m"}, "", true, true},
                {"A", {"p", "n"}, "", true, true},  {"b", {"p"}, "", true, true}};
    s.outputs = {{"z", {"n"}, "", true, false}};
    return s;
  }
  template <typename T>
  T Objective(const Args<T>& in, const T* z) const {
    const int64_t n = in.size(kq);
    T f = Constant<T>(0.0);
    for (int64_t i = 0; i < n; ++i) {
      T qz = Constant<T>(0.0);
      for (int64_t j = 0; j < n; ++j) qz += in[kQ][i * n + j] * z[j];
      f += Constant<T>(0.5) * z[i] * qz + in[kq][i] * z[i];
    }
    return f;
  }
  int NumEqualities(const ProblemData& p) const { return p.inputs[kA] ? static_cast<int>(p.Dim("p")) : 0; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* z, T* out) const {
    if (!in.has(kA)) return;
    const int64_t n = in.size(kq), rows = in.size(kb);
    for (int64_t i = 0; i < rows; ++i) {
      out[i] = -in[kb][i];
      for (int64_t j = 0; j < n; ++j) out[i] += in[kA][i * n + j] * z[j];
    }
  }
  int NumInequalities(const ProblemData& p) const { return p.inputs[kG] ? static_cast<int>(p.Dim("m")) : 0; }
  template <typename T>
  void Inequalities(const Args<T>& in, const T* z, T* out) const {
    if (!in.has(kG)) return;
    const int64_t n = in.size(kq), rows = in.size(kh);
    for (int64_t i = 0; i < rows; ++i) {
      out[i] = -in[kh][i];
      for (int64_t j = 0; j < n; ++j) out[i] += in[kG][i * n + j] * z[j];
    }
  }
};

class QpNode : public Node {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "qp";
    s.summary =
        "quadratic programme z = argmin 1/2 z^T Q z + q^T z s.t. Gz <= h, Az = b (interior point + active-set polish)";
    s.params = {
        {"max_iterations", ParamType::kInt, "50", "interior-point iterations at most", {}},
        {"tolerance", ParamType::kFloat, "1e-11", "scaled KKT residual at which the interior-point method stops", {}}};
    s.inputs = {{"Q", {"n", "n"}, "symmetric positive definite quadratic term", true, false},
                {"q", {"n"}, "linear term", true, false},
                {"G", {"m", "n"}, "inequality matrix (with h)", true, true},
                {"h", {"m"}, "inequality right-hand side", true, true},
                {"A", {"p", "n"}, "equality matrix of full row rank (with b)", true, true},
                {"b", {"p"}, "equality right-hand side", true, true}};
    s.outputs = {{"z", {"n"}, "the minimiser", true, false}};
    return s;
  }
  explicit QpNode(const Params& p) : Node(Spec()) {
    options_.max_iterations = p.RequireIntInRange("max_iterations", 1, 10000);
    options_.tolerance = p.RequirePositive("tolerance");
    if (!(options_.tolerance < 1e-3)) {
      throw InvalidInput("parameter 'tolerance' of node 'qp' must be < 1e-3, got " + FormatDouble(options_.tolerance));
    }
    options_.Validate();
  }

  bool HasIterativeForward() const override { return true; }
  bool BackwardAssigns() const override { return true; }

  void Solve(const ProblemData& p, ProblemStatus* status) const override {
    const QpData d = LoadQp(p);
    const QpSolution sol = SolveQp(d, options_, status);
    const double scale = 1.0 + d.q.cwiseAbs().maxCoeff();
    for (int i : sol.active) {
      if (sol.lambda[i] <= 1e-9 * scale) {
        status->Set(kDegenerate,
                    "weakly active inequality " + std::to_string(i) + " (zero multiplier on the boundary)");
        break;
      }
    }
    if (static_cast<int>(sol.active.size()) + d.p() > d.n())
      status->Set(kDegenerate, "more active constraints than variables");
    StoreVector(sol.z, p.outputs[0]);
  }

  void Backward(const ProblemData& p, ProblemStatus* status) const override {
    const QpData d = LoadQp(p);
    const Eigen::Map<const Eigen::VectorXd> v(p.grad_outputs[0], d.n());
    QpGradient g;
    if (p.gradient_mode.implicit() || d.m() == 0) {
      // Without inequalities the forward is one linear solve: every mode is its exact derivative.
      QpImplicitVjp(d, Eigen::Map<const Eigen::VectorXd>(p.outputs[0], d.n()), v, &g, status);
    } else {
      QpTape tape;
      ProblemStatus replay;
      SolveQp(d, options_, &replay, &tape);
      QpUnrolledVjp(d, tape, p.gradient_mode.StepsOf(static_cast<int>(tape.steps.size())), v, &g);
    }
    StoreRowMajor(g.Q, p.grad_inputs[kQ]);
    StoreVector(g.q, p.grad_inputs[kq]);
    StoreRowMajor(g.G, p.grad_inputs[kG]);
    StoreVector(g.h, p.grad_inputs[kh]);
    StoreRowMajor(g.A, p.grad_inputs[kA]);
    StoreVector(g.b, p.grad_inputs[kb]);
  }

  // The generic engine on QpForm, after the same validation as the specialised path (pairs, symmetry, Q
  // positive definite, A of full row rank). Implicit gradients only (the batch layer refuses the other modes).
  bool HasGenericPath() const override { return true; }
  void GenericSolve(const ProblemData& p, ProblemStatus* status) const override {
    LoadQp(p);
    form_.GenericSolve(p, status);
  }
  void GenericBackward(const ProblemData& p, ProblemStatus* status) const override {
    LoadQp(p);
    form_.GenericBackward(p, status);
  }
  void SetSolverOption(const std::string& key, const std::string& value) override { form_.SetSolverOption(key, value); }
  std::vector<std::string> SolverOptions() const override { return form_.SolverOptions(); }

  double ObjectiveValue(const ProblemData& p) const override {
    const QpData d = LoadQp(p);
    const Eigen::Map<const Eigen::VectorXd> z(p.outputs[0], d.n());
    return 0.5 * z.dot(d.Q * z) + d.q.dot(z);
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    Rng rng(seed);
    std::vector<CheckCase> cases;
    auto add = [&](const std::string& name, KnownQpOptions o, bool inequalities, bool equalities) {
      std::vector<Eigen::MatrixXd> Q, G, A;
      std::vector<Eigen::VectorXd> q, h, b;
      for (int k = 0; k < 3; ++k) {
        const KnownQp kq = MakeKnownQp(o, &rng);
        Q.push_back(kq.data.Q), q.push_back(kq.data.q), G.push_back(kq.data.G), h.push_back(kq.data.h);
        A.push_back(kq.data.A), b.push_back(kq.data.b);
      }
      CheckCase c{name, {}};
      c.inputs["Q"] = Stack(Q);
      c.inputs["q"] = Stack(q);
      if (inequalities) c.inputs["G"] = Stack(G), c.inputs["h"] = Stack(h);
      if (equalities) c.inputs["A"] = Stack(A), c.inputs["b"] = Stack(b);
      cases.push_back(std::move(c));
    };
    KnownQpOptions o;
    o.n = 5, o.m = 8, o.p = 2, o.strongly_active = 0;
    add("random_inactive", o, true, true);
    o.strongly_active = 2;
    add("random", o, true, true);
    o.strongly_active = 3, o.p = 2;
    add("boundary_n_minus_p", o, true, true);  // as many active rows as n − p: z is pinned by the constraints
    o.strongly_active = 2, o.delta = 1e-2;
    add("near_singular_Q", o, true, true);
    o.delta = 0.5, o.p = 0;
    add("inequalities_only", o, true, false);
    o.p = 2, o.m = 0, o.strongly_active = 0;
    add("equalities_only", o, false, true);
    return cases;
  }

 private:
  QpOptions options_;
  QpForm form_;
};
DDN_REGISTER_NODE(QpNode);

}  // namespace
}  // namespace ddn::optim
