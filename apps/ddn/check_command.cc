// `ddn check NODE [--param k=v ...]`: the node's backward against central finite differences of its
// forward, on the node's own random and awkward inputs (Node::CheckCases; ddn/check.h).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "apps/ddn/cli_util.h"
#include "apps/ddn/command.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/params.h"

namespace po = boost::program_options;

namespace ddn::cli {
namespace {

int RunCheck(int argc, char** argv) {
  return RunGuarded("check", [&]() {
    po::options_description options("Options");
    CheckOptions check;
    std::string node_name;
    std::vector<std::string> param_args;
    std::string seed_text = "1";
    options.add_options()("help,h", "show this help")(
        "param,p", po::value<std::vector<std::string>>(&param_args)->composing(),
        "node parameter KEY=VALUE (repeatable); unset parameters take their defaults")(
        "seed", po::value<std::string>(&seed_text)->default_value("1"), "seed of the check inputs and of v")(
        "tolerance", po::value<double>(&check.tolerance)->default_value(1e-6, "1e-6"),
        "pass if every relative error is at most this")(
        "step", po::value<double>(&check.step)->default_value(1e-4, "0.0001"),
        "finite-difference step h, relative to max(|x_j|, the input's scale in that problem)");
    AddRunOptions(&options, &check.run);
    std::vector<std::string> solver_args;
    AddSolverOptions(&options, &solver_args);
    po::variables_map vm;
    ParseNodeCommandLine(argc, argv, options, &node_name, &vm);
    if (vm.count("help")) {
      PrintHelp(
          "ddn check NODE [--param KEY=VALUE ...] [--seed S] [--tolerance T] [--step H] [--generic]"
          " [--threads N] [--solver KEY=VALUE ...]",
          "Gradient check: compares the node's backward (v^T Dy for a random v) with fourth-order\n"
          "central finite differences of its forward solve, on the node's random and awkward inputs\n"
          "(ties, constraint boundaries, near-singular Hessians). Prints one line per case and input\n"
          "(worst relative error ||g - g_fd|| / max(||g||, ||g_fd||), its batch element, status\n"
          "flags) and the worst relative error overall.\n"
          "Exit 0 if every error is at most the tolerance, 1 if not, 2 on a bad request.",
          options);
      return kExitOk;
    }
    if (node_name.empty()) throw InvalidInput("no node given (usage: ddn check NODE [--param KEY=VALUE ...])");
    CheckRunOptions(check.run);
    check.seed = ParseSeed(seed_text, "--seed");
    if (!(check.tolerance > 0) || !std::isfinite(check.tolerance)) {
      throw InvalidInput("--tolerance must be a finite number > 0, got " + FormatDouble(check.tolerance));
    }
    if (!(check.step > 0 && check.step < 1))
      throw InvalidInput("--step must be in (0, 1), got " + FormatDouble(check.step));
    const auto params = ParseParamAssignments(param_args);
    const auto node = MakeNode(node_name, params);
    ApplySolverOptions(node.get(), solver_args);
    std::string given;
    for (const auto& [k, v] : params) given += (given.empty() ? "" : ", ") + k + "=" + v;
    const CheckReport report = CheckGradients(*node, check);  // prints nothing if it throws
    std::cout << "gradient check of node '" << node_name << "'" << (given.empty() ? "" : " (" + given + ")")
              << (check.run.generic ? ", generic path" : "") << ", seed " << check.seed << ", tolerance "
              << FormatDouble(check.tolerance) << "\n";
    std::cout << report.ToString() << std::flush;
    if (!report.passed) {
      char line[160];
      std::snprintf(line, sizeof line, "worst relative error %.3e is above the tolerance %.3e", report.max_rel_error,
                    check.tolerance);
      std::cerr << "ddn check: " << node_name << ": " << line << std::endl;
      return kExitNumericalFailure;
    }
    return kExitOk;
  });
}

}  // namespace
}  // namespace ddn::cli

DDN_REGISTER_COMMAND(check, "check", "check a node's gradients against central finite differences", ddn::cli::RunCheck);
