// Write your own node: a robust (Cauchy) line fit through 2-D points, in the way the README explains.
//
// y = (a, b) = argmin_{a,b} Σ_i ½ log(1 + (b + a·u_i − v_i)²)
//
// The objective is written once as a template over the scalar type; ddn supplies the Ceres forward
// solve, the exact implicit backward (nested Jets), batching and the gradient checker. This program
// registers the node, fits a batch of lines, back-propagates a gradient and checks it against finite
// differences; it is built and run (as a test) with the project.
#include <cmath>
#include <cstdio>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/conformance.h"
#include "ddn/declarative.h"

class CauchyLineFit : public ddn::DeclarativeNode<CauchyLineFit> {
 public:
  static ddn::NodeSpec Spec() {
    return {"cauchy_line_fit",
            "robust line v = a·u + b through points (u_i, v_i)",
            {{"scale", ddn::ParamType::kFloat, "1", "Cauchy scale c > 0"}},
            {{"points", {"N", "2"}, "points (u_i, v_i)"}},
            {{"line", {"2"}, "slope a and intercept b"}}};
  }
  explicit CauchyLineFit(const ddn::Params& p) : scale_(p.RequirePositive("scale")) {}

  static constexpr const char* kTermAxis = "N";  // one term per point: in[0] points at (u_i, v_i)
  template <typename T>
  T Term(const ddn::Args<T>& in, const T* line) const {
    using std::log;
    const T r = (line[1] + line[0] * in[0][0] - in[0][1]) / ddn::Constant<T>(scale_);
    return ddn::Constant<T>(0.5 * scale_ * scale_) * log(ddn::Constant<T>(1.0) + r * r);
  }
  // The Cauchy loss is not convex: the generic solve's answers are local minima (flagged not_certified).
  bool IsConvex(const ddn::ProblemData&) const { return false; }

 private:
  double scale_;
};
DDN_REGISTER_NODE(CauchyLineFit);

int main() {
  auto node = ddn::MakeNode("cauchy_line_fit", {{"scale", "0.5"}});
  // Two problems of 6 points each on v = 2u + 1 (the first) and v = −u (the second), one outlier each.
  ddn::Tensor points({2, 6, 2}, {0, 1, 1, 3,  2, 5,  3, 7,  4, 9,  5, -20,  //
                                 0, 0, 1, -1, 2, -2, 3, -3, 4, 30, 5, -5});
  const ddn::ForwardResult fwd = ddn::Forward(*node, {{"points", points}});
  const ddn::Tensor& line = fwd.outputs.at("line");
  for (int b = 0; b < 2; ++b) {
    std::printf("problem %d: slope %.6f intercept %.6f (residual %.1e)\n", b, line.problem(b)[0], line.problem(b)[1],
                fwd.status[b].residual);
  }
  // d(slope of problem 0)/d(points).
  std::vector<ddn::ProblemStatus> status = fwd.status;
  const ddn::TensorMap grad =
      ddn::Backward(*node, {{"points", points}}, fwd.outputs, {{"line", ddn::Tensor({2, 2}, {1, 0, 0, 0})}}, &status);
  std::printf("d slope / d v_0 = %.6f\n", grad.at("points").problem(0)[1]);

  const ddn::CheckReport report = ddn::CheckGradients(*node);
  std::printf("%s", report.ToString().c_str());
  // Everything the built-in nodes are held to, in one line (ddn/conformance.h): gradients, bad input, threads,
  // and the engine's scale invariance (the fit is covariant in the points and the Cauchy scale).
  ddn::ConformanceOptions covariant;
  covariant.covariant_inputs = {"points"};
  covariant.covariant_params = {"scale"};
  const ddn::ConformanceReport conformance = ddn::RunConformance("cauchy_line_fit", {{"scale", "0.5"}}, covariant);
  std::printf("conformance: %s", conformance.ToString().c_str());
  const bool fits = std::abs(line.problem(0)[0] - 2) < 0.05 && std::abs(line.problem(1)[0] + 1) < 0.05;
  return report.passed && fits && conformance.passed ? 0 : 1;
}
