// The `optimal_transport` node: P = argmin ⟨P, M⟩ + (1/γ) KL(P ‖ r cᵀ) s.t. P1 = r, Pᵀ1 = c (the reference
// library's definition; the solver and the math are in sinkhorn.h).
//
// Marginals. r and c are optional; an omitted one is uniform (1/H, 1/W). Given ones must be positive and are
// normalised to sum 1 (r ← r / Σr, c ← c / Σc) before the solve, as the reference library does, so P always
// has total mass 1 and the gradients with respect to r and c are those of the normalised problem composed with
// the normalisation: dL/dr = (x − (x·r̂) 1) / Σr with x from sinkhorn.h (3), r̂ = r / Σr; likewise for c.
// They are therefore orthogonal to r̂ and invariant to rescaling r.
#include <cmath>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/alignment/sinkhorn.h"
#include "nodes/alignment/sinkhorn_unrolled.h"

namespace ddn::alignment {
namespace {

class OptimalTransportNode : public Node {
 public:
  static NodeSpec Spec() {
    return {"optimal_transport",
            "entropic optimal transport P = argmin <P, M> + (1/gamma) KL(P || r c^T) s.t. P1 = r, P^T 1 = c",
            {{"gamma", ParamType::kFloat, "1",
              "inverse entropy weight gamma > 0 (larger: closer to the unregularised plan)"},
             {"unrolled_max_sweeps", ParamType::kInt, "20000",
              "backward unrolled / truncated:K only: most plain Sinkhorn sweeps recorded (status not_converged if "
              "the recorded iteration needs more)"}},
            {{"M", {"H", "W"}, "cost matrix"},
             {"r", {"H"}, "row marginal, positive, normalised to sum 1; default uniform 1/H", true, true, true},
             {"c", {"W"}, "column marginal, positive, normalised to sum 1; default uniform 1/W", true, true, true}},
            {{"P", {"H", "W"}, "transport plan: positive, rows sum to r, columns to c (total mass 1)"}}};
  }
  explicit OptimalTransportNode(const Params& p) : Node(Spec()), gamma_(p.RequirePositive("gamma")) {
    if (!std::isfinite(gamma_)) throw InvalidInput("parameter 'gamma' of node 'optimal_transport' must be finite");
    unrolled_.max_sweeps = p.RequireIntInRange("unrolled_max_sweeps", 1, 10000000);
    options_.Validate();
    unrolled_.Validate();
  }

  void Validate(const ProblemData& p) const override {
    for (int input : {1, 2}) {
      if (!p.inputs[input]) continue;
      const int64_t n = p.InputSize(input);
      for (int64_t i = 0; i < n; ++i) {
        if (!(p.inputs[input][i] > 0)) {
          throw InvalidInput("node 'optimal_transport': input '" + spec().inputs[input].name +
                             "' must be positive, got " + FormatDouble(p.inputs[input][i]) + " at index " +
                             std::to_string(i));
        }
      }
    }
  }

  void Solve(const ProblemData& p, ProblemStatus* status) const override {
    const int64_t H = p.Dim("H"), W = p.Dim("W");
    thread_local std::vector<double> r, c;
    Normalised(p.inputs[1], H, &r);
    Normalised(p.inputs[2], W, &c);
    const SinkhornReport report = SolveTransport(p.inputs[0], r.data(), c.data(), H, W, gamma_, options_, p.outputs[0]);
    status->residual = report.marginal_error;
    status->iterations = report.sweeps + report.newton_steps;
  }

  // Sinkhorn is an iteration: `--backward unrolled|truncated:K` differentiate through it (sinkhorn_unrolled.h).
  bool HasIterativeForward() const override { return true; }
  bool BackwardAssigns() const override { return true; }
  void Backward(const ProblemData& p, ProblemStatus* status) const override {
    const int64_t H = p.Dim("H"), W = p.Dim("W");
    thread_local std::vector<double> x, y;
    x.resize(H);
    y.resize(W);
    if (!p.gradient_mode.implicit()) {
      // The tape is rebuilt here and freed on return: its size is the unrolled modes' memory cost.
      thread_local std::vector<double> r, c;
      Normalised(p.inputs[1], H, &r);
      Normalised(p.inputs[2], W, &c);
      SinkhornTape tape;
      RecordSinkhorn(p.inputs[0], r.data(), c.data(), H, W, gamma_, unrolled_, &tape, nullptr);
      if (!tape.converged) {
        status->Set(kNotConverged,
                    "the unrolled Sinkhorn iteration stopped at unrolled_max_sweeps = " + std::to_string(tape.sweeps) +
                        " sweeps with marginal error " + FormatDouble(tape.marginal_error) +
                        ": its gradient is that of the unfinished "
                        "iteration");
      }
      SinkhornUnrolledVjp(p.inputs[0], r.data(), c.data(), gamma_, tape, p.gradient_mode.StepsOf(tape.sweeps),
                          p.grad_outputs[0], p.grad_inputs[0], x.data(), y.data());
    } else {
      TransportVjp(p.outputs[0], H, W, gamma_, p.grad_outputs[0], p.grad_inputs[0], x.data(), y.data(), status);
    }
    if (p.inputs[1] && p.grad_inputs[1]) NormalisationVjp(p.inputs[1], x, p.grad_inputs[1]);
    if (p.inputs[2] && p.grad_inputs[2]) NormalisationVjp(p.inputs[2], y, p.grad_inputs[2]);
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  // r / Σr, or uniform when r is omitted.
  static void Normalised(const double* r, int64_t n, std::vector<double>* out) {
    out->resize(n);
    if (!r) {
      std::fill(out->begin(), out->end(), 1.0 / static_cast<double>(n));
      return;
    }
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += r[i];
    for (int64_t i = 0; i < n; ++i) (*out)[i] = r[i] / sum;
  }
  // dL/dr = (x − (x·r̂) 1) / Σr for r̂ = r / Σr.
  static void NormalisationVjp(const double* r, const std::vector<double>& x, double* dr) {
    const int64_t n = static_cast<int64_t>(x.size());
    double sum = 0, dot = 0;
    for (int64_t i = 0; i < n; ++i) sum += r[i];
    for (int64_t i = 0; i < n; ++i) dot += x[i] * r[i];
    dot /= sum;
    for (int64_t i = 0; i < n; ++i) dr[i] = (x[i] - dot) / sum;
  }

  double gamma_;
  SinkhornOptions options_;
  UnrolledSinkhornOptions unrolled_;
};
DDN_REGISTER_NODE(OptimalTransportNode);

// Random costs with and without marginals, and awkward points: ties in M (equal rows, equal entries, a
// constant cost, whose plan is r cᵀ), tiny marginals (10⁻⁵ of the mass, given at a scale where the checker's
// step is relative), costs with large row and column offsets (which change nothing: P(M + a1ᵀ + 1bᵀ) = P(M)),
// and a single row. Costs are scaled by 1/γ so that γ·M stays in the range where fourth-order differences
// with the checker's step are accurate.
std::vector<CheckCase> OptimalTransportNode::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  const double scale = 1.0 / std::max(1.0, gamma_);
  auto random_cost = [&](int64_t b, int64_t h, int64_t w) {
    Tensor m({b, h, w});
    for (auto& v : m.values()) v = 2.0 * scale * rng.Normal();
    return m;
  };
  auto positive = [&](Shape shape, double level) {
    Tensor t(shape);
    for (auto& v : t.values()) v = level * rng.Uniform(0.5, 1.5);
    return t;
  };
  std::vector<CheckCase> cases;
  cases.push_back({"random", {{"M", random_cost(3, 4, 5)}}});
  cases.push_back(
      {"marginals", {{"M", random_cost(2, 5, 3)}, {"r", positive({2, 5}, 10)}, {"c", positive({2, 3}, 10)}}});

  CheckCase ties{"ties", {}};
  Tensor m = random_cost(3, 4, 4);
  for (int64_t j = 0; j < 4; ++j) m.problem(0)[4 + j] = m.problem(0)[j];                           // two equal rows
  for (int64_t k = 0; k < 16; ++k) m.problem(1)[k] = std::round(m.problem(1)[k] / scale) * scale;  // repeated values
  for (int64_t k = 0; k < 16; ++k) m.problem(2)[k] = 0.7;  // constant: P = r cᵀ
  ties.inputs = {{"M", m}, {"r", positive({3, 4}, 10)}, {"c", positive({3, 4}, 10)}};
  cases.push_back(ties);

  CheckCase tiny{"tiny_marginals", {}};
  tiny.inputs["M"] = random_cost(2, 4, 5);
  tiny.inputs["r"] = Tensor({2, 4}, {1e4, 1e4, 1e4, 1.0, 2e4, 1.0, 1.0, 1e4});
  tiny.inputs["c"] = Tensor({2, 5}, {1e4, 1.0, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4});
  cases.push_back(tiny);

  CheckCase offsets{"row_column_offsets", {}};
  Tensor mo = random_cost(2, 3, 4);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) mo.problem(b)[i * 4 + j] += scale * (20.0 * i - 30.0 * j);
  offsets.inputs = {{"M", mo}, {"c", positive({2, 4}, 10)}};
  cases.push_back(offsets);

  cases.push_back({"single_row", {{"M", random_cost(2, 1, 4)}, {"c", positive({2, 4}, 10)}}});
  return cases;
}

}  // namespace
}  // namespace ddn::alignment
