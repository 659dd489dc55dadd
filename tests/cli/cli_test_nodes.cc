// Test-only nodes for the CLI tests (tests/cli/cli_test.cc). They are linked into a test copy of the
// `ddn` binary only, never into the shipped one. Closed forms, so the tests can check exact answers:
//
//   cli_test_mean    y = argmin_y Σ_i w_i (y − x_i)²/2 + α y²/2 = Σ_i w_i x_i / (Σ_i w_i + α),
//                    x (B, N) differentiable, w (B, N) optional constant weights ≥ 0 (default 1).
//                    Parameters drive the CLI's failure paths: fail (the forward throws
//                    NumericalFailure), wrong_gradient (the backward is 10 % off, so `ddn check` fails),
//                    flag (every problem is flagged non_unique). Its "generic" path is the same closed
//                    form reached by one Newton step, reporting 1 iteration, so tests see --generic.
//   cli_test_vector  y = mean_i x_i, x (B, N, D) → y (B, D); no parameters, no generic path.
#include <cmath>

#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/params.h"

namespace ddn::cli_test {

class CliTestMean : public Node {
 public:
  static NodeSpec Spec() {
    return {"cli_test_mean",
            "test node: ridge-regularised weighted mean y = Σ w x / (Σ w + α)",
            {{"alpha", ParamType::kFloat, "1", "ridge weight α > 0", {}},
             {"fail", ParamType::kBool, "false", "throw NumericalFailure in the forward", {}},
             {"wrong_gradient", ParamType::kBool, "false", "scale the backward by 1.1", {}},
             {"flag", ParamType::kBool, "false", "flag every problem non_unique", {}}},
            {{"x", {"N"}, "points", true, false}, {"w", {"N"}, "weights >= 0", false, true}},
            {{"y", {}, "the regularised mean", true, false}}};
  }
  explicit CliTestMean(const Params& p)
      : Node(Spec()),
        alpha_(p.RequirePositive("alpha")),
        fail_(p.GetBool("fail")),
        wrong_(p.GetBool("wrong_gradient")),
        flag_(p.GetBool("flag")) {}

  void Validate(const ProblemData& p) const override {
    if (!p.inputs[1]) return;
    for (int64_t i = 0; i < p.InputSize(1); ++i)
      if (p.inputs[1][i] < 0) throw InvalidInput("input 'w' must be >= 0");
  }
  void Solve(const ProblemData& p, ProblemStatus* s) const override { Closed(p, s, 0); }
  bool HasGenericPath() const override { return true; }
  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override { Closed(p, s, 1); }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    const int64_t n = p.InputSize(0);
    const double denom = WeightSum(p) + alpha_;
    const double scale = (wrong_ ? 1.1 : 1.0) * p.grad_outputs[0][0] / denom;
    for (int64_t i = 0; i < n; ++i) p.grad_inputs[0][i] += scale * (p.inputs[1] ? p.inputs[1][i] : 1.0);
  }
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override { Backward(p, s); }

 private:
  double WeightSum(const ProblemData& p) const {
    double sum = 0;
    for (int64_t i = 0; i < p.InputSize(0); ++i) sum += p.inputs[1] ? p.inputs[1][i] : 1.0;
    return sum;
  }
  void Closed(const ProblemData& p, ProblemStatus* s, int iterations) const {
    if (fail_) throw NumericalFailure("cli_test_mean: failing as asked (fail=true)");
    double num = 0;
    for (int64_t i = 0; i < p.InputSize(0); ++i) num += (p.inputs[1] ? p.inputs[1][i] : 1.0) * p.inputs[0][i];
    p.outputs[0][0] = num / (WeightSum(p) + alpha_);
    s->residual = 0;
    s->iterations = iterations;
    if (flag_) s->Set(kNonUnique, "flagged as asked");
  }

  double alpha_;
  bool fail_, wrong_, flag_;
};
DDN_REGISTER_NODE(CliTestMean);

class CliTestVector : public Node {
 public:
  static NodeSpec Spec() {
    return {"cli_test_vector",
            "test node: mean of N points in R^D",
            {},
            {{"x", {"N", "D"}, "points", true, false}},
            {{"y", {"D"}, "their mean", true, false}}};
  }
  explicit CliTestVector(const Params&) : Node(Spec()) {}
  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    const int64_t n = p.Dim("N"), d = p.Dim("D");
    for (int64_t k = 0; k < d; ++k) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += p.inputs[0][i * d + k];
      p.outputs[0][k] = sum / n;
    }
  }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    const int64_t n = p.Dim("N"), d = p.Dim("D");
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < d; ++k) p.grad_inputs[0][i * d + k] += p.grad_outputs[0][k] / n;
  }
};
DDN_REGISTER_NODE(CliTestVector);

}  // namespace ddn::cli_test
