// A user-defined bi-level problem in a few lines: the README's example, compiled and checked. The inner
// problem is a declarative node (1-D signal denoising with a smoothed total-variation regulariser whose
// weight λ is an input); the outer loss is the mean squared error against the clean signal.
#include "bilevel/node_problem.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ddn/check.h"
#include "ddn/declarative.h"
#include "ddn/error.h"
#include "ddn/random.h"

namespace {

// ---- README example begins ----
// y(x, λ) = argmin_y Σ_i ½(y_i − x_i)² + λ Σ_i √(ε² + (y_{i+1} − y_i)²)
class SmoothSignal : public ddn::DeclarativeNode<SmoothSignal> {
 public:
  static ddn::NodeSpec Spec() {
    return {"smooth_signal",
            "1-D smoothed-TV denoising",
            {},
            {{"x", {"N"}, "noisy signal", /*differentiable=*/false}, {"lambda", {}, "regularisation weight"}},
            {{"y", {"N"}, "denoised signal"}}};
  }
  explicit SmoothSignal(const ddn::Params&) {}
  template <typename T>
  T Objective(const ddn::Args<T>& in, const T* y) const {
    using std::sqrt;
    const T* x = in[0];
    T f = ddn::Constant<T>(0.0), tv = ddn::Constant<T>(0.0);
    for (int64_t i = 0; i < in.size(0); ++i) f += ddn::Constant<T>(0.5) * (y[i] - x[i]) * (y[i] - x[i]);
    for (int64_t i = 0; i + 1 < in.size(0); ++i) {
      const T d = y[i + 1] - y[i];
      tv += sqrt(ddn::Constant<T>(1e-4) + d * d);
    }
    return f + in[1][0] * tv;
  }
  void InitialGuess(const ddn::ProblemData& p, double* y) const {
    for (int64_t i = 0; i < p.InputSize(0); ++i) y[i] = p.inputs[0][i];
  }
};

// Learns λ so that the denoised signal is closest to the clean one.
ddn::bilevel::OptimizeResult LearnLambda(const Eigen::VectorXd& clean, const Eigen::VectorXd& noisy) {
  const auto n = noisy.size();
  ddn::bilevel::NodeProblem problem(
      std::make_unique<SmoothSignal>(ddn::Params("smooth_signal", SmoothSignal::Spec().params, {})),
      {{"x", ddn::Tensor({1, n}, std::vector<double>(noisy.data(), noisy.data() + n))},
       {"lambda", ddn::Tensor({1}, {0.1})}},
      {"lambda"}, [&](const Eigen::VectorXd& y, Eigen::VectorXd* grad) {
        if (grad) *grad = 2.0 * (y - clean) / double(n);
        return (y - clean).squaredNorm() / double(n);
      });
  return ddn::bilevel::Optimize(&problem);
}
// ---- README example ends ----

void Signals(Eigen::VectorXd* clean, Eigen::VectorXd* noisy) {
  const int n = 24;
  clean->resize(n);
  noisy->resize(n);
  ddn::Rng rng(5);
  for (int i = 0; i < n; ++i) {
    (*clean)[i] = i < 8 ? 0.0 : (i < 16 ? 1.0 : 0.4);
    (*noisy)[i] = (*clean)[i] + 0.2 * rng.Normal();
  }
}

ddn::bilevel::NodeProblem MakeProblem(const Eigen::VectorXd& clean, const Eigen::VectorXd& noisy) {
  const auto n = noisy.size();
  return ddn::bilevel::NodeProblem(
      std::make_unique<SmoothSignal>(ddn::Params("smooth_signal", SmoothSignal::Spec().params, {})),
      {{"x", ddn::Tensor({1, n}, std::vector<double>(noisy.data(), noisy.data() + n))},
       {"lambda", ddn::Tensor({1}, {0.1})}},
      {"lambda"}, [clean, n](const Eigen::VectorXd& y, Eigen::VectorXd* grad) {
        if (grad) *grad = 2.0 * (y - clean) / double(n);
        return (y - clean).squaredNorm() / double(n);
      });
}

TEST(NodeProblem, HypergradientMatchesFiniteDifferences) {
  Eigen::VectorXd clean, noisy;
  Signals(&clean, &noisy);
  auto problem = MakeProblem(clean, noisy);
  for (double lambda : {0.02, 0.15, 0.6}) {
    const ddn::bilevel::Evaluation e = ddn::bilevel::Evaluate(&problem, Eigen::VectorXd::Constant(1, lambda));
    auto loss = [&](double log_lambda) {
      ddn::ProblemStatus s;
      problem.SolveInner(Eigen::VectorXd::Constant(1, std::exp(log_lambda)), &s);
      return problem.OuterLoss(nullptr);
    };
    const double x = std::log(lambda), h = 1e-3;
    const double fd = ddn::CentralDifference(loss(x + 2 * h), loss(x + h), loss(x - h), loss(x - 2 * h), h);
    EXPECT_LE(std::abs(e.grad_log[0] - fd), 1e-6 * std::max(std::abs(fd), 1e-10))
        << "lambda " << lambda << ": implicit " << e.grad_log[0] << " vs finite differences " << fd;
  }
}

TEST(NodeProblem, ReadmeExampleLearnsLambda) {
  Eigen::VectorXd clean, noisy;
  Signals(&clean, &noisy);
  const ddn::bilevel::OptimizeResult r = LearnLambda(clean, noisy);
  const double noisy_mse = (noisy - clean).squaredNorm() / double(noisy.size());
  EXPECT_LT(r.loss, 0.6 * noisy_mse);  // about half the noise energy removed
  auto problem = MakeProblem(clean, noisy);
  const ddn::bilevel::GridResult g = ddn::bilevel::GridSearch(&problem, 60, 1e-3, 10.0);
  EXPECT_LE(r.loss, g.best_loss * (1 + 5e-4)) << "lambda " << r.theta[0] << " vs grid " << g.best_value;
}

TEST(NodeProblem, RejectsBadHyperparameters) {
  Eigen::VectorXd clean, noisy;
  Signals(&clean, &noisy);
  auto make = [&](const std::string& name) {
    ddn::bilevel::NodeProblem p(
        std::make_unique<SmoothSignal>(ddn::Params("smooth_signal", SmoothSignal::Spec().params, {})),
        {{"x", ddn::Tensor({1, 3}, {1, 2, 3})}, {"lambda", ddn::Tensor({1}, {0.1})}}, {name},
        [](const Eigen::VectorXd&, Eigen::VectorXd*) { return 0.0; });
  };
  EXPECT_THROW(make("x"), ddn::InvalidInput);      // not differentiable
  EXPECT_THROW(make("sigma"), ddn::InvalidInput);  // no such input
}

}  // namespace
