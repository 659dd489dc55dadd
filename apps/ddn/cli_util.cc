#include "apps/ddn/cli_util.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <new>

#include "ddn/error.h"
#include "ddn/parallel.h"
#include "ddn/params.h"

namespace po = boost::program_options;

namespace ddn::cli {

std::string OneLine(const std::string& message) {
  // Messages quote what a user gave through ddn::QuoteForMessage; this is the last guard for text from
  // elsewhere (Boost's option errors echo the argument whole): other control characters become '?', and a long
  // line is cut to its first 600 and last 300 bytes (Boost names the option at the end: "the argument ('...')
  // for option '--threads' is invalid").
  std::string line = message.size() > 1000 ? message.substr(0, 600) + " ... " + message.substr(message.size() - 300)
                                            : message;
  for (char& c : line) {
    if (c == '\n' || c == '\r' || c == '\t') {
      c = ' ';
    } else if ((c >= 0 && c < 0x20) || c == 0x7F) {
      c = '?';
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line.empty() ? "unknown error" : line;
}

std::string ReadTextFile(const std::string& file, const std::string& what) {
  std::string text;
  if (file == "-") {
    std::ostringstream buffer;
    buffer << std::cin.rdbuf();
    if (std::cin.bad()) throw InvalidInput("cannot read the " + what + " from standard input");
    return buffer.str();
  }
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw InvalidInput(what + " " + QuoteForMessage(file) + " is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InvalidInput("cannot read " + what + " " + QuoteForMessage(file) + ": " + std::strerror(errno));
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) text.append(chunk, static_cast<size_t>(in.gcount()));
  if (in.bad()) throw InvalidInput("cannot read " + what + " " + QuoteForMessage(file));
  return text;
}

int RunGuarded(const std::string& command, const std::function<int()>& body) {
  const std::string prefix = "ddn " + command + ": ";
  int code = kExitOk;
  try {
    code = body();
  } catch (const InvalidInput& e) {
    std::cerr << prefix << OneLine(e.what()) << std::endl;
    code = kExitBadInput;
  } catch (const po::error& e) {
    std::cerr << prefix << OneLine(e.what()) << " (see ddn " << command << " --help)" << std::endl;
    code = kExitBadInput;
  } catch (const NumericalFailure& e) {
    std::cerr << prefix << "numerical failure: " << OneLine(e.what()) << std::endl;
    code = kExitNumericalFailure;
  } catch (const std::bad_alloc&) {
    std::cerr << prefix << "out of memory" << std::endl;
    code = kExitNumericalFailure;
  } catch (const std::exception& e) {
    std::cerr << prefix << "failure: " << OneLine(e.what()) << std::endl;
    code = kExitNumericalFailure;
  }
  return FinishStdout(prefix, code);
}

int FinishStdout(const std::string& prefix, int code) {
  errno = 0;
  std::cout.flush();
  if (std::cout || code != kExitOk) return code;
  const int error = errno;
  std::cerr << prefix << "cannot write to standard output" << (error ? std::string(": ") + std::strerror(error) : "")
            << std::endl;
  return kExitNumericalFailure;
}

void ParseCommandLine(int argc, char** argv, const po::options_description& options,
                      const po::positional_options_description& positional, po::variables_map* vm) {
  // argv[0] is the subcommand's name; command_line_parser skips it.
  po::store(po::command_line_parser(argc, argv)
                .options(options)
                .positional(positional)
                .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
                .run(),
            *vm);
  po::notify(*vm);
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

void PrintHelp(const std::string& usage, const std::string& description, const po::options_description& options) {
  std::cout << "Usage: " << usage << "\n\n" << description << "\n\n" << options << std::flush;
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
  options->add_options()
      ("threads", po::value<int>(&run->threads)->default_value(0),
       "threads for the batch (0: all cores); results do not depend on it")
      ("generic", po::bool_switch(&run->generic),
       "use the node's generic path (Ceres forward, implicit-function-theorem backward)")
      ("backward", po::value<std::string>()->default_value("implicit")->notifier([run](const std::string& mode) {
         run->backward = GradientMode::Parse(mode);
       }),
       "gradient mode: implicit (default), unrolled (through every iteration of the forward solve) or truncated:K "
       "(through the last K); the last two only for nodes with an iterative forward (qp, deq_tanh, optimal_transport, "
       "robust_vector_pool, unconstrained generic-engine nodes)");
}

void CheckRunOptions(const RunOptions& run) {
  if (run.threads < 0 || run.threads > kMaxThreads) {
    throw InvalidInput("--threads must be between 0 (all cores) and " + std::to_string(kMaxThreads) + ", got " +
                       std::to_string(run.threads));
  }
}

void AddSolverOptions(po::options_description* options, std::vector<std::string>* assignments) {
  options->add_options()
      ("solver", po::value<std::vector<std::string>>(assignments)->composing(),
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
