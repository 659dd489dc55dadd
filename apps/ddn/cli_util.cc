#include "apps/ddn/cli_util.h"

#include "ddn/error.h"
#include "ddn/parallel.h"
#include "ddn/params.h"

namespace po = boost::program_options;

namespace ddn::cli {

int RunGuarded(const std::string& command, const std::function<int()>& body) {
  return app::RunGuarded("ddn " + command, body);
}

void ParseNodeCommandLine(int argc, char** argv, const po::options_description& options, std::string* node_name,
                          po::variables_map* vm) {
  po::options_description hidden;
  hidden.add_options()("node", po::value<std::string>(node_name), "node");
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("node", 1);
  ParseCommandLine(argc, argv, all, positional, vm);
}

std::map<std::string, std::string> ParseParamAssignments(const std::vector<std::string>& assignments) {
  std::map<std::string, std::string> params;
  for (const auto& a : assignments) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw InvalidInput("--param " + QuoteForMessage(a) + " must be KEY=VALUE, e.g. --param alpha=0.5");
    }
    const std::string key = a.substr(0, eq);
    if (params.count(key)) throw InvalidInput("--param " + QuoteForMessage(key) + " is given twice");
    params[key] = a.substr(eq + 1);
  }
  return params;
}

void AddRunOptions(po::options_description* options, RunOptions* run) {
  options->add_options()("threads", po::value<int>(&run->threads)->default_value(0),
                         "threads for the batch (0: all cores); results do not depend on it")(
      "generic", po::bool_switch(&run->generic),
      "use the node's generic path (Ceres forward, implicit-function-theorem backward)")(
      "backward", po::value<std::string>()->default_value("implicit")->notifier([run](const std::string& mode) {
        run->backward = GradientMode::Parse(mode);
      }),
      "gradient mode: implicit (default), unrolled (through every iteration of the forward solve) or truncated:K "
      "(through the last K); the last two only for nodes with an iterative forward (qp, deq_tanh, optimal_transport, "
      "robust_vector_pool, generic-engine nodes, any node with --generic)");
}

void CheckRunOptions(const RunOptions& run) {
  if (run.threads < 0 || run.threads > kMaxThreads) {
    throw InvalidInput("--threads must be between 0 (all cores) and " + std::to_string(kMaxThreads) + ", got " +
                       std::to_string(run.threads));
  }
}

void AddSolverOptions(po::options_description* options, std::vector<std::string>* assignments) {
  options->add_options()(
      "solver", po::value<std::vector<std::string>>(assignments)->composing(),
      "generic-solver option KEY=VALUE (repeatable), e.g. --solver max_newton_iterations=50; keys: "
      "max_newton_iterations, max_outer_iterations, max_lbfgs_iterations, max_escapes, converged_residual, "
      "failure_residual, feasibility_tolerance, active_tolerance, degenerate_tolerance, rcond, dense_limit, "
      "objective_scale, constraint_scale (ddn/generic_solver.h)");
}

void ApplySolverOptions(Node* node, const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw InvalidInput("--solver '" + a.substr(0, 200) + "' must be KEY=VALUE, e.g. --solver rcond=1e-12");
    }
    node->SetSolverOption(a.substr(0, eq), a.substr(eq + 1));
  }
}

}  // namespace ddn::cli
