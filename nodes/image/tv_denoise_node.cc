// The node tv_denoise: total-variation denoising of a grey image (R × C pixels) as a declarative node,
//
//   u = argmin_u ½‖u − g‖² + λ Σ_p √(ε² + (D_x u)_p² + (D_y u)_p²)      (tv_denoise.h has the math)
//
// with the noisy image g and the weight λ > 0 differentiable inputs (the bi-level problem `ddn bilevel tv-denoise`
// learns λ through it) and the smoothing ε a parameter. Forward: TvDenoiser's Newton solve on the sparse Hessian,
// from g. Backward: the implicit function theorem with the same sparse H: dL/dg = H⁻¹v, dL/dλ = −∇TV(u)ᵀH⁻¹v.
// The declarative form (the whole objective, taped: exact sparse Hessians by edge pushing) gives the generic
// engine's forward and backward to compare with (`ddn eval --generic`, the tests, the conformance suite).
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ddn/declarative.h"
#include "ddn/random.h"
#include "nodes/image/tv_denoise.h"

namespace ddn::image {
namespace {

constexpr const char* kName = "tv_denoise";

std::vector<TensorSpec> Inputs() {
  return {{"g", {"R", "C"}, "noisy grey image (row-major, intensities of any scale)"},
          {"lambda", {}, "weight λ > 0 of the total variation", true, false, true}};
}
std::vector<TensorSpec> Outputs() {
  return {{"u", {"R", "C"}, "the denoised image"}};
}

// The declarative form (generic path only): the whole objective.
class TvDenoiseForm : public DeclarativeNode<TvDenoiseForm> {
 public:
  static NodeSpec Spec() { return {kName, "declarative form", {}, Inputs(), Outputs()}; }
  explicit TvDenoiseForm(double epsilon) : epsilon_(epsilon) {}

  template <typename T>
  T Objective(const Args<T>& in, const T* u) const {
    using std::sqrt;
    const int64_t rows = in.Dim("R"), cols = in.Dim("C");
    const T eps2 = Constant<T>(epsilon_ * epsilon_);
    T data = Constant<T>(0.0), tv = Constant<T>(0.0);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t p = i * cols + j;
        const T r = u[p] - in[0][p];
        data += r * r;
        T sq = eps2;
        if (j + 1 < cols) {
          const T dx = u[p + 1] - u[p];
          sq += dx * dx;
        }
        if (i + 1 < rows) {
          const T dy = u[p + cols] - u[p];
          sq += dy * dy;
        }
        tv += sqrt(sq);
      }
    }
    return Constant<T>(0.5) * data + in[1][0] * tv;
  }
  void InitialGuess(const ProblemData& p, double* u) const { std::copy(p.inputs[0], p.inputs[0] + p.InputSize(0), u); }

 private:
  double epsilon_;
};

class TvDenoiseNode : public Node {
 public:
  static NodeSpec Spec() {
    return {kName,
            "total-variation denoising u = argmin ½‖u − g‖² + λ Σ √(ε² + |∇u|²) (forward differences)",
            {{"epsilon", ParamType::kFloat, "0.01", "smoothing ε > 0 of the total variation"}},
            Inputs(),
            Outputs()};
  }
  explicit TvDenoiseNode(const Params& p) : Node(Spec()), epsilon_(p.RequirePositive("epsilon")), form_(epsilon_) {}

  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    const double lambda = Lambda(p);
    TvDenoiser denoiser(static_cast<int>(p.Dim("R")), static_cast<int>(p.Dim("C")), epsilon_);
    const Eigen::VectorXd g = Image(p);
    Eigen::VectorXd u = g;
    s->residual = 0;
    s->iterations = 0;
    denoiser.Solve(g, lambda, &u, "node 'tv_denoise'", s);
    std::copy(u.data(), u.data() + u.size(), p.outputs[0]);
  }

  void Backward(const ProblemData& p, ProblemStatus*) const override {
    const double lambda = Lambda(p);
    const int64_t N = p.InputSize(0);
    TvDenoiser denoiser(static_cast<int>(p.Dim("R")), static_cast<int>(p.Dim("C")), epsilon_);
    const Eigen::VectorXd u = Eigen::Map<const Eigen::VectorXd>(p.outputs[0], N);
    denoiser.Factorize(u, lambda, "node 'tv_denoise'");
    const Eigen::VectorXd q =
        denoiser.SolveHessian(Eigen::Map<const Eigen::VectorXd>(p.grad_outputs[0], N), "node 'tv_denoise'");
    if (double* dg = p.grad_inputs[0]) std::copy(q.data(), q.data() + N, dg);
    if (double* dlambda = p.grad_inputs[1]) dlambda[0] = -denoiser.TvGradient(u).dot(q);
  }
  bool BackwardAssigns() const override { return true; }

  bool HasGenericPath() const override { return true; }
  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override {
    Lambda(p);
    form_.GenericSolve(p, s);
  }
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override { form_.GenericBackward(p, s); }
  void SetSolverOption(const std::string& key, const std::string& value) override { form_.SetSolverOption(key, value); }
  std::vector<std::string> SolverOptions() const override { return form_.SolverOptions(); }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  static Eigen::VectorXd Image(const ProblemData& p) {
    return Eigen::Map<const Eigen::VectorXd>(p.inputs[0], p.InputSize(0));
  }
  static double Lambda(const ProblemData& p) {
    const double lambda = p.inputs[1][0];
    if (!(lambda > 0)) throw InvalidInput("node 'tv_denoise': lambda must be > 0, got " + FormatDouble(lambda));
    return lambda;
  }

  double epsilon_;
  TvDenoiseForm form_;
};

std::vector<CheckCase> TvDenoiseNode::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  const int64_t B = 2, R = 6, C = 7;
  auto lambda = [](double value) {
    Tensor t({B});
    for (auto& v : t.values()) v = value;
    return t;
  };
  std::vector<CheckCase> cases;
  {
    // A smooth ramp with noise.
    Tensor g({B, R, C});
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t p = 0; p < R * C; ++p) {
        g.problem(b)[p] = 0.5 + 0.05 * static_cast<double>(p / C + p % C) + 0.1 * rng.Normal();
      }
    }
    cases.push_back({"random", {{"g", g}, {"lambda", lambda(0.1)}}});
  }
  {
    // A step edge (differences far above ε: the regulariser's linear zone) with little noise, strong weight.
    Tensor g({B, R, C});
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t p = 0; p < R * C; ++p) g.problem(b)[p] = (p % C < 3 ? 0.2 : 0.8) + 0.02 * rng.Normal();
    }
    cases.push_back({"step_edge", {{"g", g}, {"lambda", lambda(0.3)}}});
  }
  {
    // Nearly flat (differences below ε: ψ's curved zone), weak weight.
    Tensor g({B, R, C});
    for (auto& v : g.values()) v = 0.4 + 1e-3 * rng.Normal();
    cases.push_back({"nearly_flat", {{"g", g}, {"lambda", lambda(0.02)}}});
  }
  return cases;
}

}  // namespace
DDN_REGISTER_NODE(TvDenoiseNode);
}  // namespace ddn::image
