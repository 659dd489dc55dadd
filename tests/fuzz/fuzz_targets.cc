#include "tests/fuzz/fuzz_targets.h"

#include <cmath>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "apps/ddn/json_io.h"
#include "datasets/csv.h"
#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/gradient_mode.h"
#include "ddn/node.h"
#include "ddn/params.h"

namespace ddn::fuzz {
namespace {

// The weighted mean y = Σ w_i x_i / Σ w_i of N points in R^D (w ≥ 0, not all zero): a node that every build of
// the fuzz targets has, so that requests reach Forward and Backward without the (Ceres-heavy) node families.
class FuzzPool : public Node {
 public:
  static NodeSpec Spec() {
    NodeSpec s;
    s.name = "fuzz_pool";
    s.summary = "fuzz targets only: weighted mean of N points";
    s.params = {{"scale", ParamType::kFloat, "1", "multiplies y", {}},
                {"flag", ParamType::kBool, "false", "sets kNonUnique", {}}};
    s.inputs = {{"x", {"N", "D"}, "points", true, false}, {"w", {"N"}, "weights >= 0", false, true, true}};
    s.outputs = {{"y", {"D"}, "weighted mean", true, false}};
    return s;
  }
  explicit FuzzPool(const Params& p) : Node(Spec()), scale_(p.GetDouble("scale")), flag_(p.GetBool("flag")) {}

  void Validate(const ProblemData& p) const override {
    if (!p.inputs[1]) return;
    double total = 0;
    for (int64_t i = 0; i < p.InputSize(1); ++i) {
      if (!(p.inputs[1][i] >= 0)) throw InvalidInput("input 'w' must be >= 0");
      total += p.inputs[1][i];
    }
    if (!(total > 0) || !std::isfinite(total)) throw InvalidInput("input 'w' must have a positive finite sum");
  }
  void Solve(const ProblemData& p, ProblemStatus* status) const override {
    const int64_t n = p.input_shapes[0][0], d = p.input_shapes[0][1];
    double total = 0;
    for (int64_t k = 0; k < d; ++k) p.outputs[0][k] = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double w = p.inputs[1] ? p.inputs[1][i] : 1.0;
      total += w;
      for (int64_t k = 0; k < d; ++k) p.outputs[0][k] += w * p.inputs[0][i * d + k];
    }
    for (int64_t k = 0; k < d; ++k) p.outputs[0][k] *= scale_ / total;
    status->residual = 0;
    if (flag_) status->Set(kNonUnique, "flagged as asked");
  }
  void Backward(const ProblemData& p, ProblemStatus*) const override {
    const int64_t n = p.input_shapes[0][0], d = p.input_shapes[0][1];
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += p.inputs[1] ? p.inputs[1][i] : 1.0;
    for (int64_t i = 0; i < n; ++i) {
      const double w = p.inputs[1] ? p.inputs[1][i] : 1.0;
      for (int64_t k = 0; k < d; ++k) p.grad_inputs[0][i * d + k] += scale_ * w / total * p.grad_outputs[0][k];
    }
  }

 private:
  double scale_;
  bool flag_;
};
DDN_REGISTER_NODE(FuzzPool);

// "" if `message` is one line of at most 4096 bytes, else what is wrong with it.
std::string CheckMessage(const char* kind, const std::string& message) {
  if (message.find('\n') != std::string::npos) return std::string(kind) + " message spans several lines: " + message;
  if (message.size() > 4096) return std::string(kind) + " message of " + std::to_string(message.size()) + " bytes";
  return "";
}

template <class Body>
std::string Guarded(Body body) {
  try {
    body();
  } catch (const InvalidInput& e) {
    return CheckMessage("InvalidInput", e.what());
  } catch (const NumericalFailure& e) {
    return CheckMessage("NumericalFailure", e.what());
  } catch (const std::bad_alloc&) {
    return "std::bad_alloc escaped (a size was not bounded)";
  } catch (const std::exception& e) {
    return std::string("unexpected exception: ") + e.what();
  } catch (...) {
    return "unexpected non-standard exception";
  }
  return "";
}

}  // namespace

std::string FuzzEvalRequest(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return Guarded([&] {
    using namespace ddn::cli;
    const RequestJson request = ParseJson(text);
    const RequestHeader header = ParseRequestHeader(request);
    CheckParamTypes(request, GetNodeSpec(header.node));
    const auto node = MakeNode(header.node, header.params);
    const RequestTensors tensors = ParseRequestTensors(request);
    int64_t numbers = 0;
    for (const auto& [name, t] : tensors.inputs) numbers += t.size();
    for (const auto& [name, t] : tensors.grad_outputs) numbers += t.size();
    if (numbers > 4096) return;  // bounded work per input
    // Iteration budgets are honoured as given, up to the node's own bound (1e4 for qp, 1e5 for deq_tanh): a
    // budget above 1000 on a problem that does not converge is slow by request, not a hang. Such inputs stop
    // after construction.
    const auto budget = header.params.find("max_iterations");
    if (budget != header.params.end() && (budget->second.size() > 4 || std::atof(budget->second.c_str()) > 1000)) {
      return;
    }
    RunOptions run;
    run.threads = 1;
    ForwardResult forward = Forward(*node, tensors.inputs, run);
    TensorMap grads;
    if (tensors.has_grad_outputs) {
      // Nodes with an iterative forward (qp, deq_tanh) also differentiate through their iterations: one of the
      // other modes too, chosen by the input's size (deterministic for a given input).
      if (node->HasIterativeForward()) {
        static const char* const kModes[] = {"unrolled", "truncated:1", "truncated:3"};
        RunOptions other = run;
        other.backward = GradientMode::Parse(kModes[size % 3]);
        std::vector<ProblemStatus> status = forward.status;
        Backward(*node, tensors.inputs, forward.outputs, tensors.grad_outputs, &status, other);
      }
      grads = Backward(*node, tensors.inputs, forward.outputs, tensors.grad_outputs, &forward.status, run);
    }
    // No NaN or Inf escapes: a forward or backward that returns is finite (ddn::Forward and ddn::Backward turn
    // a non-finite answer into NumericalFailure).
    for (const TensorMap* map : {&forward.outputs, &grads}) {
      for (const auto& [name, t] : *map) {
        for (int64_t i = 0; i < t.size(); ++i) {
          if (!std::isfinite(t.data()[i])) throw std::logic_error("non-finite value in '" + name + "' returned");
        }
      }
    }
    const std::string result = ResultToJson(forward, tensors.has_grad_outputs ? &grads : nullptr).dump();
    if (result.empty()) throw std::logic_error("empty result");
  });
}

std::string FuzzCsv(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return Guarded([&] {
    const datasets::CsvTable table = datasets::ParseCsv(text, "fuzz.csv");
    if (table.values.rows() != static_cast<Eigen::Index>(table.lines.size()) ||
        table.values.cols() != static_cast<Eigen::Index>(table.columns.size())) {
      throw std::logic_error("table sizes disagree");
    }
    const datasets::Dataset train = datasets::SplitTarget(table, table.columns.back());
    datasets::Dataset val = train;
    datasets::AlignColumns(train, &val);
  });
}

}  // namespace ddn::fuzz
