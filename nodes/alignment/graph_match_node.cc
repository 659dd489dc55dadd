// The `graph_match` node: relaxed quadratic assignment over the doubly-stochastic polytope with entropy,
// X = argmax ⟨K, X⟩ + λ tr(Xᵀ A X B) + (1/γ) H(X) (graph_match.h: the math, the solver, the gradients).
//
// Status: kNotCertified when λγ‖G‖₂ ≥ 1 (the relaxation may be non-concave: the answer is the fixed point
// reached by continuation from the concave regime, one local maximum among possibly several); kNotConverged
// when the fixed point was not reached within the iteration limits (the answer is the last, feasible iterate
// and `residual` says how far it is); kNonRegular when the backward's linear system is singular.
#include <cmath>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/alignment/graph_match.h"

namespace ddn::alignment {
namespace {

class GraphMatchNode : public Node {
 public:
  static NodeSpec Spec() {
    return {"graph_match",
            "relaxed graph matching X = argmax <K, X> + lambda tr(X^T A X B) + (1/gamma) H(X) over doubly-stochastic X",
            {{"lambda", ParamType::kFloat, "1", "weight lambda >= 0 of the edge term tr(X^T A X B)"},
             {"gamma", ParamType::kFloat, "1", "inverse entropy weight gamma > 0 (larger: closer to a permutation)"}},
            {{"node_affinity", {"N", "Np"}, "node affinities K (N x N')"},
             {"edges_a", {"N", "N"}, "edge weights A of the first graph"},
             {"edges_b", {"Np", "Np"}, "edge weights B of the second graph"}},
            {{"X",
              {"N", "Np"},
              "soft assignment: positive, rows sum to min(N,N')/N, columns to min(N,N')/N' (doubly stochastic if "
              "N = N')"}}};
  }
  explicit GraphMatchNode(const Params& p)
      : Node(Spec()), lambda_(p.RequireNonNegative("lambda")), gamma_(p.RequirePositive("gamma")) {
    if (!std::isfinite(lambda_)) throw InvalidInput("parameter 'lambda' of node 'graph_match' must be finite");
    if (!std::isfinite(gamma_)) throw InvalidInput("parameter 'gamma' of node 'graph_match' must be finite");
    options_.Validate();
  }

  void Solve(const ProblemData& p, ProblemStatus* status) const override {
    const int64_t N = p.Dim("N"), Np = p.Dim("Np");
    const GraphMatchReport report =
        SolveGraphMatch(p.inputs[0], p.inputs[1], p.inputs[2], N, Np, lambda_, gamma_, options_, p.outputs[0]);
    status->residual = report.residual;
    status->iterations = report.fixed_point_iterations + report.newton_steps;
    if (!report.concave) {
      status->Set(
          kNotCertified,
          "lambda*gamma*||G|| >= 1: the relaxation may be non-concave; a local maximum reached by continuation");
    }
    if (!report.converged) {
      status->Set(kNotConverged, "the fixed point was not reached within the iteration limits (residual " +
                                     FormatDouble(report.residual) + ")");
    }
  }

  bool BackwardAssigns() const override { return true; }
  void Backward(const ProblemData& p, ProblemStatus* status) const override {
    const int64_t N = p.Dim("N"), Np = p.Dim("Np");
    GraphMatchVjp(p.inputs[1], p.inputs[2], p.outputs[0], N, Np, lambda_, gamma_, options_, p.grad_outputs[0],
                  p.grad_inputs[0], p.grad_inputs[1], p.grad_inputs[2], status);
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  double lambda_, gamma_;
  GraphMatchOptions options_;
};
DDN_REGISTER_NODE(GraphMatchNode);

// Random affinities and symmetric edge weights of random point sets (N ≠ N'), directed (asymmetric) edges,
// a graph without edges (the problem is then optimal transport), and two graphs related by a permutation (the
// matching problem the node is for). Affinities are scaled by 1/γ and edges so that λγ‖G‖₂ ≈ 0.8: the
// relaxation is concave and finite differences with the checker's step stay accurate.
std::vector<CheckCase> GraphMatchNode::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  auto edges = [&](int64_t b, int64_t n, bool symmetric) {
    Tensor e({b, n, n});
    for (int64_t q = 0; q < b; ++q) {
      std::vector<double> px(n), py(n);
      for (int64_t i = 0; i < n; ++i) px[i] = rng.Normal(), py[i] = rng.Normal();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < n; ++k) {
          const double d2 = (px[i] - px[k]) * (px[i] - px[k]) + (py[i] - py[k]) * (py[i] - py[k]);
          e.problem(q)[i * n + k] = (i == k) ? 0.0 : (symmetric ? std::exp(-d2) : rng.Uniform(0.0, 1.0));
        }
    }
    return e;
  };
  auto affinity = [&](int64_t b, int64_t n, int64_t np) {
    Tensor k({b, n, np});
    for (auto& v : k.values()) v = rng.Normal() / std::max(1.0, gamma_);
    return k;
  };
  // Scales the edges of every problem so that λγ‖G‖₂ = target.
  auto scale_edges = [&](CheckCase* c, double target) {
    if (lambda_ == 0) return;
    Tensor& a = c->inputs["edges_a"];
    Tensor& b = c->inputs["edges_b"];
    const int64_t n = a.dim(1), np = b.dim(1);
    for (int64_t q = 0; q < a.dim(0); ++q) {
      const double norm = QuadraticTermNorm(a.problem(q), b.problem(q), n, np);
      if (norm == 0) continue;
      const double f = std::sqrt(target / (lambda_ * gamma_ * norm));
      for (int64_t k = 0; k < n * n; ++k) a.problem(q)[k] *= f;
      for (int64_t k = 0; k < np * np; ++k) b.problem(q)[k] *= f;
    }
  };
  std::vector<CheckCase> cases;
  CheckCase random{
      "random", {{"node_affinity", affinity(2, 3, 4)}, {"edges_a", edges(2, 3, true)}, {"edges_b", edges(2, 4, true)}}};
  scale_edges(&random, 0.8);
  cases.push_back(random);

  CheckCase directed{
      "directed_edges",
      {{"node_affinity", affinity(2, 4, 3)}, {"edges_a", edges(2, 4, false)}, {"edges_b", edges(2, 3, false)}}};
  scale_edges(&directed, 0.8);
  cases.push_back(directed);

  cases.push_back(
      {"no_edges",
       {{"node_affinity", affinity(1, 3, 3)}, {"edges_a", Tensor({1, 3, 3})}, {"edges_b", Tensor({1, 3, 3})}}});

  // B = Pπ A Pπᵀ: the second graph is the first with its nodes permuted, affinities favour π weakly.
  CheckCase permuted{"permuted_graph", {}};
  const int64_t n = 4;
  const int64_t perm[n] = {2, 0, 3, 1};
  Tensor a = edges(1, n, true), b({1, n, n}), k = affinity(1, n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) b[perm[i] * n + perm[j]] = a[i * n + j];
  for (int64_t i = 0; i < n; ++i) k[i * n + perm[i]] += 0.5 / std::max(1.0, gamma_);
  permuted.inputs = {{"node_affinity", k}, {"edges_a", a}, {"edges_b", b}};
  scale_edges(&permuted, 0.8);
  cases.push_back(permuted);
  return cases;
}

}  // namespace
}  // namespace ddn::alignment
