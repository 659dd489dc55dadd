// `ddn eval [FILE|-]`: one JSON request in, one JSON result out (docs/design.md §2; format in json_io.h).
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "apps/ddn/cli_util.h"
#include "apps/ddn/command.h"
#include "apps/ddn/json_io.h"
#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/params.h"
#include "ddn/strings.h"

namespace po = boost::program_options;

namespace ddn::cli {
namespace {

// grad_outputs must name outputs and have their shapes; checked before the (possibly long) forward
// solve so that a bad request never costs a solve and never exits 1 for what is a bad input.
void CheckGradOutputs(const Node& node, const TensorMap& inputs, const TensorMap& grad_outputs) {
  Dims dims;
  const int64_t batch = ValidateInputs(node, inputs, &dims);
  const NodeSpec& spec = node.spec();
  for (const auto& [name, g] : grad_outputs) {
    const int o = spec.OutputIndex(name);
    if (o < 0) {
      const std::string known = Join(spec.outputs, ", ", [](const TensorSpec& out) { return out.name; });
      throw InvalidInput("grad_outputs names " + QuoteForMessage(name) + ", which is not an output of node '" +
                         spec.name + "' (outputs: " + known + ")");
    }
    Shape want{batch};
    for (const auto& d : spec.outputs[o].dims) {
      want.push_back(!d.empty() && std::isdigit(static_cast<unsigned char>(d[0])) ? std::stoll(d) : dims.at(d));
    }
    if (g.shape() != want) {
      throw InvalidInput("grad_outputs '" + name + "' must have the shape of output '" + name + "' " +
                         BatchShapeString(spec.outputs[o].dims) + " = " + ShapeString(want) + ", got " +
                         ShapeString(g.shape()));
    }
  }
}

int RunEval(int argc, char** argv) {
  return RunGuarded("eval", [&]() {
    po::options_description options("Options");
    RunOptions run;
    std::string file = "-";
    options.add_options()("help,h", "show this help");
    AddRunOptions(&options, &run);
    std::vector<std::string> solver_args;
    AddSolverOptions(&options, &solver_args);
    po::options_description hidden;
    hidden.add_options()("file", po::value<std::string>(&file), "request file");
    po::options_description all;
    all.add(options).add(hidden);
    po::positional_options_description positional;
    positional.add("file", 1);
    po::variables_map vm;
    ParseCommandLine(argc, argv, all, positional, &vm);
    if (vm.count("help")) {
      PrintHelp("ddn eval [FILE|-] [--threads N] [--generic] [--solver KEY=VALUE ...]",
                "Reads one JSON request from FILE (default -, stdin) and writes one JSON result on stdout.\n"
                "  request: {\"node\": NAME, \"params\": {...}, \"inputs\": {NAME: nested array, ...},\n"
                "            \"grad_outputs\": {NAME: nested array, ...}}   (params, grad_outputs optional)\n"
                "  result:  {\"outputs\": {...}, \"grad_inputs\": {...}, \"status\": [{\"ok\", \"flags\",\n"
                "            \"residual\", \"iterations\", \"note\"}, ...]}\n"
                "Arrays are batch-first nested arrays (see `ddn nodes` for shapes). grad_inputs (dL/dx for\n"
                "each differentiable input given) is present when grad_outputs (dL/dy) is given; outputs\n"
                "missing from grad_outputs count as zero. Numbers are printed so that they parse back to\n"
                "the same doubles. status has one entry per batch element.\n"
                "Exit 0 ok; 2 bad request (one line on stderr naming the problem); 1 numerical failure.",
                options);
      return kExitOk;
    }
    CheckRunOptions(run);
    const RequestJson request = ParseJson(ReadTextFile(file, "request file"));
    const RequestHeader header = ParseRequestHeader(request);
    CheckParamTypes(request, GetNodeSpec(header.node));
    const auto node = MakeNode(header.node, header.params);
    ApplySolverOptions(node.get(), solver_args);
    const RequestTensors tensors = ParseRequestTensors(request);
    CheckGradOutputs(*node, tensors.inputs, tensors.grad_outputs);
    ForwardResult forward = Forward(*node, tensors.inputs, run);
    TensorMap grads;
    if (tensors.has_grad_outputs) {
      grads = Backward(*node, tensors.inputs, forward.outputs, tensors.grad_outputs, &forward.status, run);
    }
    const Json result = ResultToJson(forward, tensors.has_grad_outputs ? &grads : nullptr);
    std::cout << result.dump() << std::endl;
    return kExitOk;
  });
}

}  // namespace
}  // namespace ddn::cli

DDN_REGISTER_COMMAND(eval, "eval", "evaluate one JSON request: outputs, gradients (VJP) and per-problem status",
                     ddn::cli::RunEval);
