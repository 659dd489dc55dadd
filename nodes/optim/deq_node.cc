// The `deq_tanh` node: z = tanh(Wz + x), batched (nodes/optim/deq_solver.h has the math).
#include <Eigen/Core>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/optim/deq_solver.h"

namespace ddn::optim {
namespace {

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

class DeqTanhNode : public Node {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "deq_tanh";
    s.summary = "deep-equilibrium fixed point z = tanh(W z + x) (Anderson acceleration, Broyden and Picard fallbacks)";
    s.params = {{"tolerance", ParamType::kFloat, "1e-13", "forward stops at ||tanh(Wz + x) - z||_inf <= tolerance", {}},
                {"max_iterations",
                 ParamType::kInt,
                 "200",
                 "iterations per solver stage (Anderson, Broyden, damped Picard)",
                 {}},
                {"window", ParamType::kInt, "5", "Anderson memory", {}},
                {"beta", ParamType::kFloat, "1", "Anderson mixing in (0, 1]", {}},
                {"backward_solver",
                 ParamType::kChoice,
                 "auto",
                 "implicit backward: direct LU, iterative Anderson, or auto "
                 "(direct for N <= 256)",
                 {"auto", "direct", "iterative"}}};
    s.inputs = {{"x", {"N"}, "input injection", true, false},
                {"W", {"N", "N"}, "weights (||W||_2 < 1 certifies a unique fixed point)", true, false}};
    s.outputs = {{"z", {"N"}, "the fixed point", true, false}};
    return s;
  }
  explicit DeqTanhNode(const Params& p) : Node(Spec()) {
    options_.tolerance = p.RequirePositive("tolerance");
    options_.max_iterations = p.RequireIntInRange("max_iterations", 1, 100000);
    options_.window = p.RequireIntInRange("window", 1, 100);
    options_.beta = p.RequirePositive("beta");
    const std::string& solver = p.GetString("backward_solver");
    options_.backward_solver = solver == "direct"      ? DeqOptions::kDirect
                               : solver == "iterative" ? DeqOptions::kIterative
                                                       : DeqOptions::kAuto;
    try {
      options_.Validate();
    } catch (const InvalidInput& e) {
      throw InvalidInput(std::string("node 'deq_tanh': ") + e.what());
    }
  }

  bool HasIterativeForward() const override { return true; }
  bool BackwardAssigns() const override { return true; }

  void Solve(const ProblemData& p, ProblemStatus* status) const override {
    const int N = static_cast<int>(p.Dim("N"));
    const Eigen::MatrixXd W = Eigen::Map<const RowMajor>(p.inputs[1], N, N);
    const Eigen::Map<const Eigen::VectorXd> x(p.inputs[0], N);
    const DeqResult r = SolveDeq(W, x, options_);
    status->residual = r.residual;
    status->iterations = r.iterations;
    const double norm = SpectralNormEstimate(W);
    if (norm >= 1.0) {
      status->Set(kNonUnique, "no contraction certificate: ||W||_2 ~ " + FormatDouble(norm) +
                                  " >= 1, another fixed point may exist (found by " + r.solver + ")");
    }
    Eigen::Map<Eigen::VectorXd>(p.outputs[0], N) = r.z;
  }

  void Backward(const ProblemData& p, ProblemStatus* status) const override {
    const int N = static_cast<int>(p.Dim("N"));
    const Eigen::MatrixXd W = Eigen::Map<const RowMajor>(p.inputs[1], N, N);
    const Eigen::VectorXd x = Eigen::Map<const Eigen::VectorXd>(p.inputs[0], N);
    const Eigen::VectorXd v = Eigen::Map<const Eigen::VectorXd>(p.grad_outputs[0], N);
    Eigen::VectorXd xbar;
    Eigen::MatrixXd Wbar;
    if (p.gradient_mode.implicit()) {
      DeqImplicitVjp(W, x, Eigen::Map<const Eigen::VectorXd>(p.outputs[0], N), v, options_, &xbar, &Wbar, status);
    } else {
      DeqTape tape;
      SolveDeq(W, x, options_, &tape);
      DeqUnrolledVjp(W, tape, p.gradient_mode.StepsOf(static_cast<int>(tape.steps.size())), v, &xbar, &Wbar);
    }
    if (p.grad_inputs[0]) Eigen::Map<Eigen::VectorXd>(p.grad_inputs[0], N) = xbar;
    if (p.grad_inputs[1]) Eigen::Map<RowMajor>(p.grad_inputs[1], N, N) = Wbar;
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override {
    Rng rng(seed);
    std::vector<CheckCase> cases;
    // W with ‖W‖₂ ≈ `norm` (a scaled Gaussian matrix), x ~ N(0, scale²).
    auto add = [&](const std::string& name, int N, double norm, double scale) {
      const int B = 3;
      Tensor x(Shape{B, N}), W(Shape{B, N, N});
      for (int b = 0; b < B; ++b) {
        Eigen::MatrixXd M(N, N);
        for (int i = 0; i < N; ++i)
          for (int j = 0; j < N; ++j) M(i, j) = rng.Normal();
        M *= norm / SpectralNormEstimate(M);
        Eigen::Map<RowMajor>(W.problem(b), N, N) = M;
        for (int i = 0; i < N; ++i) x.problem(b)[i] = scale * rng.Normal();
      }
      cases.push_back({name, {{"x", x}, {"W", W}}});
    };
    add("random", 6, 0.5, 1.0);
    add("slow_contraction", 6, 0.95, 0.3);  // ρ(J) near 1: many iterations, I − J near-singular
    add("saturated", 5, 0.8, 4.0);          // |Wz + x| large: tanh' tiny, z near ±1
    add("non_contractive", 5, 1.5, 1.0);    // ‖W‖₂ > 1: still converges here, flagged non_unique
    return cases;
  }

 private:
  DeqOptions options_;
};
DDN_REGISTER_NODE(DeqTanhNode);

}  // namespace
}  // namespace ddn::optim
