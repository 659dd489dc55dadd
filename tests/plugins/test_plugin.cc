// A plugin for the tests (tests/plugins/CMakeLists.txt builds it as libddn_test_plugin.so with
// ddn_add_node_library(... PLUGIN ...)): two nodes that the `ddn` tool and the Python module only know after
// loading it.
//
//   plugin_log_cosh_mean  y = argmin_y Σ_i s² log cosh((y − x_i)/s): a smooth robust mean written as a
//                         declarative node (objective only: the generic Ceres solve and implicit backward).
//                         f is strictly convex (f'' = Σ_i sech²((y − x_i)/s) > 0), so y is unique.
//   plugin_identity       y = x, after sleeping `milliseconds` per problem (a test sees whether the Python
//                         module releases its interpreter lock while a node runs); with `fail` = true the
//                         solve throws ddn::NumericalFailure (a test sees how a numerical failure reaches
//                         the caller).
#include <chrono>
#include <thread>

#include "ddn/declarative.h"

namespace {

class LogCoshMean : public ddn::DeclarativeNode<LogCoshMean> {
 public:
  static ddn::NodeSpec Spec() {
    return {"plugin_log_cosh_mean",
            "y = argmin Σ_i s² log cosh((y − x_i)/s) (a test plugin's node)",
            {{"scale", ddn::ParamType::kFloat, "1", "scale s > 0"}},
            {{"x", {"N"}, "points"}},
            {{"y", {}, "the log-cosh mean"}}};
  }
  explicit LogCoshMean(const ddn::Params& p) : scale_(p.RequirePositive("scale")) {}

  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const ddn::Args<T>& in, const T* y) const {
    using std::abs;
    using std::exp;
    using std::log;
    const T s = ddn::Constant<T>(scale_);
    const T z = abs((y[0] - in[0][0]) / s);
    // log cosh z = |z| + log(1 + e^{−2|z|}) − log 2, without overflow for large |z|.
    return s * s *
           (z + log(ddn::Constant<T>(1.0) + exp(ddn::Constant<T>(-2.0) * z)) - ddn::Constant<T>(0.6931471805599453));
  }
  void InitialGuess(const ddn::ProblemData& p, double* y) const {
    double sum = 0;
    for (int64_t i = 0; i < p.InputSize(0); ++i) sum += p.inputs[0][i];
    y[0] = sum / static_cast<double>(p.InputSize(0));
  }

 private:
  double scale_;
};
DDN_REGISTER_NODE(LogCoshMean);

class Identity : public ddn::Node {
 public:
  static ddn::NodeSpec Spec() {
    return {"plugin_identity",
            "y = x, after a pause or with a failure on request (a test plugin's node)",
            {{"milliseconds", ddn::ParamType::kInt, "0", "sleep per problem, 0 to 10000"},
             {"fail", ddn::ParamType::kBool, "false", "throw NumericalFailure instead of solving"}},
            {{"x", {"N"}, "values"}},
            {{"y", {"N"}, "the same values"}}};
  }
  explicit Identity(const ddn::Params& p)
      : ddn::Node(Spec()), milliseconds_(p.RequireIntInRange("milliseconds", 0, 10000)), fail_(p.GetBool("fail")) {}

  void Solve(const ddn::ProblemData& p, ddn::ProblemStatus* status) const override {
    if (fail_) throw ddn::NumericalFailure("plugin_identity failed as asked (fail = true)");
    std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds_));
    for (int64_t i = 0; i < p.InputSize(0); ++i) p.outputs[0][i] = p.inputs[0][i];
    status->residual = 0;
  }
  void Backward(const ddn::ProblemData& p, ddn::ProblemStatus*) const override {
    for (int64_t i = 0; i < p.InputSize(0); ++i) p.grad_inputs[0][i] += p.grad_outputs[0][i];
  }

 private:
  int milliseconds_;
  bool fail_;
};
DDN_REGISTER_NODE(Identity);

}  // namespace
