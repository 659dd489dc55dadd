// An out-of-tree node: y = argmin_y Σ_i ½(y − x_i)² + ½λy², i.e. y = Σ_i x_i / (N + λ), the mean shrunk
// towards 0 by a ridge term λ ≥ 0. Closed-form forward and backward (dy/dx_i = 1/(N + λ)), written against
// ddn::Node directly, so that the test builds in seconds (a DeclarativeNode's nested Jets compile slowly).
#include "ddn/node.h"

namespace {

class ShrunkMean : public ddn::Node {
 public:
  static ddn::NodeSpec Spec() {
    return {"clipped_mean",
            "y = Σ_i x_i / (N + λ): the mean shrunk towards 0 (a downstream project's node)",
            {{"lambda", ddn::ParamType::kFloat, "1", "ridge weight λ ≥ 0"}},
            {{"x", {"N"}, "points"}},
            {{"y", {}, "the shrunk mean"}}};
  }
  explicit ShrunkMean(const ddn::Params& p) : ddn::Node(Spec()), lambda_(p.RequireNonNegative("lambda")) {}

  void Solve(const ddn::ProblemData& p, ddn::ProblemStatus* status) const override {
    double sum = 0;
    for (int64_t i = 0; i < p.InputSize(0); ++i) sum += p.inputs[0][i];
    p.outputs[0][0] = sum / (static_cast<double>(p.InputSize(0)) + lambda_);
    status->residual = 0;
  }
  void Backward(const ddn::ProblemData& p, ddn::ProblemStatus*) const override {
    const double g = p.grad_outputs[0][0] / (static_cast<double>(p.InputSize(0)) + lambda_);
    for (int64_t i = 0; i < p.InputSize(0); ++i) p.grad_inputs[0][i] += g;
  }

 private:
  double lambda_;
};
DDN_REGISTER_NODE(ShrunkMean);

}  // namespace
